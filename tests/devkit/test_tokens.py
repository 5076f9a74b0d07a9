"""Conformance: TokenRequest, TokenReview and who the API server thinks the caller is.

TokenReview must accept exactly the tokens TokenRequest mints and refuse them once their
audience, expiry, service account or bound pod no longer match — the contract OpenBao's
kubernetes auth relies on. As bearer tokens, service-account tokens count only with the API
server's own audience.
"""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
import pytest
from kubernetes import client

from csi_vso.devkit.apiserver import APIServer, User
from tests.devkit.conftest import create_pod, needs_server, server_client, wait_for
from tests.fixtures.kube import Kube, get_path

AUDIENCE = "vault"


def _token(core: client.CoreV1Api, namespace: str, sa: str, audiences: list[str], **spec: Any) -> str:
    request = core.create_namespaced_service_account_token(
        sa, namespace, {"spec": {"audiences": audiences, "expirationSeconds": 600, **spec}}
    )
    token: str = request.status.token
    return token


def _review(api: client.ApiClient, token: str, audiences: list[str] | None) -> Any:
    spec: dict[str, Any] = {"token": token}
    if audiences is not None:
        spec["audiences"] = audiences
    return client.AuthenticationV1Api(api).create_token_review({"spec": spec}).status


@pytest.fixture
def sa(core: client.CoreV1Api, namespace: str) -> Any:
    return core.create_namespaced_service_account(namespace, {"metadata": {"name": "app"}})


def test_token_request_mints_a_bound_service_account_jwt(
    core: client.CoreV1Api, namespace: str, sa: Any
) -> None:
    request = core.create_namespaced_service_account_token(
        "app", namespace, {"spec": {"audiences": [AUDIENCE], "expirationSeconds": 600}}
    )
    token = request.status.token
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert set(header) == {"alg", "kid"}  # no "typ", as the real server's header
    assert header["alg"] == "RS256" and header["kid"]
    assert claims["sub"] == f"system:serviceaccount:{namespace}:app"
    assert claims["aud"] == [AUDIENCE]
    assert claims["exp"] - claims["iat"] == 600 and claims["nbf"] == claims["iat"]
    assert claims["iss"]
    assert claims["kubernetes.io"]["namespace"] == namespace
    assert claims["kubernetes.io"]["serviceaccount"] == {"name": "app", "uid": sa.metadata.uid}
    assert abs(request.status.expiration_timestamp.timestamp() - claims["exp"]) < 2


def test_token_review_checks_the_audience(
    api: client.ApiClient, core: client.CoreV1Api, namespace: str, sa: Any
) -> None:
    token = _token(core, namespace, "app", [AUDIENCE, "other"])
    ok = _review(api, token, [AUDIENCE])
    assert ok.authenticated is True
    assert ok.audiences == [AUDIENCE]
    assert ok.user.username == f"system:serviceaccount:{namespace}:app"
    assert ok.user.uid == sa.metadata.uid
    assert {"system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"} <= set(
        ok.user.groups
    )
    wrong = _review(api, token, ["not-vault"])
    assert wrong.authenticated is not True and wrong.error


def test_default_audience_is_the_api_server(
    api: client.ApiClient, core: client.CoreV1Api, namespace: str, sa: Any
) -> None:
    token = core.create_namespaced_service_account_token("app", namespace, {"spec": {}}).status.token
    assert _review(api, token, None).authenticated is True
    assert _review(api, _token(core, namespace, "app", [AUDIENCE]), None).authenticated is not True


def test_review_fails_once_the_service_account_is_gone(
    api: client.ApiClient, core: client.CoreV1Api, namespace: str, sa: Any
) -> None:
    token = _token(core, namespace, "app", [AUDIENCE])
    core.delete_namespaced_service_account("app", namespace)
    # wait_for: a real server checks through its informer caches, a moment behind the write.
    wait_for(lambda: _review(api, token, [AUDIENCE]).authenticated is not True, timeout=30)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "app"}})  # same name, new uid
    assert _review(api, token, [AUDIENCE]).authenticated is not True


