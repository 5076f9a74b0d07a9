"""A writer process the crash tests SIGKILL: `python -m tests.provider.crash_writer TARGET START`.

It writes versions START, START+1, ... of a torn-reader style payload into TARGET as fast as it
can, forever, so that a kill lands at a random step of the atomic write.
"""

from __future__ import annotations

import sys
from pathlib import Path

from csi_vso.provider.atomic_writer import FileToWrite, write_atomically

NAMES = ("username", "password", "db/host", "db/port", "tls/ca.crt")


def payload(version: int, names: tuple[str, ...] = NAMES, pad: int = 64) -> list[FileToWrite]:
    """Files whose contents carry ``version`` at both ends (see torn_reader.parse)."""
    return [
        FileToWrite(
            path=n, mode=0o644 if i % 2 else 0o400, contents=f"{version}|{n}|{'x' * pad}|{version}".encode()
        )
        for i, n in enumerate(names)
    ]


def names_for(version: int) -> tuple[str, ...]:
    """Every third version adds a top-level name, so stale-name removal is interrupted too."""
    return (*NAMES, "extra") if version % 3 == 0 else NAMES


def main(argv: list[str]) -> int:
    target, version = Path(argv[0]), int(argv[1])
    print("ready", flush=True)
    while True:
        write_atomically(target, payload(version, names_for(version)))
        version += 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
