"""A reader process for the torn-read tests: `python -m tests.provider.torn_reader TARGET STOP NAME...`.

It loops over the visible names the way an application does (open by name, read, close) until the
STOP file exists, then prints one JSON line of counts. Each file holds ``<version>|<name>|<pad>|<version>``
so a file torn inside itself, or a set made of two versions, is detected.

A set of several files can only be consistent when ``..data`` did not move while it was read (the
same rule an application that reloads on ``..data`` changes follows), so the reader takes
``readlink(..data)`` before and after each pass: passes where it moved are counted as ``straddled``
and not judged as sets (each file in them is still checked on its own). ``mixed`` counts passes
where ``..data`` stayed put yet two files came from different versions: it must stay 0.
"""

from __future__ import annotations

import json
import os
import sys


def parse(name: str, data: bytes) -> int | None:
    """The version a file's contents carry, or None when the file is torn or foreign."""
    parts = data.split(b"|")
    if len(parts) != 4 or parts[0] != parts[3] or parts[1] != name.encode():
        return None
    try:
        return int(parts[0])
    except ValueError:
        return None


def main(argv: list[str]) -> int:
    target, stop, names = argv[0], argv[1], argv[2:]
    counts = {
        "passes": 0,
        "consistent": 0,
        "straddled": 0,
        "mixed": 0,
        "enoent": 0,
        "torn": 0,
        "backwards": 0,
    }
    versions_seen: set[int] = set()
    last = -1
    data_link = os.path.join(target, "..data")
    while not os.path.exists(stop):
        before = os.readlink(data_link)
        got: list[int] = []
        for name in names:
            try:
                with open(os.path.join(target, name), "rb") as f:
                    data = f.read()
            except FileNotFoundError:
                counts["enoent"] += 1
                continue
            v = parse(name, data)
            if v is None:
                counts["torn"] += 1
                continue
            got.append(v)
            if v < last:
                counts["backwards"] += 1
            last = max(last, v)
        after = os.readlink(data_link)
        counts["passes"] += 1
        versions_seen.update(got)
        if before != after:
            counts["straddled"] += 1
        elif len(got) == len(names) and len(set(got)) == 1:
            counts["consistent"] += 1
        else:
            counts["mixed"] += 1
    counts["distinct_versions"] = len(versions_seen)
    print(json.dumps(counts), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
