"""Pod-token mode end to end: a node reads only what its pods mount, with their own tokens.

The provider runs in-process (so the tests can see which pod's token each watch uses), serving
gRPC over its real unix socket against the API server; pods and their tokens are made through
the API as kubelet would (TokenRequest bound to the pod, audience ""). The Role/RoleBinding per
Secret are the operator's own (:mod:`csi_vso.operator.access_rbac`), applied by the test in the
operator's place. On a server that enforces RBAC the denials come from the API server itself;
the policy annotations are checked by the provider either way.
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from kubernetes import client
from kubernetes import utils as k8s_utils
from kubernetes.client.exceptions import ApiException

from csi_vso import protected
from csi_vso.operator.api import AccessPolicy
from csi_vso.provider.authz import VerifiedPod
from csi_vso.provider.errors import PermissionDenied
from csi_vso.provider.identity import IdentityVerifier
from csi_vso.provider.params import PodClaim
from csi_vso.provider.pod_api import SelfFacts
from csi_vso.provider.rotation import RotationExtension, Rotator
from csi_vso.provider.secret_watches import SecretWatches
from csi_vso.provider.server import ProviderServer
from csi_vso.provider.settings import ProviderSettings
from tests.fixtures.cgroup import MemoryCgroup
from tests.fixtures.cgroup import skip_reason as cgroup_skip_reason
from tests.provider.driver_support import Cluster, DriverClient, Pod, grant, mount_request, wait_for
from tests.provider.kubelet_support import KubeletDir
from tests.provider.provider_process import ProviderProcess

pytestmark = pytest.mark.slow

OWN_NAMESPACE = AccessPolicy()  # the default policy: pods of the Secret's own namespace


def policy_annotations(policy: AccessPolicy) -> dict[str, str]:
    out = {protected.ALLOWED_NAMESPACES_ANNOTATION: protected.encode_list(policy.namespaces)}
    if policy.service_accounts:
        out[protected.ALLOWED_SERVICE_ACCOUNTS_ANNOTATION] = protected.encode_list(policy.service_accounts)
    return out


class Node:
    """One node's provider (pod-token mode, rotation on) and the cluster around it."""

    def __init__(
        self, server: ProviderServer, rotation: RotationExtension, cluster: Cluster, root: Path
    ) -> None:
        self.server = server
        self.rotation = rotation
        self.cluster = cluster
        self.root = root
        self.driver = DriverClient(str(server.settings.socket_path))
        self.ns = cluster.namespace("node")

    @property
    def watches(self) -> SecretWatches:
        assert isinstance(self.server.cache, SecretWatches)
        return self.server.cache

    @property
    def rotator(self) -> Rotator:
        assert self.rotation.rotator is not None
        return self.rotation.rotator

    def target(self, pod: Pod, volume: str = "v") -> Path:
        path = self.root / "pods" / pod.uid / "volumes" / "kubernetes.io~csi" / volume / "mount"
        path.mkdir(parents=True)
        return path

    def put(self, name: str, value: bytes, policy: AccessPolicy = OWN_NAMESPACE) -> None:
        self.cluster.secret(self.ns, name, {"v": value}, annotations=policy_annotations(policy))

    def mount(self, pod: Pod, secret: str, target: Path, **kw: Any) -> Any:
        objects = [{"secretName": secret, "secretNamespace": self.ns, "key": "v"}]
        return self.driver.mount(mount_request(pod, objects, str(target), **kw))

    def kubelet_removes(self, pod: Pod) -> None:
        """The pod is deleted: kubelet unpublishes its volumes (their directories go)."""
        self.cluster.core.delete_namespaced_pod(pod.name, pod.namespace)
        gone = self.root / "pods" / pod.uid
        while gone.exists():  # a rotation may be writing a new version into it meanwhile
            shutil.rmtree(gone, ignore_errors=True)
        self.rotator.collect_garbage()


