"""Mount end to end, acting as the driver: gRPC over the real unix socket, kubelet's exact
attribute keys, the in-memory API server (or a real cluster), a real tmpfs target as root.

The last test greps everything this module made the provider produce (log lines of every
logger at debug level, error messages returned to the driver, the /metrics page, the files
in its state dir) for every secret value and token the module used, and must find none.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import socket
import stat
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from csi_vso import __version__, logs, protected
from csi_vso.provider.registry import MOUNTS_DIR
from csi_vso.provider.rotation import RotationExtension
from csi_vso.provider.secret_cache import SecretCache
from csi_vso.provider.server import ProviderServer, remove_stale_socket
from csi_vso.provider.settings import ProviderSettings
from tests.provider.driver_support import Cluster, DriverClient, Pod, mount_request, wait_for
from tests.provider.kubelet_support import KubeletDir, module_kubelet_fixture  # noqa: F401
from tests.provider.tmpfs_support import tmpfs_fixture  # noqa: F401  (the tmpfs fixture)

pytestmark = pytest.mark.slow

AUDIENCE = "csi-vso"
# Every secret value and token this module hands to the provider; the last test greps for them.
SENSITIVE: list[str] = []
# Every error message the provider returned to the "driver".
ERRORS: list[str] = []


def secret_value(label: str) -> bytes:
    value = f"{label}-{secrets.token_hex(8)}"
    SENSITIVE.append(value)
    return value.encode()


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logs.JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture(scope="module")
def captured() -> Iterator[_Capture]:
    """Every record of every logger, at debug: levels another test (or logs.configure, which
    quiets the kubernetes client) set are lifted for the module, and loggers that do not
    propagate to the root get the handler themselves."""
    handler = _Capture()
    root = logging.getLogger()
    saved: list[tuple[logging.Logger, int, bool]] = [(root, root.level, root.disabled)]
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    detached: list[logging.Logger] = []
    for logger in list(logging.Logger.manager.loggerDict.values()):
        if not isinstance(logger, logging.Logger):
            continue
        saved.append((logger, logger.level, logger.disabled))
        logger.setLevel(logging.NOTSET)
        logger.disabled = False
        if not logger.propagate:
            logger.addHandler(handler)
            detached.append(logger)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        for logger in detached:
            logger.removeHandler(handler)
        for logger, level, disabled in saved:
            logger.setLevel(level)
            logger.disabled = disabled


class Env:
    def __init__(self, server: ProviderServer, driver: DriverClient, cluster: Cluster) -> None:
        self.server = server
        self.kubelet = server.settings.kubelet_dir  # targets: target_in(env.kubelet, pod)
        self.driver = driver
        self.cluster = cluster
        self.ns = cluster.namespace("team")
        self.other_ns = cluster.namespace("other")
        self.pod = cluster.pod(self.ns)
        self.other_pod = cluster.pod(self.other_ns, name="other-0", service_account="other")
        # The pods' own API-audience tokens: every Mount carries one; none may leak either.
        SENSITIVE.extend([*self.pod.tokens.values(), *self.other_pod.tokens.values()])
        self.db = {"password": secret_value("db-password"), "user": secret_value("db-user")}
        self.put(self.ns, "db", self.db)

    def put(self, namespace: str, name: str, data: dict[str, bytes], **kwargs: Any) -> None:
        self.cluster.secret(namespace, name, data, **kwargs)
        want = dict(data)

        def cached() -> bool:
            if not self.server.cache.known(namespace, name):
                return True  # pod-token mode, not watched yet: the next Mount lists it afresh
            got = self.server.cache.get(namespace, name)
            if not kwargs.get("protect", True):
                return True
            if got is None:
                return False
            return {k: base64.b64decode(v) for k, v in (got.data or {}).items()} == want and dict(
                got.metadata.annotations or {}
            ) == dict(kwargs.get("annotations") or {})

        wait_for(cached, what=f"Secret {namespace}/{name} in the provider's cache")

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.server.metrics_port}/metrics", timeout=5) as r:
            return str(r.read().decode())


@pytest.fixture(scope="module")
def env(
    kube: Any, tmp_path_factory: pytest.TempPathFactory, captured: _Capture, module_kubelet: KubeletDir
) -> Iterator[Env]:
    base = tmp_path_factory.mktemp("provider")
    settings = ProviderSettings(
        kubelet_dir=module_kubelet.root,
        socket_dir=base / "sockets",
        provider_name="vso",
        state_dir=base / "state",
        metrics_host="127.0.0.1",
        metrics_port=0,
        grace_seconds=5,
        token_audience=AUDIENCE,
        token_dir=base / "tokens",
    )
    # With rotation, as `csi-vso provider` runs: its logs and mount records are grepped too.
    server = ProviderServer(settings, kube.api_client(), extensions=[RotationExtension()])
    server.start()
    driver = DriverClient(str(settings.socket_path))
    cluster = Cluster(kube.api_client())
    try:
        assert server.cache.wait_for_sync(30)
        wait_for(server.ready, what="provider ready")
        yield Env(server, driver, cluster)
    finally:
        driver.close()
        server.stop(5)
        cluster.cleanup()


def target_in(root: Path, pod: Pod) -> Path:
    """A volume target shaped like kubelet's: <root>/pods/<uid>/volumes/kubernetes.io~csi/<vol>/mount."""
    path = root / "pods" / pod.uid / "volumes" / "kubernetes.io~csi" / secrets.token_hex(3) / "mount"
    path.mkdir(parents=True)
    return path


