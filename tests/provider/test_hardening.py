"""Issue 10: each finding of the adversarial review, as a test named after it.

Every ``test_findingN_*`` failed on the code before its fix. They use the real pieces: the
in-memory API server (or a real cluster), gRPC over the real unix socket, a real tmpfs as
root, the real atomic writer and rotator.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from prometheus_client import CollectorRegistry

from csi_vso import protected
from csi_vso.provider.atomic_writer import (
    DATA_LINK,
    MARKER,
    TEMP_DATA_LINK,
    FileToWrite,
    TargetBusyError,
    read_current,
    write_atomically,
)
from csi_vso.provider.authz import VerifiedPod
from csi_vso.provider.limits import MAX_ATTRIBUTES_BYTES, MAX_FILES_PER_VOLUME, PAGE_SIZE, SMALL_VOLUME_FILES
from csi_vso.provider.rotation import RotationExtension, Rotator
from csi_vso.provider.server import ProviderServer
from csi_vso.provider.settings import ProviderSettings
from csi_vso.provider.targets import VolumeTarget, parse_target
from tests.fixtures.cgroup import MemoryCgroup
from tests.fixtures.cgroup import skip_reason as cgroup_skip_reason
from tests.provider.driver_support import Cluster, DriverClient, mount_request, wait_for
from tests.provider.kubelet_support import KubeletDir, kubelet_fixture, module_kubelet_fixture  # noqa: F401
from tests.provider.provider_process import ProviderProcess
from tests.provider.rotation_support import (
    MemorySecrets,
    make_secret,
    make_spec,
    mount,
    new_rotator,
    sample,
    wait_idle,
)
from tests.provider.tmpfs_support import tmpfs_fixture  # noqa: F401  (the tmpfs fixture)

# --------------------------------------------------------------------------------------------
# Finding 10: the socket is bound with its final mode


@pytest.fixture
def umask_000() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def test_finding10_socket_is_never_reachable_by_others(kube: Any, tmp_path: Path, umask_000: None) -> None:
    """Under umask 000 a bind-then-chmod socket is 0777 until the chmod: any local process could
    connect in between. Whatever the provider binds must be 0600 itself or sit in a 0700
    directory, and when gRPC starts serving, the socket at its final path is already 0600."""
    settings = ProviderSettings(
        socket_dir=tmp_path / "sockets",
        state_dir=tmp_path / "state",
        token_dir=tmp_path / "tokens",
        metrics_port=0,
        grace_seconds=1,
    )
    server = ProviderServer(settings, kube.api_client())
    grpc_server: Any = server._grpc
    bound: list[tuple[str, int, int]] = []
    at_start: list[int | None] = []
    add_port, start = grpc_server.add_insecure_port, grpc_server.start

    def spy_add_port(address: str) -> int:
        port = add_port(address)
        path = Path(address.removeprefix("unix://"))
        bound.append((str(path), os.lstat(path).st_mode, os.lstat(path.parent).st_mode))
        return int(port)

    def spy_start() -> None:
        try:
            at_start.append(os.lstat(settings.socket_path).st_mode)
        except FileNotFoundError:
            at_start.append(None)
        start()

    grpc_server.add_insecure_port, grpc_server.start = spy_add_port, spy_start
    try:
        server.start()
        assert bound, "the provider bound no socket"
        for path, mode, parent_mode in bound:
            private = stat.S_IMODE(mode) & 0o077 == 0 or stat.S_IMODE(parent_mode) & 0o077 == 0
            assert private, f"{path} was bound as {oct(mode)} in a {oct(parent_mode)} directory"
        assert at_start == [at_start[0]] and at_start[0] is not None
        assert stat.S_IMODE(at_start[0]) == 0o600 and stat.S_ISSOCK(at_start[0])
        assert stat.S_IMODE(os.lstat(settings.socket_path).st_mode) == 0o600
        # Nothing else is left in the socket dir (the private directory went away).
        assert os.listdir(settings.socket_dir) == ["vso.sock"]
    finally:
        server.stop(0)


# --------------------------------------------------------------------------------------------
# Finding 11: a directory planted at ..data_tmp must not wedge writes


@pytest.mark.parametrize("planted", ["directory", "deep-directory", "file", "dangling-symlink"])
def test_finding11_planted_data_tmp_does_not_wedge_writes(tmpfs: Path, planted: str) -> None:
    write_atomically(tmpfs, [FileToWrite("password", 0o600, b"one")])
    tmp = tmpfs / TEMP_DATA_LINK
    if planted == "directory":
        tmp.mkdir()
        (tmp / "inside").write_bytes(b"x")
    elif planted == "deep-directory":  # deeper than Python's recursion limit
        fd = os.open(tmpfs, os.O_RDONLY | os.O_DIRECTORY)
        for name in [TEMP_DATA_LINK] + ["d"] * 1500:
            os.mkdir(name, dir_fd=fd)
            child = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
        os.close(fd)
    elif planted == "file":
        tmp.write_bytes(b"x")
    else:
        tmp.symlink_to("..nowhere")
    write_atomically(tmpfs, [FileToWrite("password", 0o600, b"two")])
    assert (tmpfs / "password").read_bytes() == b"two"
    assert not os.path.lexists(tmp)
    assert read_current(tmpfs) == {"password": (0o600, b"two")}


# --------------------------------------------------------------------------------------------
# Finding 7: the sweep comes back until every replaced version is gone


def _version_dirs(target: Path) -> list[str]:
    return sorted(
        n
        for n in os.listdir(target)
        if n.startswith("..") and (target / n).is_dir() and not (target / n).is_symlink()
    )


def test_finding7_replaced_versions_are_all_swept(tmpfs: Path) -> None:
    """The sweep a write schedules (a grace period later) finds the replaced directory still
    inside the grace period when a second write came in between; it must come back until every
    replaced version is gone (before the fix they stayed, old values readable, until a third
    write). The second write lands mid-grace on purpose: half a grace of margin either side."""
    grace = 1.0
    secrets = MemorySecrets()
    secrets.set(make_secret("db", {"password": b"v0"}), notify=False)
    rotator, _registry, _prom = new_rotator(secrets, tmpfs / "state", grace=grace)
    rotator.start()
    try:
        target = tmpfs / "vol"
        target.mkdir()
        mount(rotator, secrets, make_spec(target, [{"secretName": "db"}]))  # schedules the sweep
        secrets.set(make_secret("db", {"password": b"v1"}))
        wait_idle(rotator)
        time.sleep(grace / 2)  # scenario, not a wait: the next write falls inside the grace
        secrets.set(make_secret("db", {"password": b"v2"}))
        wait_idle(rotator)
        assert (target / "password").read_bytes() == b"v2"
        # Normally 3 directories now (2 replaced); on a starved machine the first sweep may
        # already have taken one, which changes nothing about what must happen next.
        assert len(_version_dirs(target)) >= 2
        current = os.readlink(target / DATA_LINK)
        wait_for(lambda: _version_dirs(target) == [current], timeout=5 * grace, what="old versions swept")
    finally:
        rotator.stop()


AUDIENCE = "csi-vso"


# --------------------------------------------------------------------------------------------
# A provider over the real socket, for the findings that come in through Mount


class Env:
    def __init__(self, server: ProviderServer, kubelet: KubeletDir, cluster: Cluster) -> None:
        self.server = server
        self.kubelet = kubelet
        self.cluster = cluster
        self.driver = DriverClient(str(server.socket_path))
        self.ns = cluster.namespace("harden")
        self.pod = cluster.pod(self.ns)
        self.other_pod = cluster.pod(self.ns, name="app-1")
        self.rotator: Rotator | None = None
        self.put(self.ns, "db", {"password": b"pw-" + secrets.token_hex(8).encode()})

    def put(self, namespace: str, name: str, data: dict[str, bytes]) -> None:
        self.cluster.secret(namespace, name, data)

        def cached() -> bool:
            if not self.server.cache.known(namespace, name):
                return True  # pod-token mode, not watched yet: the next Mount lists it afresh
            got = self.server.cache.get(namespace, name)
            return got is not None and set(got.data or {}) == set(data)

        wait_for(cached, what=f"Secret {namespace}/{name} in the provider's cache")

    def target(self) -> Path:
        return self.kubelet.target(self.pod.uid)

    def mounts_counted(self, code: str) -> float:
        registry = self.server.metrics.registry
        total = 0.0
        for mode in ("provider", "driver", "unknown"):
            total += (
                registry.get_sample_value("csi_vso_provider_mounts_total", {"code": code, "mode": mode}) or 0
            )
        return total


@pytest.fixture(scope="module")
def env(kube: Any, tmp_path_factory: pytest.TempPathFactory, module_kubelet: KubeletDir) -> Iterator[Env]:
    base = tmp_path_factory.mktemp("harden")
    settings = ProviderSettings(
        socket_dir=base / "sockets",
        state_dir=base / "state",
        kubelet_dir=module_kubelet.root,
        token_dir=base / "tokens",
        metrics_port=0,
        grace_seconds=2,
        token_audience=AUDIENCE,
    )
    rotation = RotationExtension()
    server = ProviderServer(settings, kube.api_client(), extensions=[rotation])
    server.start()
    cluster = Cluster(kube.api_client())
    environment: Env | None = None
    try:
        assert server.cache.wait_for_sync(30)
        wait_for(server.ready, what="provider ready")
        environment = Env(server, module_kubelet, cluster)
        wait_for(lambda: rotation.rotator is not None, what="rotation wired")
        assert rotation.rotator is not None
        environment.rotator = rotation.rotator
        yield environment
    finally:
        if environment is not None:
            environment.driver.close()
        server.stop(2)
        cluster.cleanup()


# --------------------------------------------------------------------------------------------
# Finding 8: pod input that crashed a Mount is INVALID_ARGUMENT, nothing written, counted right

FINDING8 = {
    "surrogate-fileName": ({"secretName": "db", "key": "password", "fileName": "\ud800"}, False),
    "undecodable-fileName": ({"secretName": "db", "key": "password", "fileName": "a\udc80"}, False),
    "surrogate-key": ({"secretName": "db", "key": "\udcff"}, False),
    "950-levels-deep": ({"secretName": "db", "key": "password", "fileName": "d/" * 950 + "f"}, False),
    "NUL-in-target_path": ({"secretName": "db", "key": "password"}, True),
}


@pytest.mark.parametrize("case", sorted(FINDING8))
@pytest.mark.parametrize("write_mode", ["provider", "driver"])
def test_finding8_hostile_strings_are_invalid_argument(env: Env, case: str, write_mode: str) -> None:
    obj, nul_target = FINDING8[case]
    target = env.target()
    path = str(target) + ("\x00/x" if nul_target else "")
    before = (env.mounts_counted("INVALID_ARGUMENT"), env.mounts_counted("OK"))
    with pytest.raises(grpc.RpcError) as err:
        env.driver.mount(mount_request(env.pod, [obj], path, write_mode=write_mode))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (err.value.code(), err.value.details())
    assert "invalid mount parameters" in err.value.details()
    assert os.listdir(target) == []
    assert (env.mounts_counted("INVALID_ARGUMENT"), env.mounts_counted("OK")) == (before[0] + 1, before[1])
    # The provider still serves the next good Mount.
    env.driver.mount(mount_request(env.pod, [{"secretName": "db"}], str(target)))
    assert (target / "password").is_file()


# --------------------------------------------------------------------------------------------
# Finding 1: files per volume capped, cost counted in pages, small volumes not starved


def _many_file_names(count: int) -> str:
    """``objects`` as compact YAML (no quotes to escape), as an attacker squeezes it under 1 MiB."""
    return "[" + ",".join(f"{{secretName: db, key: password, fileName: f{i}}}" for i in range(count)) + "]"


@pytest.fixture(scope="module")
def wide_secrets(env: Env) -> None:
    env.put(env.ns, "wide", {f"k{i:05d}": b"x" for i in range(20_000)})
    env.put(env.ns, "cap", {f"k{i:03d}": b"x" for i in range(MAX_FILES_PER_VOLUME)})
    env.put(env.ns, "page", {"blob": b"p" * (PAGE_SIZE + 1)})


@pytest.mark.parametrize("write_mode", ["provider", "driver"])
def test_finding1_17000_file_names_are_refused(env: Env, write_mode: str) -> None:
    """One key under 17,000 fileNames fits the 1 MiB attribute cap and cost a page per file."""
    request = mount_request(env.pod, _many_file_names(17_000), str(env.target()), write_mode=write_mode)
    assert len(request.attributes) < MAX_ATTRIBUTES_BYTES
    with pytest.raises(grpc.RpcError) as err:
        env.driver.mount(request)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert "entries, over the limit of 512 files per volume" in err.value.details()
    assert os.listdir(request.target_path) == []


@pytest.mark.parametrize("write_mode", ["provider", "driver"])
def test_finding1_secret_with_20000_keys_is_refused(env: Env, wide_secrets: None, write_mode: str) -> None:
    target = env.target()
    with pytest.raises(grpc.RpcError) as err:
        env.driver.mount(mount_request(env.pod, [{"secretName": "wide"}], str(target), write_mode=write_mode))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.value.details()
    assert "would have 20000 files, over the limit of 512 files per volume" in err.value.details()
    assert os.listdir(target) == []


def test_finding1_cost_is_counted_in_pages(env: Env, wide_secrets: None) -> None:
    """400 files of 4 KiB + 1 byte: 1.6 MB of bytes, but 800 pages plus 400 directories."""
    target = env.target()
    objects = [{"secretName": "page", "key": "blob", "fileName": f"d{i}/f"} for i in range(400)]
    with pytest.raises(grpc.RpcError) as err:
        env.driver.mount(mount_request(env.pod, objects, str(target)))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.value.details()
    assert "take 1201 pages of tmpfs, over the limit of 1024 pages" in err.value.details()
    assert os.listdir(target) == []


def test_finding1_a_volume_at_the_cap_is_served(env: Env, wide_secrets: None) -> None:
    target = env.target()
    env.driver.mount(mount_request(env.pod, [{"secretName": "cap"}], str(target)))
    assert len([n for n in os.listdir(target) if not n.startswith("..")]) == MAX_FILES_PER_VOLUME


POD_B = VerifiedPod(namespace="team-b", name="app-b", uid="uid-b", service_account="app")


def _two_tenants(
    tmpfs: Path, secrets: MemorySecrets, a: str, b: str
) -> tuple[Rotator, CollectorRegistry, Path, Path]:
    """A started single-writer rotator with tenant A's volume of Secret ``a`` (default pod) and
    tenant B's of ``b`` (namespace team-b), both mounted and idle; the caller stops it."""
    rotator, _registry, prom = new_rotator(secrets, tmpfs / "state", workers=1)
    rotator.start()
    vol_a, vol_b = tmpfs / a, tmpfs / b
    vol_a.mkdir()
    vol_b.mkdir()
    try:
        mount(rotator, secrets, make_spec(vol_a, [{"secretName": a}]))
        mount(rotator, secrets, make_spec(vol_b, [{"secretName": b}], pod=POD_B), POD_B)
        wait_idle(rotator)
    except BaseException:
        rotator.stop()
        raise
    return rotator, prom, vol_a, vol_b


