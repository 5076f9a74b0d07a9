"""Rotation end to end: the real provider process (gRPC over its unix socket, the real Secret
cache watching the in-memory API server), volumes on a real tmpfs, Secrets changed through
the API. Torn reads under 300 rotations, SIGKILL during rotations, changes while stopped,
access revoked and regained."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from csi_vso import protected
from csi_vso.provider.atomic_writer import DATA_LINK, MARKER, read_current
from csi_vso.provider.registry import MOUNTS_DIR, record_file_name
from tests.provider.crash_writer import payload
from tests.provider.driver_support import Cluster, DriverClient, Pod, mount_request
from tests.provider.kubelet_support import KubeletDir
from tests.provider.provider_process import ROOT, ProviderProcess
from tests.provider.tmpfs_support import tmpfs_fixture  # noqa: F401  (the tmpfs fixture)
from tests.provider.torn_reader import parse

pytestmark = [pytest.mark.slow, pytest.mark.root]

NAMES = ("username", "password", "db/host", "db/port")
OBJECTS = [{"secretName": "db", "key": n.replace("/", "-"), "fileName": n} for n in NAMES]


def secret_data(version: int, pad: int = 256) -> dict[str, bytes]:
    return {f.path.replace("/", "-"): f.contents for f in payload(version, NAMES, pad=pad)}


def volume_version(target: Path) -> int | None:
    """The one version a volume holds, None when empty; fails on a mixed or torn volume.

    A rotation may swap ..data while this reads; then it reads again (as an application would).
    """
    while True:
        before = os.readlink(target / DATA_LINK) if os.path.lexists(target / DATA_LINK) else None
        current = read_current(target)
        if current is None:
            return None
        visible = {name: parse(name, (target / name).read_bytes()) for name in NAMES}
        if before == os.readlink(target / DATA_LINK):
            break
    versions = {parse(p, data) for p, (_, data) in current.items()}
    assert len(versions) == 1 and None not in versions, versions
    assert set(current) == set(NAMES)
    (version,) = versions
    assert set(visible.values()) == {version}  # every visible name resolves into that version
    return version


def wait_version(targets: list[Path], version: int, timeout: float = 10.0) -> float:
    start = time.monotonic()
    while not all(volume_version(t) == version for t in targets):
        if time.monotonic() - start > timeout:
            raise AssertionError(
                f"volumes did not reach version {version}: {[volume_version(t) for t in targets]}"
            )
        time.sleep(0.002)
    return time.monotonic()


def leftovers(target: Path) -> set[str]:
    """Dot-dot entries besides ..data and the directory it points to."""
    current = os.readlink(target / DATA_LINK)
    return {e for e in os.listdir(target) if e.startswith("..")} - {DATA_LINK, MARKER, current}


def wait_clean(targets: list[Path], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while any(leftovers(t) for t in targets):
        assert time.monotonic() < deadline, {str(t): leftovers(t) for t in targets}
        time.sleep(0.02)


@pytest.fixture
def env(kube: Any, tmpfs: Path, tmp_path: Path) -> Iterator[dict[str, Any]]:
    api = kube.api_client()
    cluster = Cluster(api)
    ns = cluster.namespace("rot")
    pod = cluster.pod(ns)
    socket_dir = tmp_path / "sockets"
    socket_dir.mkdir()
    provider = ProviderProcess(kube.kubeconfig, socket_dir, tmp_path / "state", kubelet_dir=tmpfs)
    kubelet = KubeletDir(tmpfs)
    try:
        yield {
            "cluster": cluster,
            "ns": ns,
            "pod": pod,
            "provider": provider,
            "tmpfs": tmpfs,
            "vol": lambda name: kubelet.target(pod.uid, name, create=False),
        }
    finally:
        provider.stop()
        cluster.cleanup()
        api.close()


def mount_volumes(provider: ProviderProcess, pod: Pod, targets: list[Path]) -> None:
    driver = DriverClient(provider.socket_path)
    try:
        for t in targets:
            t.mkdir(parents=True, exist_ok=True)
            response = driver.mount(mount_request(pod, OBJECTS, str(t)))
            assert not response.error.code and len(response.files) == 0
    finally:
        driver.close()


def test_torn_reads_through_the_provider(env: dict[str, Any]) -> None:
    cluster, ns, pod, provider = env["cluster"], env["ns"], env["pod"], env["provider"]
    cluster.secret(ns, "db", secret_data(0, pad=2048))
    provider.start().wait_serving()
    vol = env["vol"]("vol")
    mount_volumes(provider, pod, [vol])
    stop = env["tmpfs"] / "stop"
    readers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.provider.torn_reader", str(vol), str(stop), *NAMES],
            cwd=ROOT,
            stdout=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    try:
        time.sleep(0.3)
        for v in range(1, 301):
            cluster.secret(ns, "db", secret_data(v, pad=2048))
            wait_version([vol], v)
    finally:
        stop.touch()
        outs = [json.loads(r.communicate(timeout=30)[0]) for r in readers]
    for counts in outs:
        assert counts["mixed"] == 0 and counts["enoent"] == 0 and counts["torn"] == 0, counts
        assert counts["backwards"] == 0 and counts["distinct_versions"] > 50, counts
        assert counts["consistent"] > counts["straddled"], counts  # most sets were judged
    print("torn-read (provider, 300 API rotations):", outs)
    # Access revoked through the policy annotation: files go; regained: they come back.
    deny = {protected.ALLOWED_SERVICE_ACCOUNTS_ANNOTATION: '["someone-else"]'}
    cluster.secret(ns, "db", secret_data(301), annotations=deny)
    deadline = time.monotonic() + 10
    while any(not n.startswith("..") for n in os.listdir(vol)) or os.path.lexists(vol / DATA_LINK):
        assert time.monotonic() < deadline, os.listdir(vol)
        time.sleep(0.01)
    cluster.secret(ns, "db", secret_data(302))
    wait_version([vol], 302)
    # Secret deleted: the last files stay (running apps keep working), logged once.
    cluster.core.delete_namespaced_secret("db", ns)
    provider.wait_for_log("protected Secret gone: keeping the volume's last files")
    assert volume_version(vol) == 302
    cluster.secret(ns, "db", secret_data(303))  # recreated: served again
    wait_version([vol], 303)
    text = "".join(provider.lines)
    assert text.count("protected Secret gone: keeping the volume's last files") == 1
    assert text.count("access revoked: removed the volume's files") == 1
    assert "xxxxxxxx" not in text  # no file content in any log line


@pytest.mark.timeout(900)  # 30 process starts; on a loaded 2-core machine one takes seconds
def test_sigkill_during_rotations(env: dict[str, Any]) -> None:
    cluster, ns, pod, provider = env["cluster"], env["ns"], env["pod"], env["provider"]
    rng = random.Random(7)
    cluster.secret(ns, "db", secret_data(0))
    provider.start().wait_serving()
    vols = [env["vol"](f"vol{i}") for i in range(3)]
    mount_volumes(provider, pod, vols)
    latest = 0
    kills = 0
    for _ in range(30):
        stop = threading.Event()
        written: list[int] = []

        def rotate(start: int, stop: threading.Event = stop, written: list[int] = written) -> None:
            v = start
            while not stop.is_set():
                v += 1
                cluster.secret(ns, "db", secret_data(v))
                written.append(v)

        writer = threading.Thread(target=rotate, args=(latest,))
        writer.start()
        time.sleep(rng.uniform(0.05, 0.4))
        provider.kill()
        kills += 1
        stop.set()
        writer.join()
        latest = written[-1] if written else latest
        for v in vols:  # whatever step the kill hit, each volume holds one whole version
            seen = volume_version(v)
            assert seen is not None and seen <= latest
        provider.start()
        provider.wait_serving()
        wait_version(vols, latest)
        wait_clean(vols)
    assert kills == 30 and latest > 30
    # The registry survived 30 kills whole: one record per volume, no half-written temp file
    # (listed once the provider stopped, so no flush is in progress).
    assert provider.stop() == 0
    records = sorted(p.name for p in (provider.state_dir / MOUNTS_DIR).iterdir())
    assert records == sorted(record_file_name(str(v)) for v in vols)


def test_changes_while_down_arrive_after_readiness(env: dict[str, Any]) -> None:
    cluster, ns, pod, provider = env["cluster"], env["ns"], env["pod"], env["provider"]
    cluster.secret(ns, "db", secret_data(1))
    provider.start().wait_serving()
    vols = [env["vol"](f"vol{i}") for i in range(5)]
    mount_volumes(provider, pod, vols)
    assert provider.stop() == 0
    cluster.secret(ns, "db", secret_data(2))
    cluster.secret(ns, "db", secret_data(3))
    assert all(volume_version(v) == 1 for v in vols)
    provider.start()
    ready = provider.wait_ready()
    done = wait_version(vols, 3)
    print(
        f"down-time: latest version in all {len(vols)} volumes {1000 * (done - ready):.0f} ms after readiness"
    )
    wait_clean(vols)
    # GC: a volume whose target is gone (pod deleted) is dropped on the next event, once, no errors.
    subprocess.run(["rm", "-rf", str(vols[4])], check=True)
    cluster.secret(ns, "db", secret_data(4))
    wait_version(vols[:4], 4)
    provider.wait_for_log("volume target gone: dropped from the registry")
    cluster.secret(ns, "db", secret_data(5))
    wait_version(vols[:4], 5)
    records = provider.log_records()
    assert [r["msg"] for r in records].count("volume target gone: dropped from the registry") == 1
    assert not [
        r for r in records if r.get("logger") == "csi_vso.provider.rotation" and r["level"] == "error"
    ]
