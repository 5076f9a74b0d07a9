"""``--require-mounted-target``: provider-mode writes go only into the driver's tmpfs, never onto
the node's disk. As root, with a real tmpfs mounted at each volume target the way the Secrets
Store CSI driver does, and a real ``umount`` standing in for kubelet's teardown.

Mount runs end to end (gRPC over the unix socket, the in-memory API server); rotation is
driven both by a real Secret change through the provider and by the rotator alone.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from csi_vso.provider import atomic_writer
from csi_vso.provider.atomic_writer import FileToWrite, NotMountedError
from csi_vso.provider.rotation import RotationExtension, Rotator
from csi_vso.provider.server import ProviderServer
from csi_vso.provider.settings import ProviderSettings
from tests.provider.driver_support import Cluster, DriverClient, Pod, mount_request, wait_for
from tests.provider.rotation_support import (
    MemorySecrets,
    Rendered,
    make_secret,
    make_spec,
    mount,
    new_rotator,
    sample,
    wait_idle,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounts a tmpfs per volume target: needs root")

NOT_MOUNTED = "is not a mounted volume; refusing to write secrets onto the node's disk"


class Mounts:
    """Makes kubelet-shaped targets under a plain (disk) directory, each with its own tmpfs."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.mounted: list[Path] = []

    def target(self, uid: str = "uid") -> Path:
        path = self.root / "pods" / uid / "volumes" / "kubernetes.io~csi" / secrets.token_hex(3) / "mount"
        path.mkdir(parents=True)
        return path

    def mount(self, target: Path) -> Path:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs", str(target)], check=True)
        self.mounted.append(target)
        return target

    def umount(self, target: Path) -> None:
        """A plain umount, as the driver does; retried while a sweep briefly holds the directory."""
        deadline = time.monotonic() + 10
        while subprocess.run(["umount", str(target)], check=False, capture_output=True).returncode:
            assert time.monotonic() < deadline, f"cannot unmount {target}"
            time.sleep(0.05)
        self.mounted.remove(target)


@pytest.fixture
def mounts() -> Iterator[Mounts]:
    # Not under pytest's tmp_path: that may itself be a tmpfs, and the point is a plain parent.
    root = Path(tempfile.mkdtemp(prefix="csi-vso-mounted-"))
    made = Mounts(root)
    try:
        yield made
    finally:
        for target in reversed(made.mounted):
            subprocess.run(["umount", "-l", str(target)], check=False)
        subprocess.run(["rm", "-rf", str(root)], check=False)


# --------------------------------------------------------------------------------------------
# The check itself, and the writer


def test_only_the_root_of_a_mount_counts_as_mounted(mounts: Mounts) -> None:
    target = mounts.target()
    assert not atomic_writer.is_mounted_target(target)
    mounts.mount(target)
    assert atomic_writer.is_mounted_target(target)
    (target / "sub").mkdir()
    assert not atomic_writer.is_mounted_target(target / "sub")  # same tmpfs as its parent
    assert not atomic_writer.is_mounted_target(target / "missing")
    os.symlink(target, mounts.root / "link")
    assert not atomic_writer.is_mounted_target(mounts.root / "link")  # never followed


def test_writer_refuses_a_plain_directory_and_writes_nothing(mounts: Mounts) -> None:
    target = mounts.target()
    files = [FileToWrite("password", 0o644, b"pw")]
    with pytest.raises(NotMountedError) as err:
        atomic_writer.write_atomically(target, files, require_mount=True)
    assert str(err.value) == f"target_path {target} {NOT_MOUNTED}"
    assert os.listdir(target) == []
    assert atomic_writer.write_atomically(mounts.mount(target), files, require_mount=True).changed
    assert atomic_writer.read_current(target) == {"password": (0o644, b"pw")}


# --------------------------------------------------------------------------------------------
# Mount and rotation through the provider, with the setting on


class Provider:
    def __init__(self, server: ProviderServer, rotation: RotationExtension, cluster: Cluster) -> None:
        self.server = server
        self.rotation = rotation
        self.cluster = cluster
        self.driver = DriverClient(str(server.settings.socket_path))
        self.ns = cluster.namespace("mounted")
        self.pod: Pod = cluster.pod(self.ns)

    @property
    def rotator(self) -> Rotator:
        assert self.rotation.rotator is not None
        return self.rotation.rotator

    def put_secret(self, password: bytes) -> None:
        self.cluster.secret(self.ns, "db", {"password": password})

        def cached() -> bool:
            if not self.server.cache.known(self.ns, "db"):
                return True  # not watched yet: the next Mount lists it afresh
            got = self.server.cache.get(self.ns, "db")
            return got is not None and base64.b64decode(got.data["password"]) == password

        wait_for(cached, what="the Secret in the provider's cache")

    def mount(self, target: Path) -> Any:
        return self.driver.mount(mount_request(self.pod, [{"secretName": "db"}], str(target)))


@pytest.fixture
def provider(kube: Any, tmp_path: Path, mounts: Mounts) -> Iterator[Provider]:
    settings = ProviderSettings(
        kubelet_dir=mounts.root,
        socket_dir=tmp_path / "sockets",
        state_dir=tmp_path / "state",
        token_dir=tmp_path / "tokens",
        metrics_port=0,
        grace_seconds=5,
        require_mounted_target=True,
    )
    rotation = RotationExtension()
    server = ProviderServer(settings, kube.api_client(), extensions=[rotation])
    server.start()
    cluster = Cluster(kube.api_client())
    env: Provider | None = None
    try:
        assert server.cache.wait_for_sync(30)
        wait_for(server.ready, what="provider ready")
        env = Provider(server, rotation, cluster)
        wait_for(lambda: rotation.rotator is not None, what="rotation wired")
        yield env
    finally:
        if env is not None:
            env.driver.close()
        server.stop(5)
        cluster.cleanup()