@pytest.fixture
def node(kube: Any, tmp_path: Path) -> Iterator[Node]:
    settings = ProviderSettings(
        socket_dir=tmp_path / "sockets",
        state_dir=tmp_path / "state",
        token_dir=tmp_path / "tokens",
        kubelet_dir=tmp_path / "kubelet",
        metrics_port=0,
        grace_seconds=5,
    )
    rotation = RotationExtension()
    server = ProviderServer(settings, kube.api_client(), extensions=[rotation])
    server.start()
    cluster = Cluster(kube.api_client())
    env: Node | None = None
    try:
        wait_for(server.ready, what="provider ready")
        wait_for(lambda: rotation.rotator is not None, what="rotation wired")
        env = Node(server, rotation, cluster, tmp_path / "kubelet")
        yield env
    finally:
        if env is not None:
            env.driver.close()
        server.stop(5)
        cluster.cleanup()


def enforces_rbac(kube: Any, node: Node, pod: Pod) -> bool:
    """Whether the API server answers access reviews from RBAC (the devkit did not, at first)."""
    allowed, _ = node.server.pods.may_read(pod.tokens[""], node.ns, "no-role-names-this-secret")
    return not allowed


# --------------------------------------------------------------------------------------------


def test_finding2b_pod_token_mode_holds_and_watches_only_what_its_pods_mount(node: Node) -> None:
    """Issue 10 finding 2(b): forged labelled Secrets elsewhere cost this node nothing."""
    pod = node.cluster.pod(node.ns)
    for i in range(20):  # labelled Secrets nobody on this node mounts (700 KiB each)
        node.cluster.secret(node.ns, f"forged-{i}", {"v": b"F" * (700 * 1024)})
    node.put("db", b"one")
    grant(node.cluster.api, node.ns, "db", AccessPolicy())
    target = node.target(pod)
    node.mount(pod, "db", target)
    assert (target / "v").read_bytes() == b"one"
    assert node.watches.count() == 1
    assert set(node.watches.watching()) == {(node.ns, "db")}
    metrics = node.server.metrics.registry
    assert metrics.get_sample_value("csi_vso_provider_cached_secrets") == 1
    assert metrics.get_sample_value("csi_vso_provider_secret_watches") == 1


def test_republish_with_the_same_token_costs_no_api_call(node: Node) -> None:
    """Kubelet re-calls Mount every minute or two, mostly with the token it already gave: the
    verdicts are cached and the watch keeps its stream (no reconnect, no re-list)."""
    pod = node.cluster.pod(node.ns)
    node.put("db", b"one")
    target = node.target(pod)
    node.mount(pod, "db", target)
    node.watches.tidy()
    before = node.server.pods.calls
    for _ in range(3):
        node.mount(pod, "db", target)
        node.watches.tidy()
    assert node.server.pods.calls == before


def test_token_file_is_private_and_not_in_the_state_dir(node: Node) -> None:
    pod = node.cluster.pod(node.ns)
    node.put("db", b"one")
    grant(node.cluster.api, node.ns, "db", AccessPolicy())
    node.mount(pod, "db", node.target(pod))
    token_dir = node.server.settings.token_dir
    [kept] = list(token_dir.iterdir())
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert stat.S_IMODE(token_dir.stat().st_mode) == 0o700
    assert pod.tokens[""].encode() in kept.read_bytes()
    state = node.server.settings.state_dir
    assert all(pod.tokens[""].encode() not in p.read_bytes() for p in state.rglob("*") if p.is_file())