def test_pod_bound_token(api: client.ApiClient, core: client.CoreV1Api, namespace: str, sa: Any) -> None:
    pod = core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "p"},
            "spec": {"serviceAccountName": "app", "containers": [{"name": "c", "image": "i"}]},
        },
    )
    ref = {"kind": "Pod", "apiVersion": "v1", "name": "p", "uid": pod.metadata.uid}
    token = _token(core, namespace, "app", [AUDIENCE], boundObjectRef=ref)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["kubernetes.io"]["pod"] == {"name": "p", "uid": pod.metadata.uid}
    review = _review(api, token, [AUDIENCE])
    assert review.authenticated is True
    assert review.user.extra["authentication.kubernetes.io/pod-name"] == ["p"]
    assert review.user.extra["authentication.kubernetes.io/pod-uid"] == [pod.metadata.uid]
    unreviewed = _token(core, namespace, "app", [AUDIENCE], boundObjectRef=ref)
    core.delete_namespaced_pod("p", namespace, grace_period_seconds=0)
    wait_for(lambda: not core.list_namespaced_pod(namespace, field_selector="metadata.name=p").items)
    # A token not reviewed lately is refused (once the server's informers saw the delete) ...
    # (A review that beat the informer is cached too: allow for one cache window.)
    wait_for(lambda: _review(api, unreviewed, [AUDIENCE]).authenticated is not True, timeout=30)
    # ... while the one reviewed a moment ago is still answered from the token cache (~10 s).
    assert _review(api, token, [AUDIENCE]).authenticated is True


def test_token_cache_forgets_a_deleted_accounts_token_after_its_ttl(kube: Kube) -> None:
    """The cache window is a server setting; after it, the deletion shows in reviews."""
    needs_server(kube)  # a dedicated server with a short window, so the test need not wait 10 s
    with APIServer(token_cache_ttl=0.3) as server, server_client(server) as api:
        core = client.CoreV1Api(api)
        core.create_namespace({"metadata": {"name": "cache"}})
        core.create_namespaced_service_account("cache", {"metadata": {"name": "app"}})
        token = _token(core, "cache", "app", [AUDIENCE])
        assert _review(api, token, [AUDIENCE]).authenticated is True
        core.delete_namespaced_service_account("app", "cache")
        wait_for(lambda: _review(api, token, [AUDIENCE]).authenticated is not True)


def test_token_request_validation(core: client.CoreV1Api, namespace: str, sa: Any) -> None:
    with pytest.raises(client.ApiException) as err:
        core.create_namespaced_service_account_token(
            "app", namespace, {"spec": {"audiences": [AUDIENCE], "expirationSeconds": 60}}
        )
    assert err.value.status == 422
    assert "may not specify a duration less than 10 minutes" in json.loads(err.value.body)["message"]
    with pytest.raises(client.ApiException) as err:
        _token(core, namespace, "missing", [AUDIENCE])
    assert err.value.status == 404


def test_a_service_account_token_authenticates_only_for_the_api_audience(
    kube: Kube, api: client.ApiClient, core: client.CoreV1Api, namespace: str, sa: Any
) -> None:
    """As on a real server: a token minted for "vault" is no credential for the API itself.

    (Why OpenBao needs a reviewer token: it cannot review a login JWT with that same JWT.)
    """
    vault_token = _token(core, namespace, "app", [AUDIENCE])
    with kube.client_with_token(vault_token) as as_vault, pytest.raises(client.ApiException) as err:
        client.AuthenticationV1Api(as_vault).create_self_subject_review({})
    assert err.value.status == 401
    assert _review(api, vault_token, [AUDIENCE]).authenticated is True  # still a valid token for vault

    api_token = core.create_namespaced_service_account_token("app", namespace, {"spec": {}}).status.token
    with kube.client_with_token(api_token) as as_sa:
        caller = client.AuthenticationV1Api(as_sa).create_self_subject_review({})
    assert caller.status.user_info.username == f"system:serviceaccount:{namespace}:app"