def visible(target: Path) -> dict[str, tuple[int, bytes]]:
    """Every file a reader sees through the visible names (following our symlinks), with its mode."""
    out: dict[str, tuple[int, bytes]] = {}
    for dirpath, _dirs, files in os.walk(target, followlinks=True):
        rel = os.path.relpath(dirpath, target)
        if rel.split(os.sep)[0].startswith(".."):
            continue
        for name in files:
            if rel == "." and name.startswith(".."):
                continue  # the writer's marker, not a file of the volume
            path = Path(dirpath) / name
            key = os.path.normpath(os.path.join(rel, name))
            out[key] = (stat.S_IMODE(path.stat().st_mode), path.read_bytes())
    return out


def snapshot(target: Path) -> dict[str, str]:
    """Names, types and link targets directly in ``target``: what 'nothing new' is checked against."""
    out = {}
    for entry in sorted(os.listdir(target)):
        st = os.lstat(target / entry)
        out[entry] = os.readlink(target / entry) if stat.S_ISLNK(st.st_mode) else oct(st.st_mode)
    return out


# --------------------------------------------------------------------------------------------
# Version, health, readiness


def test_version(env: Env) -> None:
    response = env.driver.version()
    assert (response.version, response.runtime_name, response.runtime_version) == (
        "v1alpha1",
        "csi-vso",
        __version__,
    )


def test_health_and_http_endpoints(env: Env) -> None:
    health = health_pb2_grpc.HealthStub(env.driver.channel)
    for service in ("", "v1alpha1.CSIDriverProvider"):
        status = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status
        assert status == health_pb2.HealthCheckResponse.SERVING
    for path in ("/healthz", "/readyz"):
        with urllib.request.urlopen(f"http://127.0.0.1:{env.server.metrics_port}{path}", timeout=5) as r:
            assert r.status == 200
    assert stat.S_IMODE(os.stat(env.server.socket_path).st_mode) == 0o600


# --------------------------------------------------------------------------------------------
# Happy paths

HAPPY = {
    "one-key": (
        [{"secretName": "db", "key": "password"}],
        None,
        {"password": (0o644, "password")},
    ),
    "all-keys": (
        [{"secretName": "db"}],
        None,
        {"password": (0o644, "password"), "user": (0o644, "user")},
    ),
    "nested-fileName-and-modes": (
        [
            {"secretName": "db", "key": "password", "fileName": "db/password", "mode": "0400"},
            {"secretName": "db", "key": "user", "fileName": "db/user"},
        ],
        None,
        {"db/password": (0o400, "password"), "db/user": (0o640, "user")},
    ),
    "yaml-objects": (
        "- secretName: db\n  key: password\n  fileName: pw\n  mode: '0600'\n",
        None,
        {"pw": (0o600, "password")},
    ),
}


