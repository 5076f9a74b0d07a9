"""The atomic writer on a real tmpfs: layout, no-op writes, safety against planted symlinks,
leftovers, SIGKILL at random steps, and readers that must never see a torn set."""

from __future__ import annotations

import json
import os
import random
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from csi_vso.provider.atomic_writer import (
    DATA_LINK,
    MARKER,
    FileToWrite,
    InvalidPayloadError,
    SweepResult,
    UnsafeTargetError,
    read_current,
    remove_all,
    sweep,
    validate_payload,
    validate_relative_path,
    write_atomically,
)
from csi_vso.provider.limits import MAX_REPLACED_VERSIONS
from tests.provider.crash_writer import names_for, payload
from tests.provider.tmpfs_support import tmpfs_fixture  # noqa: F401  (the tmpfs fixture)
from tests.provider.torn_reader import parse

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("path", "problems"),
    [
        ("password", []),
        ("db/password", []),
        ("a/b/c/d.txt", []),
        (".hidden", []),
        ("db/..notreserved", []),
        ("x" * 255, []),
        ("", ["path '' is empty"]),
        ("/etc/passwd", ["path '/etc/passwd' is absolute"]),
        ("../escape", ["path '../escape' contains a '..' element"]),
        ("db/../../escape", ["path 'db/../../escape' contains a '..' element"]),
        ("a//b", ["path 'a//b' has an empty element"]),
        ("a/", ["path 'a/' has an empty element"]),
        ("./a", ["path './a' contains a '.' element"]),
        ("..data", ["path '..data' starts with '..', which is reserved for the writer"]),
        ("..2026_01_01/x", ["path '..2026_01_01/x' starts with '..', which is reserved for the writer"]),
        ("a\x00b", ["path 'a\\x00b' contains a NUL byte"]),
        ("x" * 256, [f"path {'x' * 40!r}... has an element longer than 255 bytes"]),
        ("/".join(["y" * 200] * 21), [f"path {'y' * 40!r}... is longer than 4096 bytes"]),
        ("/a/../b", ["path '/a/../b' is absolute", "path '/a/../b' contains a '..' element"]),
    ],
)
def test_validate_relative_path(path: str, problems: list[str]) -> None:
    assert validate_relative_path(path) == problems


def test_validate_payload_reports_every_problem() -> None:
    files = [
        FileToWrite("a", 0o644, b"1"),
        FileToWrite("a", 0o644, b"2"),
        FileToWrite("a/b", 0o644, b"3"),
        FileToWrite("/abs", 0o644, b"4"),
        FileToWrite("m", 0o17777, b"5"),
    ]
    assert validate_payload(files) == [
        "path 'a' appears more than once",
        "path '/abs' is absolute",
        "path 'm' has invalid mode 8191",
        "path 'a' is a file but 'a/b' needs it to be a directory",
    ]


def test_repr_never_shows_contents() -> None:
    assert "s3cr3t" not in repr(FileToWrite("p", 0o644, b"s3cr3t"))


def _entries(target: Path) -> set[str]:
    """The target's entries but the writer's marker (checked by tests of its own)."""
    return set(os.listdir(target)) - {MARKER}


def test_layout_modes_and_nested_paths(tmpfs: Path) -> None:
    old_umask = os.umask(0o077)  # the writer must not depend on the umask
    try:
        result = write_atomically(
            tmpfs,
            [
                FileToWrite("password", 0o640, b"pw"),
                FileToWrite("db/user", 0o644, b"u"),
                FileToWrite("db/x", 0o400, b""),
            ],
        )
    finally:
        os.umask(old_umask)
    assert result.changed
    assert _entries(tmpfs) == {DATA_LINK, result.data_dir, "password", "db"}
    assert os.readlink(tmpfs / DATA_LINK) == result.data_dir
    assert os.readlink(tmpfs / "password") == "..data/password"
    assert os.readlink(tmpfs / "db") == "..data/db"
    assert (tmpfs / "db" / "user").read_bytes() == b"u"
    assert stat.S_IMODE(os.stat(tmpfs / "password").st_mode) == 0o640
    assert stat.S_IMODE(os.stat(tmpfs / "db/x").st_mode) == 0o400
    assert stat.S_IMODE(os.stat(tmpfs / result.data_dir).st_mode) == 0o755
    assert stat.S_IMODE(os.stat(tmpfs / result.data_dir / "db").st_mode) == 0o755
    assert read_current(tmpfs) == {"password": (0o640, b"pw"), "db/user": (0o644, b"u"), "db/x": (0o400, b"")}