@pytest.mark.slow
def test_mount_into_a_plain_directory_is_refused_and_writes_nothing(
    provider: Provider, mounts: Mounts
) -> None:
    provider.put_secret(b"pw-1")
    target = mounts.target(provider.pod.uid)
    with pytest.raises(grpc.RpcError) as err:
        provider.mount(target)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION, err.value.details()
    assert err.value.details() == f"target_path {target} {NOT_MOUNTED}"
    assert os.listdir(target) == []
    assert provider.rotator._registry.get(str(target)) is None


@pytest.mark.slow
def test_rotation_after_umount_writes_nothing_and_drops_the_record(
    provider: Provider, mounts: Mounts
) -> None:
    provider.put_secret(b"pw-1")
    target = mounts.mount(mounts.target(provider.pod.uid))
    response = provider.mount(target)
    assert [v.id for v in response.object_version] == ["password"]
    assert (target / "password").read_bytes() == b"pw-1"
    registry = provider.rotator._registry
    assert registry.get(str(target)) is not None
    # Rotation while mounted still writes.
    provider.put_secret(b"pw-2")
    wait_for(lambda: (target / "password").read_bytes() == b"pw-2", what="rotation into the tmpfs")
    # Teardown: the driver unmounts; a change arrives before kubelet removes the directory.
    mounts.umount(target)
    assert os.listdir(target) == []
    provider.put_secret(b"pw-3")
    wait_for(lambda: registry.get(str(target)) is None, what="the record dropped")
    wait_idle(provider.rotator)
    assert os.listdir(target) == []
    os.rmdir(target)  # what kubelet does next: succeeds because nothing was written
    metrics = provider.server.metrics.registry
    assert metrics.get_sample_value("csi_vso_rotation_gc_total") == 1
    assert metrics.get_sample_value("csi_vso_rotation_errors_total", {"kind": "NotMountedError"}) is None


# --------------------------------------------------------------------------------------------
# The rotator alone: every way it could reach an unmounted target


def _mounted_volume(mounts: Mounts, rotator: Rotator, source: MemorySecrets) -> Path:
    target = mounts.mount(mounts.target())
    mount(rotator, source, make_spec(target, [{"secretName": "db"}]))
    assert (target / "password").exists()
    return target


@pytest.mark.parametrize(
    "trigger",
    ["secret-event", "reconcile", "periodic-gc"],
)
def test_rotator_drops_an_unmounted_target_without_writing(
    mounts: Mounts, tmp_path: Path, caplog: pytest.LogCaptureFixture, trigger: str
) -> None:
    caplog.set_level(logging.INFO, logger="csi_vso.provider.rotation")
    source = MemorySecrets()
    source.set(make_secret("db", {"password": b"p1"}), notify=False)
    rotator, registry, prom = new_rotator(source, tmp_path / "state", require_mount=True)
    rotator.start()
    try:
        kept = _mounted_volume(mounts, rotator, source)
        gone = _mounted_volume(mounts, rotator, source)
        wait_idle(rotator)
        mounts.umount(gone)
        source.set(make_secret("db", {"password": b"p2"}), notify=trigger == "secret-event")
        act: dict[str, Callable[[], object]] = {
            "secret-event": lambda: None,
            "reconcile": rotator.reconcile_all,
            "periodic-gc": rotator.collect_garbage,
        }
        act[trigger]()
        wait_idle(rotator)
        assert os.listdir(gone) == []
        assert registry.targets() == [str(kept)]
        assert sample(prom, "csi_vso_rotation_gc_total") == 1
        assert sample(prom, "csi_vso_registered_mounts") == 1
        if trigger != "periodic-gc":
            assert (kept / "password").read_bytes() == b"p2"
        # Later events and collections find nothing more to do, and log nothing more.
        source.set(make_secret("db", {"password": b"p3"}))
        wait_idle(rotator)
        assert rotator.collect_garbage() == 0
        assert os.listdir(gone) == []
        dropped = [r for r in caplog.records if "no longer a mounted volume" in r.getMessage()]
        assert [getattr(r, "target", None) for r in dropped] == [str(gone)]
        assert not any(v in json.dumps([r.getMessage() for r in caplog.records]) for v in ("p1", "p2", "p3"))
    finally:
        rotator.stop()


def test_observed_mount_unmounted_before_its_refresh_is_not_registered(
    mounts: Mounts, tmp_path: Path
) -> None:
    """A Mount wrote, then the tmpfs went before the rotator's refresh under the target lock."""
    source = MemorySecrets()
    source.set(make_secret("db", {"password": b"p1"}), notify=False)
    rotator, registry, prom = new_rotator(source, tmp_path / "state", require_mount=True)
    rotator.start()
    try:
        target = _mounted_volume(mounts, rotator, source)
        mounts.umount(target)
        # The refresh would write (the cache moved on since the Mount); the target is plain now.
        source.set(make_secret("db", {"password": b"p2"}), notify=False)
        spec = make_spec(target, [{"secretName": "db"}])
        rotator.observe_mount(spec, registry.get(str(target)).pod, Rendered(()))  # type: ignore[union-attr]
        wait_idle(rotator)
        assert os.listdir(target) == []
        assert registry.targets() == []
        assert sample(prom, "csi_vso_rotation_gc_total") == 1
    finally:
        rotator.stop()