def test_bound_object_ref_is_checked_like_the_real_server(
    core: client.CoreV1Api, namespace: str, sa: Any
) -> None:
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "other"}})
    pod = create_pod(core, namespace, "p", "other")
    ref = {"kind": "Pod", "apiVersion": "v1", "name": "p", "uid": pod.metadata.uid}
    with pytest.raises(client.ApiException) as err:
        _token(core, namespace, "app", [AUDIENCE], boundObjectRef=ref)
    status = json.loads(err.value.body)
    assert (status["code"], status["reason"]) == (400, "BadRequest")
    assert status["message"] == (
        'cannot bind token for serviceaccount "app" to pod running with different serviceaccount name.'
    )
    with pytest.raises(client.ApiException) as err:
        _token(core, namespace, "other", [AUDIENCE], boundObjectRef={**ref, "uid": "0000"})
    status = json.loads(err.value.body)
    assert (status["code"], status["reason"]) == (409, "Conflict")
    assert (
        "the UID in the bound object reference (0000) does not match the UID in record" in status["message"]
    )
    with pytest.raises(client.ApiException) as err:
        _token(core, namespace, "other", [AUDIENCE], boundObjectRef={**ref, "kind": "ConfigMap"})
    status = json.loads(err.value.body)
    assert (status["code"], status["reason"]) == (400, "BadRequest")
    assert status["message"] == "cannot bind token to object of type /v1, Kind=ConfigMap"
    assert _token(core, namespace, "other", [AUDIENCE], boundObjectRef=ref)  # the pod's own account


def test_unauthenticated_requests_are_401(kube: Kube) -> None:
    with kube.client_with_token("not-a-token") as anonymous, pytest.raises(client.ApiException) as err:
        client.CoreV1Api(anonymous).list_namespace()
    assert err.value.status == 401


def test_static_users_and_access_reviews(kube: Kube, api: client.ApiClient, namespace: str) -> None:
    server = needs_server(kube)
    server.add_token("alice-token", User("alice", ("devs", "system:authenticated")))
    attributes = {"verb": "get", "resource": "secrets", "namespace": namespace}
    with kube.client_with_token("alice-token") as alice:
        me = client.AuthenticationV1Api(alice).create_self_subject_review({})
        assert me.status.user_info.username == "alice"
        assert me.status.user_info.groups == ["devs", "system:authenticated"]
        access = client.AuthorizationV1Api(alice).create_self_subject_access_review(
            {"spec": {"resourceAttributes": attributes}}
        )
        assert access.status.allowed is False  # RBAC: no binding names alice or devs yet
        client.RbacAuthorizationV1Api(api).create_namespaced_role_binding(
            namespace,
            {
                "metadata": {"name": "devs-view"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "devs"}],
            },
        )
        access = client.AuthorizationV1Api(alice).create_self_subject_access_review(
            {"spec": {"resourceAttributes": attributes}}
        )
        assert access.status.allowed is True
        assert access.status.reason == (
            f'RBAC: allowed by RoleBinding "devs-view/{namespace}" of ClusterRole "edit" to Group "devs"'
        )


def test_expired_token_is_refused(kube: Kube, api: client.ApiClient, namespace: str, sa: Any) -> None:
    server = needs_server(kube)
    token = server.mint_token(
        namespace, "app", [AUDIENCE], expiration_seconds=600, issued_at=time.time() - 3600
    )
    review = _review(api, token, [AUDIENCE])
    assert review.authenticated is not True
    assert "expired" in review.error