def test_denied_pod_gets_permission_denied_naming_the_secret_and_nothing_written(
    kube: Any, node: Node
) -> None:
    allowed = node.cluster.pod(node.ns, name="reader-0", service_account="reader")
    other = node.cluster.pod(node.ns, name="other-0", service_account="other")
    policy = AccessPolicy(service_accounts=(f"{node.ns}/reader",))
    node.put("db", b"one", policy)
    grant(node.cluster.api, node.ns, "db", policy)
    node.mount(allowed, "db", node.target(allowed))
    target = node.target(other)
    with pytest.raises(grpc.RpcError) as err:
        node.mount(other, "db", target)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    details = err.value.details()
    assert f"pod {node.ns}/other-0 may not mount protected Secret {node.ns}/db" in details
    if enforces_rbac(kube, node, other):
        assert "the API server does not let service account 'other' read it" in details
    else:  # the provider's own policy check (defense in depth) refuses it all the same
        assert "service account 'other' is not in its" in details
    assert os.listdir(target) == []


def test_policy_check_refuses_what_rbac_would_allow(node: Node) -> None:
    """The RoleBinding admits the namespace, the Secret's policy narrows it: the provider refuses."""
    pod = node.cluster.pod(node.ns, name="other-0", service_account="other")
    node.put("db", b"one", AccessPolicy(service_accounts=("reader",)))
    grant(node.cluster.api, node.ns, "db", AccessPolicy())  # wider than the annotation
    target = node.target(pod)
    with pytest.raises(grpc.RpcError) as err:
        node.mount(pod, "db", target)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert (
        f"may not mount protected Secret {node.ns}/db: service account 'other' is not in"
        in err.value.details()
    )
    assert os.listdir(target) == []


def test_policy_narrowed_removes_the_excluded_pods_files_at_the_next_event(node: Node) -> None:
    reader = node.cluster.pod(node.ns, name="reader-0", service_account="reader")
    other = node.cluster.pod(node.ns, name="other-0", service_account="other")
    node.put("db", b"one")
    grant(node.cluster.api, node.ns, "db", AccessPolicy())
    kept, dropped = node.target(reader), node.target(other)
    node.mount(reader, "db", kept)
    node.mount(other, "db", dropped)
    assert (dropped / "v").read_bytes() == b"one"
    # What the operator does on a narrowed CR: RoleBinding first, then the Secret's policy.
    narrowed = AccessPolicy(service_accounts=(f"{node.ns}/reader",))
    grant(node.cluster.api, node.ns, "db", narrowed)
    node.put("db", b"two", narrowed)
    wait_for(lambda: not os.path.lexists(dropped / "v"), what="the excluded pod's files removed")
    wait_for(lambda: (kept / "v").read_bytes() == b"two", what="the admitted pod rotated")
    assert [e for e in os.listdir(dropped) if not e.startswith("..")] == []


def test_token_turnover_keeps_rotation_going_and_the_last_pod_stops_the_watch(
    node: Node, caplog: pytest.LogCaptureFixture
) -> None:
    first = node.cluster.pod(node.ns, name="app-0")
    second = node.cluster.pod(node.ns, name="app-1")
    # The first pod's token lives longer: the watch picks it (the freshest valid one).
    first = Pod(
        first.namespace,
        first.name,
        first.uid,
        first.service_account,
        tokens={"": node.cluster.token(first, "", 7200)},
    )
    node.put("db", b"v0")
    grant(node.cluster.api, node.ns, "db", AccessPolicy())
    a, b = node.target(first), node.target(second)
    node.mount(first, "db", a)
    node.mount(second, "db", b)
    node.watches.tidy()  # housekeeping sees both pods' registered volumes
    assert node.watches.watching() == {(node.ns, "db"): first.uid}

    # Keep rotating while the first pod goes away; every version must reach the second pod.
    stop = threading.Event()
    written: list[bytes] = []

    def rotate() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            value = f"v{n}".encode()
            node.put("db", value)
            written.append(value)
            wait_for(lambda value=value: (b / "v").read_bytes() == value, what=f"{value!r} in the second pod")

    rotating = threading.Thread(target=rotate)
    rotating.start()
    try:
        wait_for(lambda: len(written) >= 3, what="rotations before the turnover")
        node.kubelet_removes(first)
        node.watches.tidy()  # housekeeping: the first pod's token is no longer needed
        wait_for(lambda: node.watches.watching().get((node.ns, "db")) == second.uid, what="turnover")
        count = len(written)
        wait_for(lambda: len(written) >= count + 3, what="rotations after the turnover")
    finally:
        stop.set()
        rotating.join()
    assert (b / "v").read_bytes() == written[-1]

    # A switch of credentials is routine: nothing logged as an error (no informer traceback).
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    # The last pod goes: the watch stops and the node holds nothing.
    node.kubelet_removes(second)
    node.watches.tidy()
    assert node.watches.watching() == {}
    assert node.watches.count() == 0
    assert list(node.server.settings.token_dir.iterdir()) == []