@pytest.mark.parametrize("write_mode", ["provider", "driver", None])
@pytest.mark.parametrize("case", sorted(HAPPY))
def test_happy_paths(env: Env, tmpfs: Path, case: str, write_mode: str | None) -> None:
    objects, _, expected = HAPPY[case]
    target = target_in(env.kubelet, env.pod)
    permission = "416" if case == "nested-fileName-and-modes" else "420"  # 0640 as default
    response = env.driver.mount(
        mount_request(env.pod, objects, str(target), write_mode=write_mode, permission=permission)
    )
    want = {path: (mode, env.db[key]) for path, (mode, key) in expected.items()}
    assert sorted(v.id for v in response.object_version) == sorted(want)
    assert all(len(v.version) == 32 for v in response.object_version)
    if write_mode == "driver":
        assert {f.path: (f.mode, f.contents) for f in response.files} == want
        assert os.listdir(target) == []
    else:
        assert list(response.files) == []
        assert visible(target) == want
        assert os.path.islink(target / "..data")


def test_repeated_mount_is_idempotent_and_keeps_mtimes(env: Env, tmpfs: Path) -> None:
    target = target_in(env.kubelet, env.pod)
    request = mount_request(env.pod, [{"secretName": "db"}], str(target))
    first = env.driver.mount(request)
    data_dir = os.readlink(target / "..data")
    mtimes = {name: os.stat(target / name).st_mtime_ns for name in ("password", "user")}
    second = env.driver.mount(request)
    assert list(second.object_version) == list(first.object_version)
    assert os.readlink(target / "..data") == data_dir
    assert {name: os.stat(target / name).st_mtime_ns for name in mtimes} == mtimes


def test_version_changes_iff_content_changes(env: Env, tmpfs: Path) -> None:
    env.put(env.ns, "rotating", {"a": secret_value("rot-a1"), "b": secret_value("rot-b")})
    target = target_in(env.kubelet, env.pod)
    request = mount_request(env.pod, [{"secretName": "rotating"}], str(target))
    before = {v.id: v.version for v in env.driver.mount(request).object_version}
    b_value = env.server.cache.get(env.ns, "rotating").data["b"]
    env.put(env.ns, "rotating", {"a": secret_value("rot-a2"), "b": base64.b64decode(b_value)})
    after = {v.id: v.version for v in env.driver.mount(request).object_version}
    assert after["a"] != before["a"]
    assert after["b"] == before["b"]
    assert visible(target)["a"][1].startswith(b"rot-a2")


def test_republish_after_a_rotation_rewrites_nothing(env: Env, tmpfs: Path) -> None:
    """Kubelet re-calls Mount every minute or two: after rotation wrote a volume, that is a no-op."""
    env.put(env.ns, "republished", {"k": secret_value("rep-1")})
    target = target_in(env.kubelet, env.pod)
    request = mount_request(env.pod, [{"secretName": "republished"}], str(target))
    env.driver.mount(request)
    new = secret_value("rep-2")
    env.put(env.ns, "republished", {"k": new})
    wait_for(lambda: (target / "k").read_bytes() == new, what="rotation wrote the new value")
    data_dir = os.readlink(target / "..data")
    mtime = os.stat(target / "k").st_mtime_ns
    republished = env.driver.mount(request)
    assert os.readlink(target / "..data") == data_dir and os.stat(target / "k").st_mtime_ns == mtime
    # The versions it reports are those of the rotated content (as a driver-mode Mount renders it).
    fresh = env.driver.mount(
        mount_request(
            env.pod,
            [{"secretName": "republished"}],
            str(target_in(env.kubelet, env.pod)),
            write_mode="driver",
        )
    )
    assert list(republished.object_version) == list(fresh.object_version)
    assert [f.contents for f in fresh.files] == [new]


def test_cross_namespace_mount_allowed_by_policy(env: Env, tmpfs: Path) -> None:
    policy = {
        protected.ALLOWED_NAMESPACES_ANNOTATION: protected.encode_list([env.other_ns]),
        protected.ALLOWED_SERVICE_ACCOUNTS_ANNOTATION: protected.encode_list([f"{env.other_ns}/other"]),
    }
    env.put(env.ns, "shared", {"token": secret_value("shared")}, annotations=policy)
    target = target_in(env.kubelet, env.other_pod)
    objects = [{"secretName": "shared", "secretNamespace": env.ns, "key": "token"}]
    env.driver.mount(mount_request(env.other_pod, objects, str(target)))
    assert visible(target)["token"][1].startswith(b"shared-")