def test_unchanged_payload_is_a_no_op(tmpfs: Path) -> None:
    files = [FileToWrite("a", 0o644, b"1"), FileToWrite("d/b", 0o600, b"2")]
    first = write_atomically(tmpfs, files)
    before = os.stat(tmpfs / "d/b")
    time.sleep(0.01)
    again = write_atomically(tmpfs, list(reversed(files)))
    assert not again.changed and again.data_dir == first.data_dir
    after = os.stat(tmpfs / "d/b")
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    # A mode change alone is a change.
    assert write_atomically(tmpfs, [FileToWrite("a", 0o644, b"1"), FileToWrite("d/b", 0o640, b"2")]).changed


def test_change_swaps_and_removes_stale_names_and_old_dir(tmpfs: Path) -> None:
    first = write_atomically(tmpfs, [FileToWrite("a", 0o644, b"1"), FileToWrite("gone/x", 0o644, b"2")])
    second = write_atomically(tmpfs, [FileToWrite("a", 0o644, b"3"), FileToWrite("new", 0o644, b"4")])
    assert second.changed and second.data_dir != first.data_dir
    # The replaced directory outlives the swap by the grace period (readers mid-open), no longer.
    assert _entries(tmpfs) == {DATA_LINK, second.data_dir, first.data_dir, "a", "new"}
    assert (tmpfs / "a").read_bytes() == b"3"
    within = sweep(tmpfs)  # still inside the grace period: nothing goes, a retry is due
    assert within.removed == 0 and within.retry_after is not None and 0 < within.retry_after <= 1.0
    assert sweep(tmpfs, grace=0.0) == SweepResult(1, None)
    assert _entries(tmpfs) == {DATA_LINK, second.data_dir, "a", "new"}
    third = write_atomically(tmpfs, [FileToWrite("a", 0o644, b"5")])
    time.sleep(0.05)
    assert write_atomically(tmpfs, [FileToWrite("a", 0o644, b"5")], grace=0.04).leftovers_removed == 1
    assert _entries(tmpfs) == {DATA_LINK, third.data_dir, "a"}


def test_a_bulk_write_offers_a_checkpoint_in_every_step_that_loops_over_files(tmpfs: Path) -> None:
    """Rotation fairness: a big rewrite must be able to step aside for a small volume wherever
    it spends time per file, not only while writing them. Every check, replacement and removal
    of one entry is preceded by a checkpoint."""
    n = 40
    old = [FileToWrite(f"old{i:02d}", 0o644, b"x") for i in range(n)]
    new = [FileToWrite(f"new{i:02d}", 0o644, b"y") for i in range(n)]
    write_atomically(tmpfs, old)
    write_atomically(tmpfs, old[:1] + new[1:])  # a replaced version directory of n files stays
    calls: list[int] = []
    result = write_atomically(tmpfs, new, grace=0.0, checkpoint=lambda: calls.append(1))
    assert result.changed and result.leftovers_removed >= 1
    # validate n + old version dir removed (n entries) + top-level check n + write n
    # + the one missing link (new00) + stale links over the listing (> n entries)
    assert len(calls) >= 5 * n, len(calls)
    assert _entries(tmpfs) >= {DATA_LINK, result.data_dir, *(f.path for f in new)}
    assert not any(name.startswith("old") for name in _entries(tmpfs))