def test_refused_token_is_replaced_by_another_pods_without_a_gap(kube: Any, node: Node) -> None:
    """The pod whose token the watch uses is deleted while its volume is still registered (kubelet
    not done yet): at the stream's next reconnect the API server refuses that token (401)."""
    if kube.server is None:
        pytest.skip("needs the devkit server's drop_watches hook to force a reconnect")
    first = node.cluster.pod(node.ns, name="app-0")
    second = node.cluster.pod(node.ns, name="app-1")
    first = Pod(
        first.namespace,
        first.name,
        first.uid,
        first.service_account,
        tokens={"": node.cluster.token(first, "", 7200)},
    )
    node.put("db", b"v0")
    grant(node.cluster.api, node.ns, "db", AccessPolicy())
    b = node.target(second)
    node.mount(first, "db", node.target(first))
    node.mount(second, "db", b)
    assert node.watches.watching()[(node.ns, "db")] == first.uid
    node.cluster.core.delete_namespaced_pod(first.name, first.namespace)
    kube.server.drop_watches()  # as an API server restart: the informer reconnects
    node.put("db", b"after")
    wait_for(lambda: (b / "v").read_bytes() == b"after", what="rotation with the second pod's token")
    assert node.watches.watching()[(node.ns, "db")] == second.uid
    # Issue 10 finding 6: the refused pod's cached identity is gone with it; a replayed Mount
    # with its token is refused by the API server, not served from a cache.
    with pytest.raises(grpc.RpcError) as err:
        node.mount(
            first, "db", node.root / "pods" / first.uid / "volumes" / "kubernetes.io~csi" / "v" / "mount"
        )
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "refused by the API server" in err.value.details()


def test_token_about_to_expire_is_replaced_by_a_fresher_one_without_a_gap(kube: Any, node: Node) -> None:
    if kube.server is None:
        pytest.skip("needs the devkit server to mint a token shorter than TokenRequest's 10 minutes")
    first = node.cluster.pod(node.ns, name="app-0")
    short = kube.server.mint_token(
        node.ns, "app", [kube.server.app.issuer.issuer], expiration_seconds=90, bound_pod=first.name
    )
    first = Pod(first.namespace, first.name, first.uid, first.service_account, tokens={"": short})
    node.put("db", b"v0")
    a = node.target(first)
    node.mount(first, "db", a)
    assert node.watches.watching()[(node.ns, "db")] == first.uid  # the only token there is
    second = node.cluster.pod(node.ns, name="app-1")
    b = node.target(second)
    node.mount(second, "db", b)
    node.watches.tidy()  # the first token expires within the renewal margin: switch now
    wait_for(lambda: node.watches.watching()[(node.ns, "db")] == second.uid, what="renewed credential")
    node.put("db", b"v1")
    wait_for(lambda: (a / "v").read_bytes() == b"v1" and (b / "v").read_bytes() == b"v1", what="rotation")


# --------------------------------------------------------------------------------------------
# Issue 10 finding 6: no cached verdict outlives the token's exp; a deleted pod drops it.


def _jwt(exp: float) -> str:
    import json

    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256'})}.{part({'exp': int(exp)})}.sig"


