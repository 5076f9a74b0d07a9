"""Rotation on a real tmpfs with the real registry: decisions, rewrites, deletes, revocation,
GC, restart reconcile, torn reads. The Secret source is the in-memory stand-in; the
end-to-end tests in test_rotation_e2e.py drive the real provider process instead."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from csi_vso import protected
from csi_vso.provider import atomic_writer
from csi_vso.provider.atomic_writer import DATA_LINK, MARKER, read_current
from csi_vso.provider.registry import MOUNTS_DIR, MountRecord, Registry, record_file_name
from csi_vso.provider.rotation import Fail, KeepMissing, Revoke, SecretView, Write, decide
from csi_vso.provider.validation import WriteMode
from tests.provider.crash_writer import payload
from tests.provider.driver_support import wait_for
from tests.provider.rotation_support import (
    KEY,
    POD,
    MemorySecrets,
    make_secret,
    make_spec,
    mount,
    new_rotator,
    sample,
    wait_idle,
)
from tests.provider.tmpfs_support import tmpfs_fixture  # noqa: F401  (the tmpfs fixture)

ROOT = Path(__file__).resolve().parents[2]
ALL_KEYS = [{"secretName": "db"}]


def _record(objects: list[dict[str, str]]) -> MountRecord:
    spec = make_spec(Path("/vol"), objects)
    return MountRecord(target_path="/vol", pod=POD, objects=spec.objects, permission=0o644)


def _view(data: dict[str, bytes], **annotations: str) -> SecretView:
    return SecretView(labels=protected.protected_labels("u"), annotations=annotations, data=data)


OTHER_NS = protected.ALLOWED_NAMESPACES_ANNOTATION
SAS = protected.ALLOWED_SERVICE_ACCOUNTS_ANNOTATION


@pytest.mark.parametrize(
    ("objects", "secrets", "expected"),
    [
        (ALL_KEYS, {("team-a", "db"): _view({"u": b"1", "p": b"2"})}, Write),
        (ALL_KEYS, {("team-a", "db"): None}, KeepMissing(("team-a/db",))),
        (ALL_KEYS, {("team-a", "db"): _view({"u": b"1"}, **{SAS: '["other"]'})}, Revoke),
        (
            [{"secretName": "db"}, {"secretName": "x", "secretNamespace": "team-b"}],
            {("team-a", "db"): None, ("team-b", "x"): _view({"a": b"1"})},  # no policy for team-a
            Revoke,
        ),
        (
            [{"secretName": "db"}, {"secretName": "x", "secretNamespace": "team-b"}],
            {("team-a", "db"): None, ("team-b", "x"): _view({"a": b"1"}, **{OTHER_NS: '["team-a"]'})},
            KeepMissing(("team-a/db",)),
        ),
        (
            [{"secretName": "db", "key": "gone"}],
            {("team-a", "db"): _view({"u": b"1"})},
            Fail("NotFound", "key 'gone' not found in protected Secret team-a/db"),
        ),
        (
            ALL_KEYS,
            {("team-a", "db"): _view({})},
            Fail("NotFound", "the protected Secrets of this volume hold no data: nothing to mount"),
        ),
    ],
)
def test_decide(objects: list[dict[str, str]], secrets: dict, expected: object) -> None:
    decision = decide(_record(objects), secrets, KEY)
    if isinstance(expected, type):
        assert isinstance(decision, expected)
    else:
        assert decision == expected
    if isinstance(decision, Revoke):
        assert "may not mount protected Secret" in decision.reason


def test_decide_versions_follow_content_only() -> None:
    record = _record(ALL_KEYS)
    a = decide(record, {("team-a", "db"): _view({"u": b"1"})}, KEY)
    b = decide(record, {("team-a", "db"): _view({"u": b"1"}, note="x")}, KEY)
    c = decide(record, {("team-a", "db"): _view({"u": b"2"})}, KEY)
    assert isinstance(a, Write) and isinstance(b, Write) and isinstance(c, Write)
    assert a.versions == b.versions != c.versions


def test_registry_round_trip_corrupt_records_and_no_content(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    registry = Registry(tmp_path)
    assert registry.load() == 0
    spec = make_spec(
        Path("/vol/a"), [{"secretName": "db", "key": "password", "fileName": "db/pw", "mode": "0600"}]
    )
    record = MountRecord(
        target_path="/vol/a", pod=POD, objects=spec.objects, permission=0o640, versions=(("db/pw", "abc"),)
    )
    registry.put(record)
    mounts = tmp_path / MOUNTS_DIR
    (mounts / "0123.json").write_text("{not json")
    (mounts / record_file_name("/vol/b")).write_text(json.dumps({"schema": 99}))
    (mounts / "leftover.json.1.tmp").write_text("half")
    again = Registry(tmp_path)
    with caplog.at_level(logging.WARNING):
        assert again.load() == 1
    assert again.get("/vol/a") == record
    assert again.targets_for("team-a", "db") == ["/vol/a"]
    assert [r.getMessage() for r in caplog.records] == ["skipping unreadable mount record"] * 2
    assert not (mounts / "leftover.json.1.tmp").exists()
    # A version-only update reaches the disk at the next flush, not before.
    moved = record.with_outcome(versions=(("db/pw", "def"),))
    again.put(moved, durable=False)
    assert again.get("/vol/a") == moved
    assert json.loads((mounts / record_file_name("/vol/a")).read_text())["versions"] == [["db/pw", "abc"]]
    assert again.flush() == 1 and again.flush() == 0
    assert json.loads((mounts / record_file_name("/vol/a")).read_text())["versions"] == [["db/pw", "def"]]
    assert again.remove("/vol/a") and again.targets_for("team-a", "db") == []
    assert not (mounts / record_file_name("/vol/a")).exists()


def _versions(target: Path) -> dict[str, bytes]:
    current = read_current(target)
    assert current is not None
    return {p: data for p, (_, data) in current.items()}


def test_rotation_rewrites_only_changed_volumes(tmpfs: Path) -> None:
    secrets = MemorySecrets()
    secrets.set(make_secret("db", {"user": b"u1", "password": b"p1"}), notify=False)
    secrets.set(make_secret("other", {"k": b"v"}), notify=False)
    rotator, _registry, prom = new_rotator(secrets, tmpfs / "state")
    rotator.start()
    try:
        vols = [tmpfs / f"v{i}" for i in range(4)]
        for v in vols:
            v.mkdir()
        for v in vols[:2]:
            mount(rotator, secrets, make_spec(v, ALL_KEYS))
        # Same Secret, other objects: the rotator's render cache must not hand it their files.
        mount(
            rotator, secrets, make_spec(vols[2], [{"secretName": "db", "key": "password", "fileName": "pw"}])
        )
        mount(rotator, secrets, make_spec(vols[3], [{"secretName": "other"}]))
        wait_idle(rotator)
        untouched = os.stat(vols[3] / "k").st_mtime_ns
        assert sample(prom, "csi_vso_registered_mounts") == 4
        stamp = protected.format_written_at(datetime.now(UTC))
        secrets.set(
            make_secret(
                "db", {"user": b"u1", "password": b"p2"}, annotations={protected.WRITTEN_AT_ANNOTATION: stamp}
            )
        )
        wait_idle(rotator)
        for v in vols[:2]:
            assert _versions(v) == {"user": b"u1", "password": b"p2"}
            assert (v / "password").read_bytes() == b"p2"
        assert _versions(vols[2]) == {"pw": b"p2"}
        assert os.stat(vols[3] / "k").st_mtime_ns == untouched
        assert sample(prom, "csi_vso_rotation_rewrites_total") == 3
        assert sample(prom, "csi_vso_rotation_propagation_seconds_count", {"source": "watch"}) == 3
        assert sample(prom, "csi_vso_rotation_propagation_seconds_count", {"source": "written_at"}) == 3
        # An event that changes nothing in the files (annotation only) rewrites nothing.
        mtime = os.stat(vols[0] / "password").st_mtime_ns
        assert os.listdir(vols[2]) and (vols[2] / "pw").read_bytes() == b"p2"
        secrets.set(make_secret("db", {"user": b"u1", "password": b"p2"}, annotations={"x": "y"}))
        wait_idle(rotator)
        assert sample(prom, "csi_vso_rotation_skipped_unchanged_total") == 3
        assert os.stat(vols[0] / "password").st_mtime_ns == mtime
        # The registry keeps versions, never content.
        for entry in os.listdir(tmpfs / "state" / MOUNTS_DIR):
            text = (tmpfs / "state" / MOUNTS_DIR / entry).read_text()
            assert "p2" not in text and "u1" not in text
    finally:
        rotator.stop()


def test_chores_wait_while_a_rotation_is_in_flight_then_run(tmpfs: Path) -> None:
    """The registry flush and the sweep of replaced versions do not compete with a fan-out:
    while a volume is still being rewritten they wait (up to their patience), and run as soon as
    the rotator is idle. Here volume B's writer is held on its lock past the flush's due time."""
    secrets = MemorySecrets()
    secrets.set(make_secret("a", {"k": b"a1"}), notify=False)
    secrets.set(make_secret("b", {"k": b"b1"}), notify=False)
    # A 3 s grace: the sweep of A is due 3 s after its swap (6 s while B is held), far from the
    # checks below even on a loaded machine; the flush is due 0.5 s after A's write.
    rotator, _registry, _prom = new_rotator(secrets, tmpfs / "state", workers=1, grace=3.0)
    rotator.start()
    try:
        vol_a, vol_b = tmpfs / "a", tmpfs / "b"
        for vol, name in ((vol_a, "a"), (vol_b, "b")):
            vol.mkdir()
            mount(rotator, secrets, make_spec(vol, [{"secretName": name}]))
        wait_idle(rotator)
        record_a = tmpfs / "state" / MOUNTS_DIR / record_file_name(str(vol_a))
        on_disk = json.loads(record_a.read_text())["versions"]
        replaced = os.readlink(vol_a / DATA_LINK)
        with rotator.target_lock(str(vol_b)):
            secrets.set(make_secret("a", {"k": b"a2"}))
            wait_for(lambda: os.readlink(vol_a / DATA_LINK) != replaced, what="volume A rotated")
            secrets.set(make_secret("b", {"k": b"b2"}))  # its writer now waits for our lock
            time.sleep(1.0)  # past the flush of volume A's record (due 0.5 s after its write)
            assert not rotator.idle()
            assert json.loads(record_a.read_text())["versions"] == on_disk  # not flushed yet
            assert (vol_a / replaced).is_dir()  # not swept yet
        wait_idle(rotator)
        wait_for(lambda: json.loads(record_a.read_text())["versions"] != on_disk, what="flushed once idle")
        wait_for(lambda: not (vol_a / replaced).exists(), what="swept once idle")
        assert (vol_b / "k").read_bytes() == b"b2"
    finally:
        rotator.stop()


def test_deleted_secret_keeps_files_and_revoked_access_removes_them(
    tmpfs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secrets = MemorySecrets()
    secrets.set(make_secret("db", {"password": b"p1"}), notify=False)
    rotator, _registry, prom = new_rotator(secrets, tmpfs / "state")
    rotator.start()
    vol = tmpfs / "vol"
    vol.mkdir()
    try:
        mount(rotator, secrets, make_spec(vol, ALL_KEYS))
        with caplog.at_level(logging.INFO, logger="csi_vso.provider.rotation"):
            secrets.delete("team-a", "db")
            wait_idle(rotator)
            secrets.delete("team-a", "db")  # a second event: still one log line, one count
            wait_idle(rotator)
            assert (vol / "password").read_bytes() == b"p1"
            assert sample(prom, "csi_vso_rotation_secret_missing_total") == 1
            secrets.set(make_secret("db", {"password": b"p2"}))  # recreated
            wait_idle(rotator)
            assert (vol / "password").read_bytes() == b"p2"
            denied = {protected.ALLOWED_SERVICE_ACCOUNTS_ANNOTATION: '["someone-else"]'}
            secrets.set(make_secret("db", {"password": b"p3"}, annotations=denied))
            wait_idle(rotator)
            secrets.set(make_secret("db", {"password": b"p4"}, annotations=denied))
            wait_idle(rotator)
            assert set(os.listdir(vol)) == {MARKER}  # only the marker stays
            assert sample(prom, "csi_vso_rotation_access_revoked_total") == 1
            secrets.set(make_secret("db", {"password": b"p5"}))  # access regained
            wait_idle(rotator)
            assert (vol / "password").read_bytes() == b"p5"
        messages = [r.getMessage() for r in caplog.records]
        assert messages.count("protected Secret gone: keeping the volume's last files") == 1
        assert messages.count("access revoked: removed the volume's files") == 1
        assert messages.count("serving the volume again") == 2
        assert not any(v in repr(r.__dict__) for r in caplog.records for v in ("p1", "p2", "p3", "p4", "p5"))
    finally:
        rotator.stop()


def test_gc_drops_volumes_whose_target_is_gone(tmpfs: Path) -> None:
    secrets = MemorySecrets()
    secrets.set(make_secret("db", {"password": b"p1"}), notify=False)
    rotator, registry, prom = new_rotator(secrets, tmpfs / "state")
    rotator.start()
    try:
        vols = [tmpfs / "a", tmpfs / "b", tmpfs / "c"]
        for v in vols:
            v.mkdir()
            mount(rotator, secrets, make_spec(v, ALL_KEYS))
        subprocess.run(["rm", "-rf", str(vols[0]), str(vols[1])], check=True)
        # An event finds one gone target, the periodic GC the other; neither is an error.
        secrets.set(make_secret("db", {"password": b"p2"}))
        wait_idle(rotator)
        assert rotator.collect_garbage() == 0  # the event already dropped both
        assert registry.targets() == [str(vols[2])]
        assert sample(prom, "csi_vso_rotation_gc_total") == 2
        assert sample(prom, "csi_vso_registered_mounts") == 1
        assert sample(prom, "csi_vso_rotation_errors_total", {"kind": "FileNotFoundError"}) == 0
        subprocess.run(["rm", "-rf", str(vols[2])], check=True)
        assert rotator.collect_garbage() == 1
        assert registry.targets() == []
        # A Mount on a known target replaces its record.
        vols[0].mkdir()
        mount(
            rotator, secrets, make_spec(vols[0], [{"secretName": "db", "key": "password", "fileName": "pw"}])
        )
        mount(rotator, secrets, make_spec(vols[0], ALL_KEYS))
        assert len(registry) == 1 and registry.get(str(vols[0])).objects[0].file_name is None  # type: ignore[union-attr]
    finally:
        rotator.stop()


def test_restart_reconciles_changes_made_while_down_and_cleans_leftovers(tmpfs: Path) -> None:
    secrets = MemorySecrets()
    secrets.set(make_secret("db", {"password": b"p1"}), notify=False)
    rotator, _, _ = new_rotator(secrets, tmpfs / "state")
    rotator.start()
    vol = tmpfs / "vol"
    vol.mkdir()
    mount(rotator, secrets, make_spec(vol, ALL_KEYS))
    rotator.stop()
    # While down: two changes, and a crash leftover in the volume.
    secrets.set(make_secret("db", {"password": b"p2"}), notify=False)
    secrets.set(make_secret("db", {"password": b"p3"}), notify=False)
    os.mkdir(vol / "..2020_01_01_00_00_00.dead")
    os.symlink("..2020_01_01_00_00_00.dead", vol / "..data_tmp")
    restarted, registry, _ = new_rotator(secrets, tmpfs / "state", grace=0.05)
    assert registry.targets() == [str(vol)]
    restarted.start()
    try:
        wait_idle(restarted)
        assert (vol / "password").read_bytes() == b"p3"
        deadline = time.monotonic() + 5
        while {e for e in os.listdir(vol) if e.startswith("..")} - {MARKER} != {
            DATA_LINK,
            os.readlink(vol / DATA_LINK),
        }:
            assert time.monotonic() < deadline, os.listdir(vol)
            time.sleep(0.02)
    finally:
        restarted.stop()


@pytest.mark.slow
def test_readers_never_see_a_torn_set_during_rotations(tmpfs: Path) -> None:
    names = ["username", "password", "db/host", "db/port"]
    secrets = MemorySecrets()

    def secret(v: int) -> object:
        files = payload(v, tuple(names), pad=2048)
        return make_secret("db", {f.path.replace("/", "-"): f.contents for f in files})

    secrets.set(secret(0), notify=False)  # type: ignore[arg-type]
    rotator, _, prom = new_rotator(secrets, tmpfs / "state")
    rotator.start()
    vol = tmpfs / "vol"
    vol.mkdir()
    objects = [{"secretName": "db", "key": n.replace("/", "-"), "fileName": n} for n in names]
    mount(rotator, secrets, make_spec(vol, objects))
    stop = tmpfs / "stop"
    readers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.provider.torn_reader", str(vol), str(stop), *names],
            cwd=ROOT,
            stdout=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    try:
        time.sleep(0.3)
        for v in range(1, 321):
            secrets.set(secret(v))  # type: ignore[arg-type]
            wait_idle(rotator)
    finally:
        stop.touch()
        outs = [json.loads(r.communicate(timeout=30)[0]) for r in readers]
        rotator.stop()
    assert (vol / "password").read_bytes().startswith(b"320|")
    assert sample(prom, "csi_vso_rotation_rewrites_total") == 320
    for counts in outs:
        assert counts["mixed"] == 0 and counts["enoent"] == 0 and counts["torn"] == 0, counts
        assert counts["backwards"] == 0 and counts["consistent"] > 0, counts
    print("torn-read (rotator):", outs)


def test_driver_mode_mount_on_a_registered_target_stops_rotation_there(tmpfs: Path) -> None:
    """Once the driver writes a volume's files (writeMode driver), rotation must not touch them."""
    secrets = MemorySecrets()
    secrets.set(make_secret("db", {"password": b"p1"}), notify=False)
    rotator, registry, prom = new_rotator(secrets, tmpfs / "state")
    rotator.start()
    vol = tmpfs / "vol"
    vol.mkdir()
    try:
        spec = make_spec(vol, ALL_KEYS)
        mount(rotator, secrets, spec)
        wait_idle(rotator)
        assert registry.get(str(vol)) is not None
        driver_spec = dataclasses.replace(spec, write_mode=WriteMode.DRIVER)
        rotator.observe_mount(driver_spec, POD, None)
        assert registry.get(str(vol)) is None
        assert sample(prom, "csi_vso_registered_mounts") == 0
        secrets.set(make_secret("db", {"password": b"p2"}))
        wait_idle(rotator)
        assert (vol / "password").read_bytes() == b"p1"
        assert sample(prom, "csi_vso_rotation_rewrites_total") == 0
    finally:
        rotator.stop()