def test_a_volume_rewritten_faster_than_its_grace_keeps_a_bounded_number_of_versions(tmpfs: Path) -> None:
    """Inside the grace period replaced versions stay for readers mid-open, but no more than
    MAX_REPLACED_VERSIONS of them: the oldest go at the next write, the newest stay."""
    results = [write_atomically(tmpfs, [FileToWrite("a", 0o644, str(i).encode())]) for i in range(8)]
    assert (tmpfs / "a").read_bytes() == b"7"
    kept = {r.data_dir for r in results[-1 - MAX_REPLACED_VERSIONS :]}
    assert _entries(tmpfs) == {DATA_LINK, "a", *kept}
    assert sum(r.leftovers_removed for r in results) == 8 - 1 - MAX_REPLACED_VERSIONS
    assert sweep(tmpfs, grace=0.0) == SweepResult(MAX_REPLACED_VERSIONS, None)
    assert _entries(tmpfs) == {DATA_LINK, results[-1].data_dir, "a"}


def test_invalid_payload_writes_nothing(tmpfs: Path) -> None:
    with pytest.raises(InvalidPayloadError, match=r"path '\.\./x' contains a '\.\.' element"):
        write_atomically(tmpfs, [FileToWrite("../x", 0o644, b"1")])
    assert _entries(tmpfs) == set()


def test_planted_symlink_at_a_top_level_name_is_refused(tmpfs: Path) -> None:
    outside = tmpfs / "outside"
    outside.mkdir()
    target = tmpfs / "vol"
    target.mkdir()
    os.symlink(outside, target / "db")
    with pytest.raises(UnsafeTargetError, match=r"vol/db' exists and was not created by the writer"):
        write_atomically(target, [FileToWrite("db/password", 0o644, b"pw")])
    assert os.listdir(outside) == []
    assert _entries(target) == {"db"}  # nothing new


def test_planted_file_inside_version_dir_is_not_followed(tmpfs: Path) -> None:
    victim = tmpfs / "victim"
    victim.write_bytes(b"keep")
    target = tmpfs / "vol"
    target.mkdir()
    first = write_atomically(target, [FileToWrite("a", 0o644, b"1")])
    os.unlink(target / first.data_dir / "a")
    os.symlink(victim, target / first.data_dir / "a")
    # Same payload: the comparison must not follow the planted link (which would read "keep").
    result = write_atomically(target, [FileToWrite("a", 0o644, b"1")])
    assert result.changed
    assert victim.read_bytes() == b"keep"
    assert (target / "a").read_bytes() == b"1"
    assert not os.path.islink(target / result.data_dir / "a")


def test_symlinked_target_and_foreign_data_link_are_refused(tmpfs: Path) -> None:
    real = tmpfs / "real"
    real.mkdir()
    os.symlink(real, tmpfs / "link")
    with pytest.raises(UnsafeTargetError, match=r"link' is not a directory \(or is a symlink\)"):
        write_atomically(tmpfs / "link", [FileToWrite("a", 0o644, b"1")])
    os.symlink("/etc", real / DATA_LINK)
    # Not the writer's (no marker): refused as a whole, e.g. a kubelet secret volume.
    with pytest.raises(UnsafeTargetError, match=r"\.\.data' exists and was not created by the writer"):
        write_atomically(real, [FileToWrite("a", 0o644, b"1")])
    assert os.listdir(real) == [DATA_LINK]
    # The writer's own (marker) with a ..data planted later: still refused.
    (real / MARKER).write_bytes(b"")
    with pytest.raises(UnsafeTargetError, match=r"\.\.data' points outside the writer's directories"):
        write_atomically(real, [FileToWrite("a", 0o644, b"1")])
    assert _entries(real) == {DATA_LINK}