class FakeSelfReviews:
    """SelfSubjectReview answers from a table, counting calls (the real one is tested above)."""

    def __init__(self) -> None:
        self.calls = 0
        self.refuse = False

    def review_self(self, token: str) -> SelfFacts:
        from csi_vso.provider.pod_api import TokenRefused

        self.calls += 1
        if self.refuse:
            raise TokenRefused("refused")
        return SelfFacts("system:serviceaccount:ns:app", "app-0", "uid-0", None)


class NoIdentityAPI:
    def get_pod(self, namespace: str, name: str) -> None:
        raise AssertionError("not used with a pod token")

    def review_token(self, token: str, audience: str) -> None:
        raise AssertionError("not used with a pod token")


def test_finding6_a_cached_verdict_never_outlives_the_tokens_exp() -> None:
    now = [1_000_000.0]
    reviews = FakeSelfReviews()
    verifier = IdentityVerifier(
        NoIdentityAPI(),  # type: ignore[arg-type]
        pods=reviews,
        audience="csi-vso",
        require_api_token=True,
        token_ttl=300,
        clock=lambda: now[0],
    )
    claim = PodClaim("app-0", "ns", "uid-0", "app", tokens={"": _jwt(now[0] + 100)})
    assert verifier.verify(claim) == VerifiedPod("ns", "app-0", "uid-0", "app")
    now[0] += 50
    verifier.verify(claim)
    assert reviews.calls == 1  # cached while the token lives
    now[0] += 51  # past exp, well within the 300 s TTL: the API server is asked again
    reviews.refuse = True
    with pytest.raises(PermissionDenied, match="refused by the API server"):
        verifier.verify(claim)
    assert reviews.calls == 2


def test_finding6_a_pod_seen_gone_drops_its_cached_verdicts() -> None:
    now = [1_000_000.0]
    reviews = FakeSelfReviews()
    verifier = IdentityVerifier(
        NoIdentityAPI(),  # type: ignore[arg-type]
        pods=reviews,
        audience="csi-vso",
        require_api_token=True,
        clock=lambda: now[0],
    )
    claim = PodClaim("app-0", "ns", "uid-0", "app", tokens={"": _jwt(now[0] + 3600)})
    verifier.verify(claim)
    verifier.verify(claim)
    assert reviews.calls == 1
    assert verifier.forget_pod("uid-0") == 1  # e.g. a watch got 401 for this pod's token
    reviews.refuse = True
    with pytest.raises(PermissionDenied):
        verifier.verify(claim)
    assert reviews.calls == 2


def test_restart_resumes_from_kept_tokens_before_any_republish(kube: Any, tmp_path: Path) -> None:
    """A restarted provider watches again with the pods' kept tokens: a change made while it was
    down reaches the volume without a new Mount."""
    cluster = Cluster(kube.api_client())
    ns = cluster.namespace("restart")
    pod = cluster.pod(ns)
    cluster.secret(ns, "db", {"v": b"one"})
    grant(cluster.api, ns, "db", AccessPolicy())
    target = tmp_path / "kubelet" / "pods" / pod.uid / "volumes" / "kubernetes.io~csi" / "v" / "mount"
    target.mkdir(parents=True)

    def provider() -> ProviderServer:
        settings = ProviderSettings(
            socket_dir=tmp_path / "sockets",
            state_dir=tmp_path / "state",
            token_dir=tmp_path / "tokens",
            kubelet_dir=tmp_path / "kubelet",
            metrics_port=0,
            grace_seconds=5,
        )
        return ProviderServer(settings, kube.api_client(), extensions=[RotationExtension()])

    server = provider()
    server.start()
    try:
        driver = DriverClient(str(server.settings.socket_path))
        driver.mount(mount_request(pod, [{"secretName": "db", "key": "v"}], str(target)))
        driver.close()
    finally:
        server.stop(5)
    cluster.secret(ns, "db", {"v": b"two"})
    server = provider()
    started = time.monotonic()
    server.start()
    try:
        wait_for(lambda: (target / "v").read_bytes() == b"two", what="the change made while down")
        print(f"restart: volume current {1000 * (time.monotonic() - started):.0f} ms after start")
    finally:
        server.stop(5)
        cluster.cleanup()