def test_tokens_verify_against_the_published_jwks(
    kube: Kube, core: client.CoreV1Api, namespace: str, sa: Any
) -> None:
    """Service accounts may read the JWKS (system:service-account-issuer-discovery) and verify with it."""
    token = _token(core, namespace, "app", [AUDIENCE])
    api_token = core.create_namespaced_service_account_token("app", namespace, {"spec": {}}).status.token
    with kube.client_with_token(api_token) as as_sa:
        code, content_type, body = get_path(as_sa, "/openid/v1/jwks", "application/jwk-set+json")
    assert (code, content_type) == (200, "application/jwk-set+json")
    key = jwt.PyJWK(json.loads(body)["keys"][0])
    claims = jwt.decode(token, key.key, algorithms=["RS256"], audience=AUDIENCE)
    assert claims["sub"] == f"system:serviceaccount:{namespace}:app"


def _claims(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def _whoami(kube: Kube, token: str) -> Any:
    with kube.client_with_token(token) as as_token:
        return client.AuthenticationV1Api(as_token).create_self_subject_review({}).status.user_info


def test_a_pod_bound_token_names_the_pods_node(
    kube: Kube, core: client.CoreV1Api, namespace: str, sa: Any, node: Any
) -> None:
    """Pod on an existing Node: ``kubernetes.io.node`` claim and node extras beside the pod's."""
    pod = create_pod(core, namespace, "p", "app", node_name=node.metadata.name)
    ref = {"kind": "Pod", "apiVersion": "v1", "name": "p", "uid": pod.metadata.uid}
    token = core.create_namespaced_service_account_token("app", namespace, {"spec": {"boundObjectRef": ref}})
    claims = _claims(token.status.token)["kubernetes.io"]
    assert claims["node"] == {"name": node.metadata.name, "uid": node.metadata.uid}
    assert claims["pod"] == {"name": "p", "uid": pod.metadata.uid}
    extra = _whoami(kube, token.status.token).extra
    assert extra["authentication.kubernetes.io/node-name"] == [node.metadata.name]
    assert extra["authentication.kubernetes.io/node-uid"] == [node.metadata.uid]
    assert extra["authentication.kubernetes.io/pod-name"] == ["p"]

    # Scheduled to a Node that does not exist: the token is minted, without a node claim.
    ghost = create_pod(core, namespace, "ghost", "app", node_name="no-such-node")
    ref = {"kind": "Pod", "apiVersion": "v1", "name": "ghost", "uid": ghost.metadata.uid}
    token = core.create_namespaced_service_account_token("app", namespace, {"spec": {"boundObjectRef": ref}})
    assert "node" not in _claims(token.status.token)["kubernetes.io"]


def test_a_token_can_be_bound_to_a_node(
    kube: Kube, api: client.ApiClient, core: client.CoreV1Api, namespace: str, sa: Any, node: Any
) -> None:
    ref = {"kind": "Node", "apiVersion": "v1", "name": node.metadata.name}
    answer = core.create_namespaced_service_account_token("app", namespace, {"spec": {"boundObjectRef": ref}})
    assert answer.spec.bound_object_ref.kind == "Node"
    assert answer.spec.bound_object_ref.uid == node.metadata.uid
    claims = _claims(answer.status.token)["kubernetes.io"]
    assert claims["node"] == {"name": node.metadata.name, "uid": node.metadata.uid}
    assert "pod" not in claims
    extra = _whoami(kube, answer.status.token).extra
    assert extra["authentication.kubernetes.io/node-name"] == [node.metadata.name]
    assert "authentication.kubernetes.io/pod-name" not in extra

    with pytest.raises(client.ApiException) as err:
        _token(core, namespace, "app", [AUDIENCE], boundObjectRef={**ref, "name": "no-such-node"})
    assert (err.value.status, json.loads(err.value.body)["reason"]) == (404, "NotFound")
    with pytest.raises(client.ApiException) as err:
        _token(core, namespace, "app", [AUDIENCE], boundObjectRef={**ref, "uid": "0000"})
    assert err.value.status == 409

    # The Node goes: a token bound to it stops being valid (a real server may take its
    # short token cache window to notice).
    core.delete_node(node.metadata.name)
    wait_for(lambda: _review(api, answer.status.token, None).authenticated is not True, timeout=20)