def test_finding1_small_volumes_are_not_queued_behind_big_ones(tmpfs: Path) -> None:
    """Tenant A's big volume is stuck mid-rotation (the test holds its lock); tenant B's
    one-file volume must still rotate, even with a single rotation worker. Before the fix every
    worker could be busy with A's volumes and B's waited behind them."""
    secrets = MemorySecrets()
    big = {f"k{i:03d}": b"a0" for i in range(SMALL_VOLUME_FILES + 1)}
    secrets.set(make_secret("big", big), notify=False)
    secrets.set(make_secret("small", {"value": b"b0"}, namespace="team-b"), notify=False)
    rotator, _prom, big_target, small_target = _two_tenants(tmpfs, secrets, "big", "small")
    try:
        assert rotator.is_bulk(str(big_target)) and not rotator.is_bulk(str(small_target))
        with rotator.target_lock(str(big_target)):  # the writer of the big volume waits for this
            secrets.set(make_secret("big", {k: b"a1" for k in big}))
            secrets.set(make_secret("small", {"value": b"b1"}, namespace="team-b"))
            wait_for(lambda: (small_target / "value").read_bytes() == b"b1", what="the small volume rotated")
            assert (big_target / "k000").read_bytes() == b"a0"  # still stuck
        wait_idle(rotator)
        assert (big_target / "k000").read_bytes() == b"a1"
    finally:
        rotator.stop()