# --------------------------------------------------------------------------------------------
# The provider as deployed: its own ServiceAccount, bound to exactly deploy/'s ClusterRole.

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _apply(api: client.ApiClient, path: Path) -> None:
    """Create each object of a deploy/ file as it stands (replace when it exists)."""
    for doc in yaml.safe_load_all(path.read_text()):
        try:
            k8s_utils.create_from_dict(api, doc)
        except k8s_utils.FailToCreateError as exc:
            if any(e.status != 409 for e in exc.api_exceptions):
                raise
            kind, meta = doc["kind"], doc["metadata"]
            if kind == "ClusterRole":
                client.RbacAuthorizationV1Api(api).replace_cluster_role(meta["name"], doc)
            elif kind == "ClusterRoleBinding":
                client.RbacAuthorizationV1Api(api).replace_cluster_role_binding(meta["name"], doc)


def _kubeconfig_as(kube: Any, token: str, path: Path) -> str:
    """The admin kubeconfig's cluster (server, CA), with ``token`` as the only credential."""
    config = yaml.safe_load(Path(kube.kubeconfig).read_text())
    context = next(c for c in config["contexts"] if c["name"] == config["current-context"])
    cluster = next(c for c in config["clusters"] if c["name"] == context["context"]["cluster"])
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [cluster],
                "users": [{"name": "provider", "user": {"token": token}}],
                "contexts": [
                    {"name": "provider", "context": {"cluster": cluster["name"], "user": "provider"}}
                ],
                "current-context": "provider",
            }
        )
    )
    return str(path)


def test_provider_runs_as_its_deployed_service_account_with_no_secret_rbac(kube: Any, tmp_path: Path) -> None:
    admin = kube.api_client()
    for name in ("namespaces.yaml", "provider/serviceaccount.yaml", "provider/rbac.yaml"):
        _apply(admin, DEPLOY / name)
    core = client.CoreV1Api(admin)
    answer = core.create_namespaced_service_account_token(
        "csi-vso-provider", "csi-vso-system", {"spec": {"audiences": [], "expirationSeconds": 3600}}
    )
    identity = answer.status.token
    as_provider = client.CoreV1Api(kube.client_with_token(identity))
    cluster = Cluster(admin)
    ns = cluster.namespace("deployed")
    cluster.secret(ns, "db", {"v": b"one"})
    # That identity's own reads of Secrets are refused by the API server.
    for call in (
        lambda: as_provider.list_secret_for_all_namespaces(),
        lambda: as_provider.list_namespaced_secret(ns),
        lambda: as_provider.read_namespaced_secret("db", ns),
    ):
        with pytest.raises(ApiException) as refused:
            call()
        assert refused.value.status == 403
    pod = cluster.pod(ns)
    socket_dir = tmp_path / "sockets"
    socket_dir.mkdir()
    provider = ProviderProcess(
        _kubeconfig_as(kube, identity, tmp_path / "kubeconfig"),
        socket_dir,
        tmp_path / "state",
        kubelet_dir=tmp_path / "kubelet",
    )
    driver: DriverClient | None = None
    try:
        provider.start().wait_serving()
        driver = DriverClient(provider.socket_path)
        objects = [{"secretName": "db", "key": "v"}]
        volume = tmp_path / "kubelet" / "pods" / pod.uid / "volumes" / "kubernetes.io~csi" / "v" / "mount"
        volume.mkdir(parents=True)
        driver.mount(mount_request(pod, objects, str(volume)))
        unused = KubeletDir(tmp_path / "kubelet").target(pod.uid)
        returned = driver.mount(mount_request(pod, objects, str(unused), write_mode="driver"))
        assert [(f.path, f.contents) for f in returned.files] == [("v", b"one")]
        assert (volume / "v").read_bytes() == b"one"
        cluster.secret(ns, "db", {"v": b"two"})
        wait_for(lambda: (volume / "v").read_bytes() == b"two", what="live rotation")
    finally:
        if driver is not None:
            driver.close()
        provider.stop()
        cluster.cleanup()


