"""OpenBao's ``kubernetes`` auth method against our Kubernetes API server (issue 2, "must show").

A real OpenBao validates ServiceAccount tokens by calling the API server's TokenReview endpoint,
so this proves end to end that TokenRequest tokens from our server are accepted exactly when a real
cluster would accept them: the right ServiceAccount and audience log in; a wrong audience, an
expired token and a deleted ServiceAccount are refused.

Who refuses what (checked here): OpenBao itself rejects a wrong audience (role ``audience``) and an
expired token from the JWT's claims before asking Kubernetes, so for those two the test also asks
our API server's TokenReview directly and asserts it refuses them as well; a deleted ServiceAccount
is caught only by the TokenReview, and the same token is shown to work before the deletion.

Configuration facts (DESIGN.md §6): ``disable_local_ca_jwt=true`` (OpenBao does not run in a pod)
requires ``kubernetes_ca_cert`` even over plain http; without ``token_reviewer_jwt`` OpenBao would
use the presented JWT itself as the bearer token for the TokenReview, which the API server refuses
for a "vault"-audience token (as a real one does), so a reviewer ServiceAccount's token is set.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import hvac
import pytest
from kubernetes import client as k8s

from csi_vso.devkit.kubeauth import configure_kubernetes_auth
from csi_vso.devkit.openbao import OpenBaoDevServer
from csi_vso.operator.vault import AuthSettings, ConnectionSettings, VaultDenied, VaultSession
from tests.devkit.conftest import wait_for

AUDIENCE = "vault"


@pytest.fixture
def k8s_auth(
    openbao: OpenBaoDevServer, kube: Any, namespace: str, unique_path: str
) -> Iterator[tuple[str, str]]:
    """A ``kubernetes`` auth mount pointing at the test API server; role ``app`` for SA ``app``."""
    root: hvac.Client = openbao.client()
    mount = f"{unique_path}-k8s"
    configure_kubernetes_auth(root, kubeconfig=kube.kubeconfig, mount=mount)
    assert root.read(f"auth/{mount}/config")["data"]["token_reviewer_jwt_set"] is True
    root.write(
        f"auth/{mount}/role/app",
        bound_service_account_names=["app"],
        bound_service_account_namespaces=[namespace],
        audience=AUDIENCE,
        token_policies=["default"],
        token_ttl="10m",
    )
    yield mount, namespace
    root.sys.disable_auth_method(mount)
    root.adapter.close()


def _service_account(kube: Any, namespace: str, name: str) -> k8s.V1ServiceAccount:
    api = k8s.CoreV1Api(kube.api_client())
    return api.create_namespaced_service_account(
        namespace, k8s.V1ServiceAccount(metadata=k8s.V1ObjectMeta(name=name))
    )


def _token_request(kube: Any, namespace: str, name: str, audiences: list[str]) -> Callable[[], str]:
    """A jwt_source doing what the operator does: one TokenRequest per login."""

    def mint() -> str:
        api = k8s.CoreV1Api(kube.api_client())
        body = k8s.AuthenticationV1TokenRequest(
            spec=k8s.V1TokenRequestSpec(audiences=audiences, expiration_seconds=600)
        )
        token: str = api.create_namespaced_service_account_token(name, namespace, body).status.token
        return token

    return mint


def _token_review(kube: Any, jwt: str, audiences: list[str]) -> Any:
    api = k8s.AuthenticationV1Api(kube.api_client())
    body = k8s.V1TokenReview(spec=k8s.V1TokenReviewSpec(token=jwt, audiences=audiences))
    return api.create_token_review(body).status


def _session(openbao: OpenBaoDevServer, mount: str, source: Callable[[], str]) -> VaultSession:
    auth = AuthSettings(method="kubernetes", mount=mount, role="app", audiences=(AUDIENCE,))
    return VaultSession(
        connection=ConnectionSettings(address=openbao.address, timeout=10), auth=auth, jwt_source=source
    )


def test_allowed_service_account_logs_in(
    openbao: OpenBaoDevServer, kube: Any, k8s_auth: tuple[str, str]
) -> None:
    mount, namespace = k8s_auth
    sa = _service_account(kube, namespace, "app")
    session = _session(openbao, mount, _token_request(kube, namespace, "app", [AUDIENCE]))
    try:
        session.login()
        assert session.login_count == 1
        # What OpenBao recorded about the identity it verified (through TokenReview):
        token = session._token  # white-box: the test needs the token to look it up
        assert token is not None
        info = openbao.client().auth.token.lookup(token.value)["data"]
        assert info["meta"]["service_account_name"] == "app"
        assert info["meta"]["service_account_namespace"] == namespace
        assert info["meta"]["service_account_uid"] == sa.metadata.uid
    finally:
        session.close()


def test_wrong_audience_is_refused(openbao: OpenBaoDevServer, kube: Any, k8s_auth: tuple[str, str]) -> None:
    mount, namespace = k8s_auth
    _service_account(kube, namespace, "app")
    mint = _token_request(kube, namespace, "app", ["not-vault"])
    review = _token_review(kube, mint(), [AUDIENCE])
    assert review.authenticated is not True and "audience" in (review.error or "")  # the API server agrees
    session = _session(openbao, mount, mint)
    try:
        with pytest.raises(VaultDenied, match=r"login .*: permission denied \(HTTP 403\): invalid audience"):
            session.login()
    finally:
        session.close()


def test_other_service_account_is_refused(
    openbao: OpenBaoDevServer, kube: Any, k8s_auth: tuple[str, str]
) -> None:
    mount, namespace = k8s_auth
    _service_account(kube, namespace, "intruder")
    session = _session(openbao, mount, _token_request(kube, namespace, "intruder", [AUDIENCE]))
    try:
        with pytest.raises(VaultDenied, match="service account name not authorized"):
            session.login()
    finally:
        session.close()


def test_deleted_service_account_is_refused(
    openbao: OpenBaoDevServer, kube: Any, k8s_auth: tuple[str, str]
) -> None:
    mount, namespace = k8s_auth
    _service_account(kube, namespace, "app")
    mint = _token_request(kube, namespace, "app", [AUDIENCE])
    tokens = [mint()]
    session = _session(openbao, mount, lambda: tokens[-1])
    try:
        session.login()  # a token works while the ServiceAccount exists
        tokens.append(mint())  # not reviewed yet: no cached review can answer for it
        jwt = tokens[-1]
        k8s.CoreV1Api(kube.api_client()).delete_namespaced_service_account("app", namespace)
        # A real server answers from informer caches a moment behind the delete: wait for it.
        # (The token reviewed by the login above would still pass for ~10 s: the API server
        # caches successful token reviews; see csi_vso.devkit.apiserver.token_cache.)
        wait_for(lambda: _token_review(kube, jwt, [AUDIENCE]).authenticated is not True, timeout=30)
        # OpenBao passes the JWT to TokenReview, which now answers "not authenticated".
        with pytest.raises(VaultDenied, match=r"login .*: permission denied \(HTTP 403\)") as err:
            session.login()
        assert err.value.status == 403
    finally:
        session.close()


def test_expired_token_is_refused(openbao: OpenBaoDevServer, kube: Any, k8s_auth: tuple[str, str]) -> None:
    """A token signed by the API server but past its ``exp``.

    A real API server never issues tokens shorter than 10 minutes, so the token is minted by the
    in-memory server's own issuer with an issue time an hour ago (only possible in-process).
    """
    mount, namespace = k8s_auth
    sa = _service_account(kube, namespace, "app")
    issuer = _token_issuer(kube)
    jwt, exp = issuer.issue(
        namespace=namespace,
        service_account="app",
        service_account_uid=sa.metadata.uid,
        audiences=[AUDIENCE],
        expiration_seconds=600,
        issued_at=time.time() - 3600,
    )
    assert exp < time.time()
    review = _token_review(kube, jwt, [AUDIENCE])
    assert review.authenticated is not True and "expired" in (review.error or "")  # the API server agrees
    session = _session(openbao, mount, lambda: jwt)
    try:
        with pytest.raises(
            VaultDenied, match=r"login .*: permission denied \(HTTP 403\): .*token is expired"
        ):
            session.login()
    finally:
        session.close()


def _token_issuer(kube: Any) -> Any:
    """The in-memory API server's token issuer (skip on a real cluster: it cannot mint expired tokens)."""
    if kube.server is None:
        pytest.skip("a real cluster cannot mint an already-expired token")
    return kube.server.app.issuer