def test_volumes_of_one_secret_are_rewritten_concurrently_within_the_bound(
    tmpfs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A thousand volumes of one Secret must not be rewritten one after another, nor all at once.

    Each rewrite waits at a barrier for as many others as there are workers: a sequential
    rotator would break the barrier (and fail those writes), an unbounded one would exceed it.
    """
    workers = 3
    secrets = MemorySecrets()
    secrets.set(make_secret("db", {"password": b"p1"}), notify=False)
    rotator, _registry, prom = new_rotator(secrets, tmpfs / "state", workers=workers)
    rotator.start()
    try:
        vols = [tmpfs / f"v{i}" for i in range(4 * workers)]
        for v in vols:
            v.mkdir()
            mount(rotator, secrets, make_spec(v, ALL_KEYS))
        wait_idle(rotator)
        real = atomic_writer.write_atomically
        together = threading.Barrier(workers, timeout=20)
        lock = threading.Lock()
        active = [0, 0]  # now, peak

        def gathered(*args: Any, **kwargs: Any) -> Any:
            with lock:
                active[0] += 1
                active[1] = max(active[1], active[0])
            try:
                together.wait()
                return real(*args, **kwargs)
            finally:
                with lock:
                    active[0] -= 1

        monkeypatch.setattr(atomic_writer, "write_atomically", gathered)
        secrets.set(make_secret("db", {"password": b"p2"}))
        wait_idle(rotator, timeout=60)
        assert active[1] == workers
        assert sample(prom, "csi_vso_rotation_rewrites_total") == len(vols)
        assert all((v / "password").read_bytes() == b"p2" for v in vols)
    finally:
        rotator.stop()