def test_finding2b_cluster_mode_bounds_its_cache_and_keeps_serving(kube: Any, tmp_path: Path) -> None:
    """Forged labelled Secrets (anyone who can create a Secret) fill at most the cache's cap;
    one that does not fit answers UNAVAILABLE naming the limit; a small Secret is still served."""
    cap = 2 * 1024 * 1024
    cluster = Cluster(kube.api_client())
    ns = cluster.namespace("forged")
    forged = {"v": b"F" * (700 * 1024)}  # 933 KiB as base64: two fit under the cap, three do not
    for i in range(3):  # before the start: arrive in the paged initial list
        cluster.secret(ns, f"forged-{i}", forged, protect=False)
        cluster.core.patch_namespaced_secret(
            f"forged-{i}", ns, {"metadata": {"labels": protected.protected_labels("forged")}}
        )
    settings = ProviderSettings(
        socket_dir=tmp_path / "sockets",
        state_dir=tmp_path / "state",
        metrics_port=0,
        grace_seconds=5,
        secret_access="cluster",
        cluster_cache_max_bytes=cap,
        kubelet_dir=tmp_path / "kubelet",
    )
    server = ProviderServer(settings, kube.api_client())
    server.start()
    driver = DriverClient(str(settings.socket_path))
    kubelet = KubeletDir(tmp_path / "kubelet")
    try:
        assert server.cache.wait_for_sync(30)
        for i in range(3, 6):  # after: arrive as watch events
            cluster.secret(ns, f"forged-{i}", forged, protect=False)
            cluster.core.patch_namespaced_secret(
                f"forged-{i}", ns, {"metadata": {"labels": protected.protected_labels("forged")}}
            )
        cluster.secret(ns, "small", {"v": b"legit"})
        pod = cluster.pod(ns)
        wait_for(lambda: server.cache.get(ns, "small") is not None, what="the small Secret cached")
        held = server.cache.held_bytes()  # type: ignore[union-attr]
        assert held is not None and held <= cap
        cached = [n for n in (f"forged-{i}" for i in range(6)) if server.cache.get(ns, n) is not None]
        assert len(cached) == 2
        skipped = next(f"forged-{i}" for i in range(6) if f"forged-{i}" not in cached)
        with pytest.raises(grpc.RpcError) as err:
            driver.mount(
                mount_request(
                    pod,
                    [{"secretName": skipped}],
                    str(kubelet.target(pod.uid)),
                    write_mode="driver",
                )
            )
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert f"protected Secret {ns}/{skipped} is not cached" in err.value.details()
        assert "--cluster-cache-max-bytes cap" in err.value.details()
        served = driver.mount(
            mount_request(
                pod,
                [{"secretName": "small"}],
                str(kubelet.target(pod.uid)),
                write_mode="driver",
            )
        )
        assert [f.contents for f in served.files] == [b"legit"]
    finally:
        driver.close()
        server.stop(5)
        cluster.cleanup()


# --------------------------------------------------------------------------------------------
# Issue 10 finding 2(b) under the DaemonSet's memory limit

MEMORY_LIMIT = 256 * 1024 * 1024


@pytest.fixture
def memory_limit() -> Iterator[MemoryCgroup]:
    """A fresh memory cgroup limited to 256 MiB (the DaemonSet's limit), removed after."""
    if reason := cgroup_skip_reason():
        pytest.skip(reason)
    group = MemoryCgroup(MEMORY_LIMIT)
    try:
        yield group
    finally:
        group.remove()