_HOLD_FLOCK = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)  # what a pod can do to its volume's root
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.read()
"""


class FlockHolder:
    """Another process (the pod) holding flock(2) on a volume's root until closed."""

    def __init__(self, target: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _HOLD_FLOCK, str(target)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None and self.proc.stdout.readline() == "held\n"

    def release(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


def _one_file_secrets() -> MemorySecrets:
    """Secret ``a`` (tenant A) and ``b`` (team-b), one file each at version 0."""
    secrets = MemorySecrets()
    secrets.set(make_secret("a", {"value": b"a0"}), notify=False)
    secrets.set(make_secret("b", {"value": b"b0"}, namespace="team-b"), notify=False)
    return secrets


def test_finding1_a_pod_holding_flock_on_its_volume_cannot_park_the_nodes_rotation(tmpfs: Path) -> None:
    """The volume's root is the pod's to open, and flock(2) needs no write access: a pod that
    holds it must not hold up the node's single rotation writer at all. Its own volume keeps
    its files (TargetBusyError, once) and is retried on a timer: it rotates once released,
    without another change."""
    secrets = _one_file_secrets()
    rotator, prom, vol_a, vol_b = _two_tenants(tmpfs, secrets, "a", "b")
    try:
        tenant = FlockHolder(vol_a)
        try:
            secrets.set(make_secret("a", {"value": b"a1"}))  # the single writer takes this first
            secrets.set(make_secret("b", {"value": b"b1"}, namespace="team-b"))
            wait_for(lambda: (vol_b / "value").read_bytes() == b"b1", timeout=5, what="B rotated")
            # A is refused and retried on a timer (0.1 s, 0.2 s, 0.4 s, ...), never waited for.
            wait_for(lambda: rotator._busy_attempts.get(str(vol_a), 0) >= 3, what="A retried")
            assert (vol_a / "value").read_bytes() == b"a0"
            assert sample(prom, "csi_vso_rotation_errors_total", {"kind": "TargetBusyError"}) == 1
        finally:
            tenant.release()
        wait_for(lambda: (vol_a / "value").read_bytes() == b"a1", what="A rotated once released, by itself")
        wait_for(lambda: str(vol_a) not in rotator._busy_attempts, what="A's retries over")
    finally:
        rotator.stop()


def test_finding1_revocation_of_a_volume_its_pod_holds_with_flock_is_retried_until_done(tmpfs: Path) -> None:
    """Holding the lock must not let a pod keep files it is no longer allowed: the removal is
    retried on the timer and happens as soon as the lock is gone, with no further change."""
    secrets = _one_file_secrets()
    rotator, prom, vol_a, _vol_b = _two_tenants(tmpfs, secrets, "a", "b")
    try:
        tenant = FlockHolder(vol_a)
        try:
            denied = {protected.ALLOWED_SERVICE_ACCOUNTS_ANNOTATION: '["someone-else"]'}
            secrets.set(make_secret("a", {"value": b"a1"}, annotations=denied))
            wait_for(lambda: rotator._busy_attempts.get(str(vol_a), 0) >= 2, what="revocation retried")
            assert (vol_a / "value").read_bytes() == b"a0"  # not yet: the pod holds the lock
        finally:
            tenant.release()
        wait_for(lambda: set(os.listdir(vol_a)) == {MARKER}, what="files removed once released")
        assert sample(prom, "csi_vso_rotation_access_revoked_total") == 1
    finally:
        rotator.stop()


def test_finding1_a_write_into_a_volume_held_with_flock_fails_fast_and_writes_nothing(tmpfs: Path) -> None:
    target = tmpfs / "vol"
    target.mkdir()
    first = write_atomically(target, [FileToWrite("a", 0o644, b"1")])
    tenant = FlockHolder(target)
    try:
        started = time.monotonic()
        with pytest.raises(TargetBusyError, match=r"is locked \(flock\) by another process for more than"):
            write_atomically(target, [FileToWrite("a", 0o644, b"2")])
        assert time.monotonic() - started < 5
        assert os.readlink(target / "..data") == first.data_dir and (target / "a").read_bytes() == b"1"
    finally:
        tenant.release()
    assert write_atomically(target, [FileToWrite("a", 0o644, b"2")]).changed


def test_finding1_a_mount_into_a_volume_held_with_flock_is_unavailable(env: Env) -> None:
    target = env.target()
    env.driver.mount(mount_request(env.pod, [{"secretName": "db"}], str(target)))
    env.put(env.ns, "db", {"password": b"changed"})
    tenant = FlockHolder(target)
    try:
        with pytest.raises(grpc.RpcError) as err:
            env.driver.mount(mount_request(env.pod, [{"secretName": "db"}], str(target)))
    finally:
        tenant.release()
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE, err.value.details()
    assert "is locked (flock) by another process" in err.value.details()
    assert "retry the Mount" in err.value.details()


# --------------------------------------------------------------------------------------------
# Finding 4: target_path confined to kubelet's directory of the verified pod's CSI volume


@pytest.mark.parametrize(
    ("rest", "ok"),
    [
        ("pods/0f1e-2d/volumes/kubernetes.io~csi/vol-1/mount", True),
        ("pods/0f1e-2d/volumes/kubernetes.io~csi/pvc-1.a_b/mount", True),
        ("pods/0f1e-2d/volumes/kubernetes.io~csi/vol-1/mount/", False),
        ("pods/0f1e-2d/volumes/kubernetes.io~csi/vol-1/mount/sub", False),
        ("pods/0f1e-2d/volumes/kubernetes.io~secret/vol-1/mount", False),
        ("pods/0f1e-2d/volumes/kubernetes.io~csi/../mount", False),
        ("pods/../volumes/kubernetes.io~csi/vol-1/mount", False),
        ("pods/0f1e-2d/volumes/kubernetes.io~csi/./mount", False),
        ("pods//0f1e-2d/volumes/kubernetes.io~csi/vol-1/mount", False),
        ("pods/0f1e-2d/volumes/kubernetes.io~csi/vol-1/mount/../../../../../../..", False),
        ("plugins/0f1e-2d/volumes/kubernetes.io~csi/vol-1/mount", False),
    ],
)
def test_finding4_target_shape(rest: str, ok: bool) -> None:
    got = parse_target(Path("/var/lib/kubelet"), "/var/lib/kubelet/" + rest)
    assert isinstance(got, VolumeTarget) is ok, got
    assert isinstance(parse_target(Path("/var/lib/kubelet"), "/var/lib/kubelet-other/" + rest), list)
    assert isinstance(parse_target(Path("/var/lib/kubelet"), "/" + rest), list)


def _foreign(env: Env, case: str, outside: Path) -> tuple[str, grpc.StatusCode, str, dict[str, str] | None]:
    """(target_path, code, words of the message, tokens) for one way of aiming a Mount elsewhere."""
    root = env.kubelet.root
    if case == "filesystem-root":
        return "/", grpc.StatusCode.INVALID_ARGUMENT, "is not <kubelet dir>/pods/<pod uid>", None
    if case == "outside-the-kubelet-dir":
        return str(outside), grpc.StatusCode.INVALID_ARGUMENT, "is not <kubelet dir>/pods/<pod uid>", None
    if case == "dotdot-components":
        target = env.target()
        return str(target) + "/../../x/mount", grpc.StatusCode.INVALID_ARGUMENT, "is not <kubelet dir>", None
    if case == "secret-volume-plugin":
        path = root / "pods" / env.pod.uid / "volumes" / "kubernetes.io~secret" / "v" / "mount"
        path.mkdir(parents=True)
        return str(path), grpc.StatusCode.INVALID_ARGUMENT, "is not <kubelet dir>/pods/<pod uid>", None
    if case == "another-pods-volume-with-own-token":
        token = env.cluster.token(env.pod, AUDIENCE)
        target = env.kubelet.target(env.other_pod.uid)
        return (
            str(target),
            grpc.StatusCode.PERMISSION_DENIED,
            "is not a volume of pod",
            {**env.pod.tokens, AUDIENCE: token},
        )
    if case == "symlinked-parent":
        volumes = root / "pods" / f"{env.pod.uid}" / "volumes"
        if volumes.exists():
            subprocess.run(["rm", "-rf", str(volumes)], check=True)
        (outside / "kubernetes.io~csi" / "vol" / "mount").mkdir(parents=True)
        volumes.parent.mkdir(parents=True, exist_ok=True)
        volumes.symlink_to(outside)
        target = volumes / "kubernetes.io~csi" / "vol" / "mount"
        return (
            str(target),
            grpc.StatusCode.FAILED_PRECONDITION,
            "'volumes' is not a directory (or is a symlink)",
            None,
        )
    # A kubelet secret volume's own ..data layout where the CSI volume should be.
    target = env.target()
    (target / "..2026_01_01_00_00_00.1").mkdir()
    (target / "..2026_01_01_00_00_00.1" / "password").write_bytes(b"kubelet's")
    (target / "..data").symlink_to("..2026_01_01_00_00_00.1")
    (target / "password").symlink_to("..data/password")
    return str(target), grpc.StatusCode.FAILED_PRECONDITION, "was not created by the writer", None


FOREIGN = [
    "filesystem-root",
    "outside-the-kubelet-dir",
    "dotdot-components",
    "secret-volume-plugin",
    "another-pods-volume-with-own-token",
    "symlinked-parent",
    "kubelet-data-layout",
]


def _tree(path: Path) -> dict[str, str]:
    out = {}
    for dirpath, dirs, files in os.walk(path):
        for name in dirs + files:
            full = Path(dirpath) / name
            out[str(full.relative_to(path))] = (
                os.readlink(full) if full.is_symlink() else oct(full.lstat().st_mode)
            )
    return out


@pytest.mark.parametrize("case", FOREIGN)
def test_finding4_target_outside_the_verified_pods_volume_is_refused(
    env: Env, tmp_path: Path, case: str
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    target, code, words, tokens = _foreign(env, case, outside)
    try:
        before = (_tree(env.kubelet.root), _tree(outside), sorted(os.listdir("/")))
        with pytest.raises(grpc.RpcError) as err:
            env.driver.mount(mount_request(env.pod, [{"secretName": "db"}], target, tokens=tokens))
        assert err.value.code() == code, err.value.details()
        assert words in err.value.details()
        assert (_tree(env.kubelet.root), _tree(outside), sorted(os.listdir("/"))) == before
        assert not os.path.lexists("/..data") and not os.path.lexists("/password")
    finally:
        volumes = env.kubelet.root / "pods" / env.pod.uid / "volumes"
        if volumes.is_symlink():
            volumes.unlink()  # the other cases need the pod's real volumes directory


def test_finding4_rotation_does_not_follow_a_parent_symlink_swapped_in_later(
    env: Env, tmp_path: Path
) -> None:
    env.put(env.ns, "swapped", {"password": b"one"})
    target = env.target()
    env.driver.mount(mount_request(env.pod, [{"secretName": "swapped"}], str(target)))
    assert (target / "password").read_bytes() == b"one"
    assert env.rotator is not None and env.rotator._registry.get(str(target)) is not None
    # Swap the pod's volumes directory for a symlink to a look-alike tree elsewhere.
    volumes = env.kubelet.root / "pods" / env.pod.uid / "volumes"
    decoy = tmp_path / "decoy"
    shutil.copytree(volumes, decoy, symlinks=True)
    moved = volumes.with_name("volumes.moved")
    volumes.rename(moved)
    volumes.symlink_to(decoy)
    before = _tree(decoy)
    try:
        env.put(env.ns, "swapped", {"password": b"two"})
        wait_for(lambda: env.rotator._registry.get(str(target)) is None, what="the volume dropped")  # type: ignore[union-attr]
        assert _tree(decoy) == before
    finally:
        volumes.unlink()
        moved.rename(volumes)


# --------------------------------------------------------------------------------------------
# Finding 1 under the DaemonSet's memory limit: the provider process survives the attack

MEMORY_LIMIT = 256 * 1024 * 1024


@pytest.fixture
def memory_cgroup() -> Iterator[MemoryCgroup]:
    """A fresh memory cgroup limited to 256 MiB (the DaemonSet's limit), removed after."""
    if reason := cgroup_skip_reason():
        pytest.skip(reason)
    group = MemoryCgroup(MEMORY_LIMIT)
    try:
        yield group
    finally:
        group.remove()


@pytest.mark.slow
def test_finding1_provider_survives_the_attack_under_a_256Mi_memory_cgroup(
    kube: Any, tmp_path: Path, kubelet: KubeletDir, memory_cgroup: MemoryCgroup
) -> None:
    """Today's attack: volumes of 17,000 one-key fileNames and Secrets of 20,000 one-byte keys
    (before the fix the second such volume got the provider OOM-killed under 256 MiB). Now each
    is refused, the process stays alive inside the limit, and it serves the next good Mount."""

    def join_cgroup() -> None:  # runs in the child between fork and exec
        memory_cgroup.add(os.getpid())

    cluster = Cluster(kube.api_client())
    ns = cluster.namespace("oom")
    pod = cluster.pod(ns)
    cluster.secret(ns, "db", {"password": b"pw"})
    cluster.secret(ns, "wide", {f"k{i:05d}": b"x" for i in range(20_000)})
    (tmp_path / "sockets").mkdir()
    provider = ProviderProcess(
        kube.kubeconfig,
        tmp_path / "sockets",
        tmp_path / "state",
        kubelet_dir=kubelet.root,
        preexec=join_cgroup,
    )
    provider.start().wait_serving(timeout=60)
    driver = DriverClient(provider.socket_path)
    try:
        assert str(provider.pid) in memory_cgroup.pids()
        codes = []
        for _ in range(4):
            for objects in (_many_file_names(17_000), [{"secretName": "wide"}]):
                with pytest.raises(grpc.RpcError) as err:
                    driver.mount(mount_request(pod, objects, str(kubelet.target(pod.uid))), timeout=120)
                codes.append(err.value.code())
                assert "512 files per volume" in err.value.details()
        assert set(codes) == {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED}
        target = kubelet.target(pod.uid)
        driver.mount(mount_request(pod, [{"secretName": "db"}], str(target)), timeout=60)
        assert (target / "password").read_bytes() == b"pw"
        assert provider.proc is not None and provider.proc.poll() is None
        peak = memory_cgroup.peak()
        assert peak < MEMORY_LIMIT, f"peak {peak} bytes"
        assert memory_cgroup.hit_limit() == 0
        print(f"provider peak memory under the attack: {peak / 2**20:.0f} MiB of {MEMORY_LIMIT / 2**20:.0f}")
    finally:
        driver.close()
        provider.stop()
        cluster.cleanup()


# --------------------------------------------------------------------------------------------
# What held in the review and must keep holding (cases no other test covers through Mount)


@pytest.fixture(scope="module")
def held_secrets(env: Env) -> None:
    env.put(env.ns, "reserved", {"..data": b"r1", "ok": b"r2"})
    env.put(env.ns, "marker", {"..csi-vso": b"m"})
    env.put(env.ns, "pair", {"user": b"u", "password": b"p"})


HELD: dict[str, tuple[Any, dict[str, str], grpc.StatusCode, str]] = {
    "reserved-key-by-expansion": (
        [{"secretName": "reserved"}],
        {},
        grpc.StatusCode.INVALID_ARGUMENT,
        "path '..data' starts with '..', which is reserved for the writer",
    ),
    "marker-key-by-expansion": (
        [{"secretName": "marker"}],
        {},
        grpc.StatusCode.INVALID_ARGUMENT,
        "path '..csi-vso' starts with '..', which is reserved for the writer",
    ),
    "reserved-fileName": (
        [{"secretName": "pair", "key": "user", "fileName": "..data"}],
        {},
        grpc.StatusCode.INVALID_ARGUMENT,
        "path '..data' starts with '..', which is reserved for the writer",
    ),
    "traversal-in-key": (
        [{"secretName": "pair", "key": "a/../../etc"}],
        {},
        grpc.StatusCode.INVALID_ARGUMENT,
        "contains a '..' element",
    ),
    "expansion-collides-with-fileName": (
        [{"secretName": "pair"}, {"secretName": "pair", "key": "password", "fileName": "user"}],
        {},
        grpc.StatusCode.INVALID_ARGUMENT,
        "path 'user' appears more than once",
    ),
    "file-used-as-directory": (
        [
            {"secretName": "pair", "key": "user", "fileName": "a"},
            {"secretName": "pair", "key": "password", "fileName": "a/b"},
        ],
        {},
        grpc.StatusCode.INVALID_ARGUMENT,
        "path 'a' is a file but 'a/b' needs it to be a directory",
    ),
    "setuid-mode": (
        [{"secretName": "pair", "key": "user", "mode": "4755"}],
        {},
        grpc.StatusCode.INVALID_ARGUMENT,
        "objects[0].mode must be an octal file mode between 0000 and 0777",
    ),
    "setgid-permission": (
        [{"secretName": "pair", "key": "user"}],
        {"permission": str(0o2644)},
        grpc.StatusCode.INVALID_ARGUMENT,
        "permission must be a file mode between 0 and 511",
    ),
    "bad-writeMode": (
        [{"secretName": "pair"}],
        {"write_mode": "kubelet"},
        grpc.StatusCode.INVALID_ARGUMENT,
        "writeMode must be 'provider' or 'driver'",
    ),
    "objects-a-string": ("just a string", {}, grpc.StatusCode.INVALID_ARGUMENT, "objects must be a list"),
    "yaml-python-tag": (
        "- !!python/object/apply:os.system ['touch /tmp/csi-vso-pwned']",
        {},
        grpc.StatusCode.INVALID_ARGUMENT,
        "objects is neither JSON nor YAML",
    ),
    "yaml-custom-tag": (
        "- !secret {secretName: pair}",
        {},
        grpc.StatusCode.INVALID_ARGUMENT,
        "objects is neither JSON nor YAML",
    ),
    "yaml-alias": (
        "- &a {secretName: pair}\n- *a\n",
        {},
        grpc.StatusCode.INVALID_ARGUMENT,
        "YAML aliases are not allowed",
    ),
    "yaml-deep-nesting": (
        "- secretName: " + "[" * 40 + "]" * 40,
        {},
        grpc.StatusCode.INVALID_ARGUMENT,
        "objects is nested too deeply",
    ),
}


@pytest.mark.parametrize("case", sorted(HELD))
def test_held_hostile_parameters_are_refused_and_write_nothing(
    env: Env, held_secrets: None, case: str
) -> None:
    objects, extra, code, words = HELD[case]
    target = env.target()
    with pytest.raises(grpc.RpcError) as err:
        env.driver.mount(mount_request(env.pod, objects, str(target), **extra))
    assert err.value.code() == code, err.value.details()
    assert words in err.value.details()
    assert os.listdir(target) == []
    assert not os.path.exists("/tmp/csi-vso-pwned")


@pytest.mark.parametrize("kind", ["file", "symlink-to-a-directory", "dangling-symlink"])
def test_held_target_that_is_not_a_plain_directory_is_refused(env: Env, tmp_path: Path, kind: str) -> None:
    target = env.kubelet.target(env.pod.uid, create=False)
    target.parent.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    if kind == "file":
        target.write_bytes(b"not a directory")
    elif kind == "symlink-to-a-directory":
        target.symlink_to(elsewhere)
    else:
        target.symlink_to(tmp_path / "missing")
    with pytest.raises(grpc.RpcError) as err:
        env.driver.mount(mount_request(env.pod, [{"secretName": "db"}], str(target)))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION, err.value.details()
    assert "'mount' is not a directory (or is a symlink)" in err.value.details()
    assert os.listdir(elsewhere) == []


def test_finding4_rotation_adopts_a_registered_volume_written_before_the_marker(tmpfs: Path) -> None:
    """A volume an older provider wrote has no marker; its registry record says the provider
    wrote it, so rotation (and revocation) still serve it, and leave the marker."""
    secrets_ = MemorySecrets()
    secrets_.set(make_secret("db", {"password": b"v1"}), notify=False)
    rotator, _registry, _prom = new_rotator(secrets_, tmpfs / "state")
    rotator.start()
    try:
        target = tmpfs / "vol"
        target.mkdir()
        mount(rotator, secrets_, make_spec(target, [{"secretName": "db"}]))
        wait_idle(rotator)
        (target / MARKER).unlink()
        secrets_.set(make_secret("db", {"password": b"v2"}))
        wait_idle(rotator)
        assert (target / "password").read_bytes() == b"v2"
        assert (target / MARKER).is_file()
    finally:
        rotator.stop()