def test_a_mount_without_the_api_audience_token_says_how_to_fix_it(env: Env, tmpfs: Path) -> None:
    """Pod-token mode reads as the pod: a driver that only passes the csi-vso token is refused."""
    token = env.cluster.token(env.pod, AUDIENCE)
    SENSITIVE.append(token)
    target = target_in(env.kubelet, env.pod)
    with pytest.raises(grpc.RpcError) as err:
        env.driver.mount(
            mount_request(
                env.pod, [{"secretName": "db", "key": "user"}], str(target), tokens={AUDIENCE: token}
            )
        )
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert 'a tokenRequests entry with audience ""' in err.value.details()
    assert os.listdir(target) == []


# --------------------------------------------------------------------------------------------
# Bad inputs: each has its code and a message naming the problem; nothing new appears in the
# target, and the provider serves the next good Mount.


def _bad_cases(env: Env, tmpfs: Path) -> dict[str, tuple[Any, grpc.StatusCode, str]]:
    pod = env.pod
    cases: dict[str, tuple[Any, grpc.StatusCode, str]] = {}

    def req(objects: Any, **kw: Any) -> Any:
        return mount_request(kw.pop("pod", pod), objects, kw.pop("target", "TARGET"), **kw)

    bad_attrs = req([{"secretName": "db"}])
    bad_attrs.attributes = bad_attrs.attributes[:-1]  # cut the closing brace
    cases["malformed-attributes"] = (
        bad_attrs,
        grpc.StatusCode.INVALID_ARGUMENT,
        "attributes is not valid JSON",
    )
    cases["objects-not-a-list"] = (
        req({"secretName": "db"}),
        grpc.StatusCode.INVALID_ARGUMENT,
        "objects must be a list, not a mapping",
    )
    cases["missing-secretName"] = (
        req([{"key": "password"}]),
        grpc.StatusCode.INVALID_ARGUMENT,
        "objects[0].secretName is required",
    )
    cases["absolute-fileName"] = (
        req([{"secretName": "db", "key": "password", "fileName": "/etc/passwd"}]),
        grpc.StatusCode.INVALID_ARGUMENT,
        "objects[0].fileName: path '/etc/passwd' is absolute",
    )
    cases["dotdot-fileName"] = (
        req([{"secretName": "db", "key": "password", "fileName": "../escape"}]),
        grpc.StatusCode.INVALID_ARGUMENT,
        "objects[0].fileName: path '../escape' contains a '..' element",
    )
    cases["symlink-escape"] = (
        req([{"secretName": "db", "key": "password", "fileName": "db/password"}]),
        grpc.StatusCode.FAILED_PRECONDITION,
        "/db' exists and was not created by the writer",
    )
    cases["two-objects-one-path"] = (
        req([{"secretName": "db", "key": "password", "fileName": "x"}, {"secretName": "db", "key": "x"}]),
        grpc.StatusCode.INVALID_ARGUMENT,
        "objects[0] and objects[1] both write 'x'",
    )
    cases["invalid-mode"] = (
        req([{"secretName": "db", "key": "password", "mode": "rw-r--r--"}]),
        grpc.StatusCode.INVALID_ARGUMENT,
        "objects[0].mode must be an octal file mode",
    )
    cases["unknown-key"] = (
        req([{"secretName": "db", "objectName": "password"}]),
        grpc.StatusCode.INVALID_ARGUMENT,
        "objects[0] has unknown key 'objectName'",
    )
    # Read as the pod: no Role names an unprotected or missing Secret, so the API server refuses
    # both alike (the pod cannot tell them apart, nor from one it may not read).
    cases["unprotected-secret"] = (
        req([{"secretName": "plain"}]),
        grpc.StatusCode.PERMISSION_DENIED,
        f"may not mount protected Secret {env.ns}/plain: the API server does not let service account 'app'",
    )
    cases["nonexistent-secret"] = (
        req([{"secretName": "nothing"}]),
        grpc.StatusCode.PERMISSION_DENIED,
        f"may not mount protected Secret {env.ns}/nothing: the API server does not let service account 'app'",
    )
    cases["missing-key"] = (
        req([{"secretName": "db", "key": "nope"}]),
        grpc.StatusCode.NOT_FOUND,
        f"key 'nope' not found in protected Secret {env.ns}/db",
    )
    cases["other-namespace-without-policy"] = (
        req([{"secretName": "db", "secretNamespace": env.ns}], pod=env.other_pod),
        grpc.StatusCode.PERMISSION_DENIED,
        f"pod {env.other_ns}/other-0 may not mount protected Secret {env.ns}/db: the API server does not let",
    )
    cases["service-account-not-allowed"] = (
        req([{"secretName": "narrow"}]),
        grpc.StatusCode.PERMISSION_DENIED,
        f"may not mount protected Secret {env.ns}/narrow: the API server does not let service account 'app'",
    )
    # Forged claims carrying the real pod's own token: the SelfSubjectReview names the pod.
    cases["pod-uid-mismatch"] = (
        req([{"secretName": "db"}], pod=pod.claiming(uid="0000-not-the-uid")),
        grpc.StatusCode.PERMISSION_DENIED,
        f"pod {env.ns}/app-0: its token is bound to a different pod",
    )
    cases["service-account-mismatch"] = (
        req([{"secretName": "db"}], pod=pod.claiming(service_account="default")),
        grpc.StatusCode.PERMISSION_DENIED,
        f"pod {env.ns}/app-0: its token belongs to another identity than service account 'default'",
    )
    cases["pod-does-not-exist"] = (
        req([{"secretName": "db"}], pod=pod.claiming(name="ghost")),
        grpc.StatusCode.PERMISSION_DENIED,
        f"pod {env.ns}/ghost: its token is bound to a different pod",
    )
    cases["no-token-at-all"] = (
        req([{"secretName": "db"}], pod=Pod(pod.namespace, pod.name, pod.uid, pod.service_account)),
        grpc.StatusCode.PERMISSION_DENIED,
        f"pod {env.ns}/app-0: the Mount carries no service-account token for the API server's audiences",
    )
    wrong = env.cluster.token(pod, "some-other-audience")
    SENSITIVE.append(wrong)
    cases["token-wrong-audience"] = (
        req([{"secretName": "db"}], tokens={"": wrong}),
        grpc.StatusCode.PERMISSION_DENIED,
        f"pod {env.ns}/app-0: its service-account token was refused by the API server",
    )
    cases["over-4-MiB"] = (
        req([{"secretName": "big", "key": "blob", "fileName": f"f{i}"} for i in range(5)]),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "over the 4194304-byte limit",
    )
    return cases


