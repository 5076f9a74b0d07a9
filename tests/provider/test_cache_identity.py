"""The Secret watch cache and the pod identity check, against the real (in-memory) API server."""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from csi_vso.devkit.apiserver import APIServer
from csi_vso.kube import api_client
from csi_vso.provider.errors import PermissionDenied
from csi_vso.provider.identity import IdentityVerifier, KubeIdentityAPI, PodFacts, TokenFacts
from csi_vso.provider.params import PodClaim
from csi_vso.provider.secret_cache import SecretCache
from tests.provider.driver_support import Cluster, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(kube: Any) -> Iterator[Cluster]:
    c = Cluster(kube.api_client())
    try:
        yield c
    finally:
        c.cleanup()


@pytest.fixture
def cache(kube: Any) -> Iterator[SecretCache]:
    c = SecretCache(kube.api_client())
    c.start()
    try:
        assert c.wait_for_sync(30)
        yield c
    finally:
        c.stop()


def _value(secret: client.V1Secret | None, key: str) -> bytes | None:
    if secret is None:
        return None
    return base64.b64decode(secret.data[key])


def test_cache_holds_only_protected_secrets_and_tells_listeners_after_updating(
    cluster: Cluster, cache: SecretCache
) -> None:
    ns = cluster.namespace("cache")
    seen: list[tuple[str, str, bytes | None]] = []
    lock = threading.Lock()

    def listener(namespace: str, name: str) -> None:
        # Called after the cache holds the new state: what we read here is what changed.
        with lock:
            seen.append((namespace, name, _value(cache.get(namespace, name), "v")))

    cache.add_listener(listener)
    cluster.secret(ns, "plain", {"v": b"unprotected"}, protect=False)
    cluster.secret(ns, "guarded", {"v": b"one"})
    wait_for(lambda: cache.get(ns, "guarded") is not None, what="protected Secret cached")
    # Watch events arrive in order: the unprotected Secret, written first, was never delivered.
    assert cache.get(ns, "plain") is None
    assert cache.has_synced()

    cluster.secret(ns, "guarded", {"v": b"two"})
    wait_for(lambda: _value(cache.get(ns, "guarded"), "v") == b"two", what="update cached")
    cluster.core.delete_namespaced_secret("guarded", ns)
    wait_for(lambda: cache.get(ns, "guarded") is None, what="delete applied")
    wait_for(lambda: len([s for s in seen if s[1] == "guarded"]) >= 3, what="listener calls")
    with lock:
        mine = [s for s in seen if s[0] == ns]
    assert mine == [(ns, "guarded", b"one"), (ns, "guarded", b"two"), (ns, "guarded", None)]


def test_removing_the_protected_label_drops_the_secret(cluster: Cluster, cache: SecretCache) -> None:
    ns = cluster.namespace("cache")
    cluster.secret(ns, "s", {"v": b"x"})
    wait_for(lambda: cache.get(ns, "s") is not None, what="cached")
    cluster.secret(ns, "s", {"v": b"x"}, protect=False)
    wait_for(lambda: cache.get(ns, "s") is None, what="unlabelled Secret dropped from the cache")


class CountingAPI:
    """The real KubeIdentityAPI, counting its calls (to show what the caches save)."""

    def __init__(self, real: KubeIdentityAPI) -> None:
        self.real = real
        self.pod_reads = 0
        self.reviews = 0

    def get_pod(self, namespace: str, name: str) -> PodFacts | None:
        self.pod_reads += 1
        return self.real.get_pod(namespace, name)

    def review_token(self, token: str, audience: str) -> TokenFacts:
        self.reviews += 1
        return self.real.review_token(token, audience)


def test_identity_is_checked_against_the_api_once_per_pod_uid(cluster: Cluster, kube: Any) -> None:
    ns = cluster.namespace("ident")
    pod = cluster.pod(ns)
    api = CountingAPI(KubeIdentityAPI(kube.api_client()))
    verifier = IdentityVerifier(api, audience="csi-vso", allow_unverified=True)
    claim = PodClaim(name=pod.name, namespace=ns, uid=pod.uid, service_account="app")
    for _ in range(3):
        verified = verifier.verify(claim)
    assert (verified.namespace, verified.name, verified.uid, verified.service_account) == (
        ns,
        pod.name,
        pod.uid,
        "app",
    )
    assert api.pod_reads == 1
    # A failed check is never cached: the same wrong claim asks the API each time.
    wrong = PodClaim(name=pod.name, namespace=ns, uid="not-it", service_account="app")
    for _ in range(2):
        with pytest.raises(PermissionDenied, match="has a different UID"):
            verifier.verify(wrong)
    assert api.pod_reads == 3