@pytest.mark.parametrize("mode", ["pod-token", "cluster"])
def test_finding2b_provider_survives_400_forged_700KiB_secrets_under_256Mi(
    kube: Any, tmp_path: Path, memory_limit: MemoryCgroup, mode: str
) -> None:
    """Before: 213 labelled 700 KiB Secrets crash-looped every provider. Now pod-token mode never
    holds them and cluster mode holds at most its cap; the process lives and serves."""
    cluster = Cluster(kube.api_client())
    ns = cluster.namespace("forged")
    cluster.secret(ns, "db", {"v": b"legit"})
    pod = cluster.pod(ns)
    (tmp_path / "sockets").mkdir()
    provider = ProviderProcess(
        kube.kubeconfig,
        tmp_path / "sockets",
        tmp_path / "state",
        extra_args=("--secret-access", mode),
        kubelet_dir=tmp_path / "kubelet",
    )
    provider.start().wait_serving(timeout=120)
    memory_limit.add(provider.pid)
    driver = DriverClient(provider.socket_path)
    try:
        forged = {"v": base64.b64encode(b"F" * (700 * 1024)).decode()}
        labels = protected.protected_labels("forged")
        for i in range(400):
            cluster.core.create_namespaced_secret(
                ns, {"metadata": {"name": f"forged-{i}", "labels": labels}, "data": forged}
            )
        target = KubeletDir(tmp_path / "kubelet").target(pod.uid)
        driver.mount(mount_request(pod, [{"secretName": "db", "key": "v"}], str(target)), timeout=120)
        assert (target / "v").read_bytes() == b"legit"
        peak = memory_limit.peak()
        # Charged from the moment it joined (after start-up, ~90 MiB RSS, which stays charged elsewhere).
        print(
            f"{mode}: +{peak / 2**20:.0f} MiB peak after start-up, 400 forged 700 KiB Secrets, limit 256 MiB"
        )
        assert provider.proc is not None and provider.proc.poll() is None  # not OOM-killed
        assert memory_limit.hit_limit() == 0  # never even at the limit
    finally:
        driver.close()
        provider.stop()
        cluster.cleanup()


def test_cluster_mode_refuses_to_start_without_its_rbac(kube: Any, tmp_path: Path) -> None:
    """As the deployed ServiceAccount (deploy/'s empty ClusterRole), --secret-access=cluster is
    refused at start with the missing grant named; with the example grant applied it starts."""
    admin = kube.api_client()
    for name in ("namespaces.yaml", "provider/serviceaccount.yaml", "provider/rbac.yaml"):
        _apply(admin, DEPLOY / name)
    answer = client.CoreV1Api(admin).create_namespaced_service_account_token(
        "csi-vso-provider", "csi-vso-system", {"spec": {"audiences": [], "expirationSeconds": 3600}}
    )
    as_provider = kube.client_with_token(answer.status.token)
    settings = ProviderSettings(
        socket_dir=tmp_path / "sockets", state_dir=tmp_path / "state", metrics_port=0, secret_access="cluster"
    )
    server = ProviderServer(settings, as_provider)
    with pytest.raises(RuntimeError) as refused:
        server.start()
    server.stop(0)
    assert "--secret-access=cluster needs RBAC the provider's identity lacks" in str(refused.value)
    assert "list secrets (cluster-wide), watch secrets (cluster-wide)" in str(refused.value)
    rbac = client.RbacAuthorizationV1Api(admin)
    _apply(admin, DEPLOY / "examples" / "provider-cluster-mode-rbac.yaml")
    try:
        server = ProviderServer(settings, as_provider)
        server.start()
        try:
            assert server.cache.wait_for_sync(30)
        finally:
            server.stop(5)
    finally:
        rbac.delete_cluster_role_binding("csi-vso-provider-cluster-mode")
        rbac.delete_cluster_role("csi-vso-provider-cluster-mode")