BAD_CASES = [
    "malformed-attributes",
    "objects-not-a-list",
    "missing-secretName",
    "absolute-fileName",
    "dotdot-fileName",
    "symlink-escape",
    "two-objects-one-path",
    "invalid-mode",
    "unknown-key",
    "unprotected-secret",
    "nonexistent-secret",
    "missing-key",
    "other-namespace-without-policy",
    "service-account-not-allowed",
    "pod-uid-mismatch",
    "service-account-mismatch",
    "pod-does-not-exist",
    "no-token-at-all",
    "token-wrong-audience",
    "over-4-MiB",
]


@pytest.fixture(scope="module")
def bad_setup(env: Env) -> None:
    env.put(env.ns, "plain", {"password": secret_value("plain")}, protect=False)
    env.put(
        env.ns,
        "narrow",
        {"k": secret_value("narrow")},
        annotations={protected.ALLOWED_SERVICE_ACCOUNTS_ANNOTATION: '["someone-else"]'},
    )
    env.put(env.ns, "big", {"blob": b"B" * (900 * 1024)})


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input(env: Env, tmpfs: Path, bad_setup: None, captured: _Capture, case: str) -> None:
    request, code, message = _bad_cases(env, tmpfs)[case]
    # The volume of the pod the request is for (the provider checks the target's pod UID).
    owner = env.other_pod if env.other_pod.uid in request.attributes else env.pod
    target = target_in(env.kubelet, owner)
    outside = tmpfs / "outside"
    outside.mkdir()
    if case == "symlink-escape":
        (target / "db").symlink_to(outside)
    request.target_path = str(target)
    before = snapshot(target)
    with pytest.raises(grpc.RpcError) as err:
        env.driver.mount(request)
    ERRORS.append(err.value.details())
    assert err.value.code() == code, err.value.details()
    assert message in err.value.details()
    assert snapshot(target) == before
    assert os.listdir(outside) == []
    # The log says which volume was refused (kubelet's target path carries the pod UID).
    refusals = [json.loads(line) for line in captured.lines if '"mount refused"' in line]
    assert any(r["target"] == str(target) and r["code"] == code.name for r in refusals)
    # The provider still serves the next good Mount.
    good = target_in(env.kubelet, env.pod)
    env.driver.mount(mount_request(env.pod, [{"secretName": "db", "key": "user"}], str(good)))
    assert visible(good) == {"user": (0o644, env.db["user"])}