def test_leftovers_of_a_crash_are_removed(tmpfs: Path) -> None:
    first = write_atomically(tmpfs, [FileToWrite("a", 0o644, b"1")])
    os.mkdir(tmpfs / "..2020_01_01_00_00_00.dead")
    (tmpfs / "..2020_01_01_00_00_00.dead" / "a").write_bytes(b"old")
    os.symlink("..2020_01_01_00_00_00.dead", tmpfs / "..data_tmp")
    os.symlink("..data/stale", tmpfs / "stale")
    (tmpfs / "foreign").write_bytes(b"not ours")
    result = write_atomically(tmpfs, [FileToWrite("a", 0o644, b"1")], grace=0.0)
    assert not result.changed and result.leftovers_removed == 2
    assert _entries(tmpfs) == {DATA_LINK, first.data_dir, "a", "stale", "foreign"}
    write_atomically(tmpfs, [FileToWrite("a", 0o644, b"2")])
    assert "stale" not in _entries(tmpfs) and "foreign" in _entries(tmpfs)


def test_remove_all_leaves_only_foreign_entries(tmpfs: Path) -> None:
    write_atomically(tmpfs, [FileToWrite("a", 0o644, b"1"), FileToWrite("d/b", 0o644, b"2")])
    (tmpfs / "foreign").write_bytes(b"x")
    assert remove_all(tmpfs) == 4  # a, d, ..data, the version dir
    assert _entries(tmpfs) == {"foreign"}
    assert remove_all(tmpfs / "missing") == 0


def _check_one_whole_version(target: Path) -> int:
    """The visible state is exactly one version's files; return that version."""
    current = read_current(target)
    assert current is not None
    versions = {parse(p, data) for p, (_, data) in current.items()}
    assert len(versions) == 1 and None not in versions, versions
    (version,) = versions
    assert version is not None
    assert set(current) == set(names_for(version))
    for p in current:
        assert parse(p, (target / p).read_bytes()) == version  # reachable by its visible name
    visible = {n for n in os.listdir(target) if not n.startswith("..") and os.path.exists(target / n)}
    assert visible == {p.split("/")[0] for p in names_for(version)}
    return version


@pytest.mark.slow
@pytest.mark.root
def test_sigkill_at_random_points_leaves_a_whole_version(tmpfs: Path) -> None:
    rng = random.Random(4)
    version = 1
    write_atomically(tmpfs, payload(version, names_for(version)))
    for _ in range(40):
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.provider.crash_writer", str(tmpfs), str(version + 1)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
        )
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        time.sleep(rng.uniform(0.0, 0.05))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        seen = _check_one_whole_version(tmpfs)
        assert seen >= version
        version = seen + 1
        # The next write heals every leftover: exactly ..data, one version dir and the names.
        result = write_atomically(tmpfs, payload(version, names_for(version)), grace=0.0)
        assert _check_one_whole_version(tmpfs) == version
        sweep(tmpfs, grace=0.0)
        entries = _entries(tmpfs)
        assert {e for e in entries if e.startswith("..")} == {DATA_LINK, result.data_dir}
    assert version > 40


@pytest.mark.slow
def test_readers_never_see_a_torn_set_or_enoent(tmpfs: Path) -> None:
    names = ["username", "password", "db/host", "db/port"]
    stop = tmpfs.parent / f"{tmpfs.name}.stop"
    write_atomically(tmpfs, payload(0, tuple(names)))
    readers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.provider.torn_reader", str(tmpfs), str(stop), *names],
            cwd=ROOT,
            stdout=subprocess.PIPE,
        )
        for _ in range(3)
    ]
    try:
        time.sleep(0.3)  # let the readers start looping
        for v in range(1, 401):
            write_atomically(tmpfs, payload(v, tuple(names), pad=4096))
            time.sleep(0.002)
    finally:
        stop.touch()
        outs = [json.loads(r.communicate(timeout=30)[0]) for r in readers]
        stop.unlink()
    for counts in outs:
        assert counts["mixed"] == 0 and counts["enoent"] == 0 and counts["torn"] == 0, counts
        assert counts["backwards"] == 0, counts
        assert counts["consistent"] > 0 and counts["distinct_versions"] > 10, counts
    print("torn-read (writer):", outs)