def test_token_is_reviewed_once_and_must_match_the_claim(cluster: Cluster, kube: Any) -> None:
    ns = cluster.namespace("ident")
    pod = cluster.pod(ns)
    token = cluster.token(pod, "csi-vso")
    api = CountingAPI(KubeIdentityAPI(kube.api_client()))
    verifier = IdentityVerifier(api, audience="csi-vso")
    claim = PodClaim(
        name=pod.name, namespace=ns, uid=pod.uid, service_account="app", tokens={"csi-vso": token}
    )
    verifier.verify(claim)
    verifier.verify(claim)
    assert api.reviews == 1
    # The same valid token offered for another service account's claim is refused.
    other = PodClaim(
        name=pod.name, namespace=ns, uid=pod.uid, service_account="admin", tokens={"csi-vso": token}
    )
    with pytest.raises(PermissionDenied, match="another identity than service account 'admin'") as err:
        verifier.verify(other)
    assert token not in str(err.value)
    # A token of a sibling pod (same service account) does not vouch for this pod.
    sibling = cluster.pod(ns, name="app-1")
    sibling_token = cluster.token(sibling, "csi-vso")
    borrowed = PodClaim(
        name=pod.name, namespace=ns, uid=pod.uid, service_account="app", tokens={"csi-vso": sibling_token}
    )
    with pytest.raises(PermissionDenied, match="its token is bound to a different pod"):
        verifier.verify(borrowed)
    assert api.pod_reads == 0  # the review named the pod: no pod read was needed
    garbage = PodClaim(
        name=pod.name, namespace=ns, uid=pod.uid, service_account="app", tokens={"csi-vso": "x.y.z"}
    )
    with pytest.raises(PermissionDenied, match="was not accepted by a TokenReview"):
        verifier.verify(garbage)


def test_finding5_a_pod_token_is_required_unless_insecure_allow_unverified_pods(
    cluster: Cluster, kube: Any
) -> None:
    """Secure by default: attribute keys naming a real pod are not enough without its token."""
    ns = cluster.namespace("ident")
    pod = cluster.pod(ns)
    api = CountingAPI(KubeIdentityAPI(kube.api_client()))
    verifier = IdentityVerifier(api, audience="csi-vso")
    bare = PodClaim(name=pod.name, namespace=ns, uid=pod.uid, service_account="app")
    # The attribute keys are right and the pod exists, yet without a token nothing is served.
    with pytest.raises(PermissionDenied, match=r"carries no service-account token .* cannot be verified"):
        verifier.verify(bare)
    elsewhere = PodClaim(
        name=pod.name, namespace=ns, uid=pod.uid, service_account="app", tokens={"vault": "a.b.c"}
    )
    with pytest.raises(PermissionDenied, match="--insecure-allow-unverified-pods"):
        verifier.verify(elsewhere)
    assert (api.pod_reads, api.reviews) == (0, 0)  # refused before asking the API
    token = cluster.token(pod, "csi-vso")
    verified = verifier.verify(
        PodClaim(name=pod.name, namespace=ns, uid=pod.uid, service_account="app", tokens={"csi-vso": token})
    )
    assert (verified.namespace, verified.name, verified.uid) == (ns, pod.name, pod.uid)
    assert api.reviews == 1
    # Only the explicit insecure switch accepts the bare claim (checked against the API).
    insecure = IdentityVerifier(api, audience="csi-vso", allow_unverified=True)
    assert insecure.verify(bare).uid == pod.uid
    assert api.pod_reads == 1


def test_clean_stop_logs_no_error(kube: Any, caplog: pytest.LogCaptureFixture) -> None:
    cache = SecretCache(kube.api_client())
    cache.start()
    assert cache.wait_for_sync(30)
    with caplog.at_level(logging.DEBUG):
        cache.stop()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_a_deletion_found_by_a_relist_reaches_listeners_after_the_cache_dropped_it(
    tmp_path: Path,
) -> None:
    """After 410 Gone the informer re-lists and reports vanished Secrets *before* replacing its
    cache; listeners (rotation) must still see them gone, as promised for every other event."""
    server = APIServer(port=0)
    server.start()
    kubeconfig = str(tmp_path / "kubeconfig")
    server.write_kubeconfig(kubeconfig)
    cluster = Cluster(api_client(kubeconfig))
    cache = SecretCache(api_client(kubeconfig))
    gate = threading.Event()
    blocked = threading.Event()
    seen: list[tuple[str, bool]] = []

    def listener(namespace: str, name: str) -> None:
        seen.append((name, cache.get(namespace, name) is None))
        if name == "hold":  # keep the informer away from its watch while the test cuts it
            blocked.set()
            gate.wait(20)

    cache.add_listener(listener)
    cache.start()
    try:
        assert cache.wait_for_sync(30)
        ns = cluster.namespace("relist")
        cluster.secret(ns, "gone", {"v": b"x"})
        wait_for(lambda: cache.get(ns, "gone") is not None, what="Secret cached")
        cluster.secret(ns, "hold", {"v": b"x"})
        assert blocked.wait(20)
        # While the informer sits in the listener: its stream ends, the deletion happens
        # unseen, and the event history it would resume from is compacted away (410 next).
        server.drop_watches()
        server.set_watch_window(0)
        cluster.core.delete_namespaced_secret("gone", ns)
        cluster.secret(ns, "after", {"v": b"x"})
        gate.set()
        wait_for(lambda: cache.get(ns, "gone") is None, what="re-list dropped the Secret")
        wait_for(lambda: len([s for s in seen if s[0] == "gone"]) >= 2, what="listener told of the deletion")
        assert [s for s in seen if s[0] == "gone"] == [("gone", False), ("gone", True)]
    finally:
        gate.set()
        cache.stop()
        server.stop()