@pytest.mark.parametrize("name", ["a" * 200, "ü" * 100], ids=["ascii", "non-ascii"])
def test_hundreds_of_problems_still_reach_the_driver(env: Env, tmpfs: Path, name: str) -> None:
    """gRPC drops a response whose trailers pass 16 KiB: the driver must still get the problems."""
    objects = [{"secretName": "db", "key": "password", "fileName": f"/{name}{i}"} for i in range(300)]
    with pytest.raises(grpc.RpcError) as err:
        env.driver.mount(mount_request(env.pod, objects, str(target_in(env.kubelet, env.pod))))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    details = err.value.details()
    assert details.startswith(f"invalid mount parameters: objects[0].fileName: path '/{name}0' is absolute")
    shown = details.count(" is absolute")
    assert 0 < shown < 300 and details.endswith(f"; and {300 - shown} more")


def test_unprotected_and_missing_secrets_are_indistinguishable(
    env: Env, bad_setup: None, tmpfs: Path
) -> None:
    details = []
    for name in ("plain", "nothing"):
        with pytest.raises(grpc.RpcError) as err:
            env.driver.mount(
                mount_request(env.pod, [{"secretName": name}], str(target_in(env.kubelet, env.pod)))
            )
        details.append((err.value.code(), err.value.details().replace(name, "NAME")))
    assert details[0] == details[1]


# --------------------------------------------------------------------------------------------
# Readiness before the cache syncs, stale sockets, graceful stop


def _dead_api() -> Any:
    from kubernetes import client

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]  # nothing listens here once closed
    configuration = client.Configuration()
    configuration.host = f"http://127.0.0.1:{dead_port}"
    return client.ApiClient(configuration)


def test_unreachable_api_answers_unavailable_and_writes_nothing(tmp_path: Path) -> None:
    settings = ProviderSettings(
        socket_dir=tmp_path / "s",
        state_dir=tmp_path / "state",
        token_dir=tmp_path / "tokens",
        kubelet_dir=tmp_path,
        metrics_port=0,
        grace_seconds=1,
    )
    server = ProviderServer(settings, _dead_api())
    server.start()
    driver = DriverClient(str(settings.socket_path))
    pod = Pod("ns", "p", "uid", "sa", tokens={"": "not-checked-offline"})
    target = target_in(tmp_path, pod)
    try:
        with pytest.raises(grpc.RpcError) as err:
            driver.mount(mount_request(pod, [{"secretName": "db"}], str(target)))
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "SelfSubjectReview failed" in err.value.details()
        assert os.listdir(target) == []
    finally:
        driver.close()
        server.stop(1)
    assert not settings.socket_path.exists()


def test_unsynced_cluster_cache_answers_unavailable_and_is_not_ready(tmp_path: Path, kube: Any) -> None:
    """Cluster mode: until the cluster-wide cache synced, UNAVAILABLE and not ready."""
    settings = ProviderSettings(
        socket_dir=tmp_path / "s",
        state_dir=tmp_path / "state",
        metrics_port=0,
        grace_seconds=1,
        secret_access="cluster",
        kubelet_dir=tmp_path,
    )
    server = ProviderServer(settings, kube.api_client())
    server.cache = SecretCache(_dead_api())  # passed its RBAC check, then lost the API
    server.start()
    driver = DriverClient(str(settings.socket_path))
    try:
        pod = Pod("ns", "p", "uid", "sa", tokens={"": "x"})
        with pytest.raises(grpc.RpcError) as err:
            driver.mount(mount_request(pod, [{"secretName": "db"}], str(target_in(tmp_path, pod))))
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "has not synced" in err.value.details()
        health = health_pb2_grpc.HealthStub(driver.channel)
        status = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status
        assert status == health_pb2.HealthCheckResponse.NOT_SERVING
        with pytest.raises(urllib.error.HTTPError) as http_err:
            urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/readyz", timeout=5)
        assert http_err.value.code == 503
    finally:
        driver.close()
        server.stop(1)


def test_cluster_mode_refuses_to_start_when_the_api_cannot_confirm_its_rbac(tmp_path: Path) -> None:
    settings = ProviderSettings(
        socket_dir=tmp_path / "s", state_dir=tmp_path / "state", metrics_port=0, secret_access="cluster"
    )
    server = ProviderServer(settings, _dead_api())
    with pytest.raises(RuntimeError, match="cannot check the provider's RBAC"):
        server.start()
    server.stop(0)
    assert not settings.socket_path.exists()


def test_stale_socket_is_replaced_but_other_files_are_not(tmp_path: Path) -> None:
    path = tmp_path / "vso.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))  # left behind, like after a crash
    remove_stale_socket(path)
    assert not path.exists()
    path.write_text("not a socket")
    with pytest.raises(RuntimeError, match="exists and is not a socket"):
        remove_stale_socket(path)
    assert path.read_text() == "not a socket"


def test_metrics_count_mounts_latency_bytes_and_cached_secrets(env: Env, tmpfs: Path) -> None:
    def sample(text: str, name: str) -> float:
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
        return 0.0

    before = env.metrics()
    target = target_in(env.kubelet, env.pod)
    env.driver.mount(mount_request(env.pod, [{"secretName": "db"}], str(target), write_mode="driver"))
    with pytest.raises(grpc.RpcError):
        env.driver.mount(mount_request(env.pod, [{"secretName": "nothing"}], str(target)))
    after = env.metrics()
    size = len(env.db["password"]) + len(env.db["user"])
    for name, delta in [
        ('csi_vso_provider_mounts_total{code="OK",mode="driver"}', 1),
        ('csi_vso_provider_mounts_total{code="PERMISSION_DENIED",mode="unknown"}', 1),
        ("csi_vso_provider_mount_duration_seconds_count", 2),
        ('csi_vso_provider_served_bytes_total{mode="driver"}', size),
    ]:
        assert sample(after, name) - sample(before, name) == delta, name
    assert sample(after, "csi_vso_provider_cached_secrets") == env.server.cache.count() >= 1


# --------------------------------------------------------------------------------------------
# Must run last: nothing sensitive escaped.


def test_no_secret_or_token_in_logs_errors_or_metrics(env: Env, captured: _Capture) -> None:
    metrics = env.metrics()
    assert 'csi_vso_provider_mounts_total{code="OK",mode="provider"}' in metrics
    assert 'csi_vso_provider_mounts_total{code="PERMISSION_DENIED",mode="unknown"}' in metrics
    assert "csi_vso_provider_cached_secrets" in metrics
    assert len(ERRORS) == len(BAD_CASES)
    assert any("mount refused" in line for line in captured.lines)  # the capture did see the provider
    assert len(SENSITIVE) >= 10
    # Everything the provider keeps on the node's disk: the mount registry and the version key.
    state = env.server.settings.state_dir
    on_disk = {
        str(path.relative_to(state)): path.read_bytes().decode("latin-1")
        for path in sorted(state.rglob("*"))
        if path.is_file()
    }
    records = [name for name in on_disk if name.startswith(MOUNTS_DIR + "/")]
    assert len(records) >= 10  # the provider-mode Mounts above were registered
    haystack = "\n".join([*captured.lines, *ERRORS, metrics, *on_disk.values()])
    leaked = [
        value
        for value in SENSITIVE
        if value in haystack or base64.b64encode(value.encode()).decode() in haystack
    ]
    assert leaked == []
    json.dumps(captured.lines)  # every line is plain text
