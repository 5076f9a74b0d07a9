"""Conformance: RBAC authorization, the bootstrap roles, the review APIs, who a token is.

Written with the kubernetes client only, so the same tests run against a real cluster
(``CSI_VSO_TEST_KUBECONFIG``). A real server applies a new binding through its informer
cache a moment later, so every "now it is allowed" waits for the condition. Refusals are
compared with the real server's exact wording: clients and operators match on it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, watch

from tests.devkit.conftest import create_pod, wait_for
from tests.fixtures.kube import Kube, get_path, send

RBAC_GROUP = "rbac.authorization.k8s.io"


def _sa_token(core: client.CoreV1Api, namespace: str, name: str, **spec: Any) -> str:
    """A ServiceAccount ``name`` (created when missing) and an API-audience token for it."""
    try:
        core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})
    except client.ApiException as exc:
        if exc.status != 409:
            raise
    answer = core.create_namespaced_service_account_token(name, namespace, {"spec": spec})
    token: str = answer.status.token
    return token


@pytest.fixture
def as_sa(kube: Kube, core: client.CoreV1Api, namespace: str) -> Iterator[client.ApiClient]:
    """An ApiClient acting as ServiceAccount ``reader`` of the test's namespace."""
    with kube.client_with_token(_sa_token(core, namespace, "reader")) as api:
        yield api


def _status(exc: client.ApiException) -> dict[str, Any]:
    status: dict[str, Any] = json.loads(exc.body)
    return status


def _refusal(call: Any) -> dict[str, Any]:
    with pytest.raises(client.ApiException) as err:
        call()
    assert err.value.status == 403
    status = _status(err.value)
    assert (status["kind"], status["reason"], status["code"]) == ("Status", "Forbidden", 403)
    return status


def _allowed(call: Any) -> Any:
    """Wait until ``call`` stops being refused (a real server's RBAC cache lags a little)."""

    def attempt() -> Any:
        try:
            return call() or True
        except client.ApiException as exc:
            if exc.status != 403:
                raise
            return None

    return wait_for(attempt)


def _role(rbac: client.RbacAuthorizationV1Api, namespace: str, name: str, *rules: dict[str, Any]) -> None:
    rbac.create_namespaced_role(namespace, {"metadata": {"name": name}, "rules": list(rules)})


def _bind(
    rbac: client.RbacAuthorizationV1Api, namespace: str, name: str, role: tuple[str, str], *subjects: Any
) -> None:
    kind, role_name = role
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": name},
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": kind, "name": role_name},
            "subjects": list(subjects),
        },
    )


def _sa_subject(namespace: str, name: str = "reader") -> dict[str, str]:
    return {"kind": "ServiceAccount", "name": name, "namespace": namespace}


def _group(name: str) -> dict[str, str]:
    return {"apiGroup": RBAC_GROUP, "kind": "Group", "name": name}


@pytest.fixture
def rbac(api: client.ApiClient) -> client.RbacAuthorizationV1Api:
    return client.RbacAuthorizationV1Api(api)


@pytest.fixture
def cluster_objects(rbac: client.RbacAuthorizationV1Api) -> Iterator[list[tuple[str, str]]]:
    """Cluster-scoped RBAC objects a test creates, deleted afterwards: (kind, name)."""
    created: list[tuple[str, str]] = []
    yield created
    for kind, name in created:
        delete = rbac.delete_cluster_role if kind == "ClusterRole" else rbac.delete_cluster_role_binding
        try:
            delete(name)
        except client.ApiException as exc:
            if exc.status != 404:
                raise


# ------------------------------------------------------------------ refusals


def test_a_service_account_without_bindings_is_refused_in_the_real_words(
    as_sa: client.ApiClient, core: client.CoreV1Api, rbac: client.RbacAuthorizationV1Api, namespace: str
) -> None:
    user = f"system:serviceaccount:{namespace}:reader"
    sa_core = client.CoreV1Api(as_sa)
    status = _refusal(lambda: sa_core.list_namespaced_secret(namespace))
    assert status["message"] == (
        f'secrets is forbidden: User "{user}" cannot list resource "secrets" in API group "" '
        f'in the namespace "{namespace}"'
    )
    assert status["details"] == {"kind": "secrets"}
    status = _refusal(lambda: sa_core.read_namespaced_secret("db", namespace))
    assert status["message"] == (
        f'secrets "db" is forbidden: User "{user}" cannot get resource "secrets" in API group "" '
        f'in the namespace "{namespace}"'
    )
    assert status["details"] == {"name": "db", "kind": "secrets"}
    status = _refusal(lambda: client.AppsV1Api(as_sa).list_namespaced_deployment(namespace))
    assert status["details"] == {"group": "apps", "kind": "deployments"}
    assert 'cannot list resource "deployments" in API group "apps"' in status["message"]
    status = _refusal(lambda: sa_core.list_namespace())
    assert status["message"] == (
        f'namespaces is forbidden: User "{user}" cannot list resource "namespaces" in API group "" '
        "at the cluster scope"
    )
    # Refused before the server looks: a missing object is not revealed as 404.
    _refusal(lambda: sa_core.read_namespaced_config_map("missing", namespace))

    _role(
        rbac,
        namespace,
        "secret-reader",
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]},
    )
    _bind(rbac, namespace, "reader", ("Role", "secret-reader"), _sa_subject(namespace))
    core.create_namespaced_secret(namespace, {"metadata": {"name": "db"}, "stringData": {"k": "v"}})
    listed = _allowed(lambda: sa_core.list_namespaced_secret(namespace))
    assert [s.metadata.name for s in listed.items] == ["db"]
    assert sa_core.read_namespaced_secret("db", namespace).data == {"k": "dg=="}
    status = _refusal(lambda: sa_core.delete_namespaced_secret("db", namespace))
    assert (
        f'cannot delete resource "secrets" in API group "" in the namespace "{namespace}"'
        in status["message"]
    )
    _refusal(lambda: sa_core.list_namespaced_config_map(namespace))  # only secrets were granted


def test_a_binding_to_a_missing_role_is_named_in_the_refusal(
    as_sa: client.ApiClient, rbac: client.RbacAuthorizationV1Api, namespace: str
) -> None:
    _bind(rbac, namespace, "dangling", ("Role", "not-there"), _sa_subject(namespace))

    def reason_shown() -> str:
        status = _refusal(lambda: client.CoreV1Api(as_sa).list_namespaced_secret(namespace))
        message: str = status["message"]
        return message if "not-there" in message else ""  # a real server learns of the binding shortly

    message = wait_for(reason_shown)
    assert message.endswith(': RBAC: role.rbac.authorization.k8s.io "not-there" not found')


# ------------------------------------------------------------- resourceNames


def test_resource_names_grant_get_and_single_name_list_and_watch_but_never_create(
    as_sa: client.ApiClient, core: client.CoreV1Api, rbac: client.RbacAuthorizationV1Api, namespace: str
) -> None:
    for name in ("mine", "other"):
        core.create_namespaced_secret(namespace, {"metadata": {"name": name}, "stringData": {"k": name}})
    _role(
        rbac,
        namespace,
        "one-secret",
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": ["mine"],
            "verbs": ["get", "list", "watch"],
        },
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["new"], "verbs": ["create"]},
    )
    _bind(rbac, namespace, "one-secret", ("Role", "one-secret"), _sa_subject(namespace))
    sa_core = client.CoreV1Api(as_sa)
    user = f"system:serviceaccount:{namespace}:reader"

    assert _allowed(lambda: sa_core.read_namespaced_secret("mine", namespace)).metadata.name == "mine"
    _refusal(lambda: sa_core.read_namespaced_secret("other", namespace))
    listed = sa_core.list_namespaced_secret(namespace, field_selector="metadata.name=mine")
    assert [s.metadata.name for s in listed.items] == ["mine"]
    status = _refusal(lambda: sa_core.list_namespaced_secret(namespace, field_selector="metadata.name=other"))
    assert status["message"] == (
        f'secrets "other" is forbidden: User "{user}" cannot list resource "secrets" in API group "" '
        f'in the namespace "{namespace}"'
    )
    assert status["details"] == {"name": "other", "kind": "secrets"}
    status = _refusal(lambda: sa_core.list_namespaced_secret(namespace))
    assert status["details"] == {"kind": "secrets"}

    events = watch.Watch().stream(
        sa_core.list_namespaced_secret, namespace, field_selector="metadata.name=mine", timeout_seconds=5
    )
    first = next(iter(events))
    assert (first["type"], first["object"].metadata.name) == ("ADDED", "mine")
    with pytest.raises(client.ApiException) as err:
        next(iter(watch.Watch().stream(sa_core.list_namespaced_secret, namespace, timeout_seconds=5)))
    assert err.value.status == 403
    assert 'cannot watch resource "secrets"' in _status(err.value)["message"]

    # create carries no name to match: resourceNames never grant it.
    status = _refusal(
        lambda: sa_core.create_namespaced_secret(
            namespace, {"metadata": {"name": "new"}, "stringData": {"k": "v"}}
        )
    )
    assert status["message"] == (
        f'secrets is forbidden: User "{user}" cannot create resource "secrets" in API group "" '
        f'in the namespace "{namespace}"'
    )


# ------------------------------------------------------------- subresources


def test_subresources_need_their_own_rule(
    as_sa: client.ApiClient, core: client.CoreV1Api, rbac: client.RbacAuthorizationV1Api, namespace: str
) -> None:
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "worker"}})
    _role(
        rbac, namespace, "sa-reader", {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["get"]}
    )
    _bind(rbac, namespace, "sa-reader", ("Role", "sa-reader"), _sa_subject(namespace))
    sa_core = client.CoreV1Api(as_sa)
    _allowed(lambda: sa_core.read_namespaced_service_account("worker", namespace))
    status = _refusal(
        lambda: sa_core.create_namespaced_service_account_token("worker", namespace, {"spec": {}})
    )
    assert status["message"] == (
        f'serviceaccounts "worker" is forbidden: User "system:serviceaccount:{namespace}:reader" '
        f'cannot create resource "serviceaccounts/token" in API group "" in the namespace "{namespace}"'
    )
    assert status["details"] == {"name": "worker", "kind": "serviceaccounts"}

    _role(
        rbac,
        namespace,
        "mint-worker",
        {
            "apiGroups": [""],
            "resources": ["serviceaccounts/token"],
            "resourceNames": ["worker"],
            "verbs": ["create"],
        },
    )
    _bind(rbac, namespace, "mint-worker", ("Role", "mint-worker"), _sa_subject(namespace))
    minted = _allowed(
        lambda: sa_core.create_namespaced_service_account_token("worker", namespace, {"spec": {}})
    )
    assert minted.status.token
    _refusal(lambda: sa_core.create_namespaced_service_account_token("reader", namespace, {"spec": {}}))

    _role(rbac, namespace, "any-status", {"apiGroups": ["*"], "resources": ["*/status"], "verbs": ["get"]})
    _bind(rbac, namespace, "any-status", ("Role", "any-status"), _sa_subject(namespace))
    core.create_namespaced_pod(
        namespace, {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    )
    assert _allowed(lambda: sa_core.read_namespaced_pod_status("p", namespace)).metadata.name == "p"
    _refusal(lambda: sa_core.read_namespaced_pod("p", namespace))  # */status is not the pod itself


# ------------------------------------------------------------------ subjects


def test_group_subjects_and_cluster_roles_bound_in_a_namespace(
    as_sa: client.ApiClient, core: client.CoreV1Api, rbac: client.RbacAuthorizationV1Api, namespace: str
) -> None:
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "c"}, "data": {"k": "v"}})
    _bind(
        rbac,
        namespace,
        "all-sas-here",
        ("ClusterRole", "view"),
        _group(f"system:serviceaccounts:{namespace}"),
    )
    sa_apps = client.CoreV1Api(as_sa)
    assert _allowed(lambda: sa_apps.read_namespaced_config_map("c", namespace)).data == {"k": "v"}
    _refusal(lambda: sa_apps.read_namespaced_secret("x", namespace))  # view excludes secrets
    _refusal(lambda: sa_apps.list_namespaced_config_map("default"))  # a RoleBinding stays in its namespace
    rbac.delete_namespaced_role_binding("all-sas-here", namespace)
    wait_for(lambda: _refusal(lambda: sa_apps.read_namespaced_config_map("c", namespace)))

    _bind(rbac, namespace, "every-sa", ("ClusterRole", "view"), _group("system:serviceaccounts"))
    assert _allowed(lambda: sa_apps.read_namespaced_config_map("c", namespace)).data == {"k": "v"}


def test_cluster_role_binding_grants_at_the_cluster_scope(
    as_sa: client.ApiClient,
    rbac: client.RbacAuthorizationV1Api,
    namespace: str,
    cluster_objects: list[tuple[str, str]],
) -> None:
    name = f"csi-vso-test-{uuid.uuid4().hex[:8]}"
    rbac.create_cluster_role(
        {
            "metadata": {"name": name},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["namespaces"],
                    "resourceNames": [namespace],
                    "verbs": ["get"],
                }
            ],
        }
    )
    cluster_objects.append(("ClusterRole", name))
    rbac.create_cluster_role_binding(
        {
            "metadata": {"name": name},
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": name},
            "subjects": [_sa_subject(namespace)],
        }
    )
    cluster_objects.append(("ClusterRoleBinding", name))
    sa_core = client.CoreV1Api(as_sa)
    assert _allowed(lambda: sa_core.read_namespace(namespace)).metadata.name == namespace
    status = _refusal(lambda: sa_core.read_namespace("default"))
    assert status["message"] == (
        f'namespaces "default" is forbidden: User "system:serviceaccount:{namespace}:reader" cannot get '
        'resource "namespaces" in API group "" in the namespace "default"'
    )


# ------------------------------------------------------- non-resource paths


def test_anonymous_and_authenticated_non_resource_paths(kube: Kube, as_sa: client.ApiClient) -> None:
    with kube.client_with_token(None) as anonymous:
        assert get_path(anonymous, "/version")[0] == 200  # system:public-info-viewer
        assert get_path(anonymous, "/healthz")[0] == 200
        code, _, body = get_path(anonymous, "/api")
        assert code == 403
        status = json.loads(body)
        assert status["message"] == 'forbidden: User "system:anonymous" cannot get path "/api"'
        assert (status["reason"], status["details"]) == ("Forbidden", {})
        status = _refusal(lambda: client.CoreV1Api(anonymous).list_namespace())
        assert status["message"] == (
            'namespaces is forbidden: User "system:anonymous" cannot list resource "namespaces" '
            'in API group "" at the cluster scope'
        )
    assert get_path(as_sa, "/api")[0] == 200  # system:discovery
    with kube.client_with_token("not-a-valid-token") as bad:
        assert get_path(bad, "/version")[0] == 401  # a bad credential is not anonymous


def test_oidc_discovery_is_for_service_accounts_unless_bound_for_anonymous(
    kube: Kube,
    as_sa: client.ApiClient,
    cluster_objects: list[tuple[str, str]],
    rbac: client.RbacAuthorizationV1Api,
) -> None:
    code, content_type, body = get_path(as_sa, "/openid/v1/jwks")
    assert (code, content_type) == (200, "application/jwk-set+json")
    assert json.loads(body)["keys"][0]["alg"] == "RS256"
    assert get_path(as_sa, "/openid/v1/jwks", "application/json")[0] == 406
    code, content_type, body = get_path(as_sa, "/.well-known/openid-configuration", "application/json")
    assert (code, content_type) == (200, "application/json")
    assert json.loads(body)["jwks_uri"].endswith("/openid/v1/jwks")

    with kube.client_with_token(None) as anonymous:
        code, _, body = get_path(anonymous, "/openid/v1/jwks")
        assert code == 403
        assert (
            json.loads(body)["message"]
            == 'forbidden: User "system:anonymous" cannot get path "/openid/v1/jwks"'
        )
        name = f"csi-vso-test-{uuid.uuid4().hex[:8]}"
        rbac.create_cluster_role_binding(
            {
                "metadata": {"name": name},
                "roleRef": {
                    "apiGroup": RBAC_GROUP,
                    "kind": "ClusterRole",
                    "name": "system:service-account-issuer-discovery",
                },
                "subjects": [_group("system:unauthenticated")],
            }
        )
        cluster_objects.append(("ClusterRoleBinding", name))
        wait_for(lambda: get_path(anonymous, "/openid/v1/jwks")[0] == 200)
        assert get_path(anonymous, "/.well-known/openid-configuration")[0] == 200


# ------------------------------------------------------------ bootstrap roles


def test_bootstrap_roles_a_real_cluster_has(rbac: client.RbacAuthorizationV1Api) -> None:
    def rules(name: str) -> list[tuple[tuple[str, ...], ...]]:
        return [
            (
                tuple(r.api_groups or ()),
                tuple(r.resources or ()),
                tuple(r.verbs or ()),
                tuple(r.non_resource_urls or ()),
            )
            for r in rbac.read_cluster_role(name).rules
        ]

    delegator = rules("system:auth-delegator")
    assert (("authentication.k8s.io",), ("tokenreviews",), ("create",), ()) in delegator
    assert (("authorization.k8s.io",), ("subjectaccessreviews",), ("create",), ()) in delegator
    assert (("authentication.k8s.io",), ("selfsubjectreviews",), ("create",), ()) in rules(
        "system:basic-user"
    )
    issuer = rules("system:service-account-issuer-discovery")
    assert any(
        "/openid/v1/jwks" in urls and "/.well-known/openid-configuration" in urls for *_, urls in issuer
    )
    assert (("*",), ("*",), ("*",), ()) in rules("cluster-admin")

    def bound(name: str) -> set[tuple[str, str]]:
        return {(s.kind, s.name) for s in rbac.read_cluster_role_binding(name).subjects or ()}

    assert ("Group", "system:authenticated") in bound("system:basic-user")
    assert ("Group", "system:serviceaccounts") in bound("system:service-account-issuer-discovery")
    assert ("Group", "system:masters") in bound("cluster-admin")
    assert {("Group", "system:authenticated"), ("Group", "system:unauthenticated")} <= bound(
        "system:public-info-viewer"
    )
    for name in ("view", "edit", "admin", "system:discovery"):
        assert rbac.read_cluster_role(name).metadata.name == name


# ------------------------------------------------------------- reviews


def test_access_reviews_answer_from_the_authorizer(
    api: client.ApiClient, as_sa: client.ApiClient, rbac: client.RbacAuthorizationV1Api, namespace: str
) -> None:
    user = f"system:serviceaccount:{namespace}:reader"
    groups = ["system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"]
    attributes = {"namespace": namespace, "verb": "get", "resource": "secrets", "name": "db"}
    authz = client.AuthorizationV1Api(api)

    def review() -> Any:
        body = {"spec": {"user": user, "groups": groups, "resourceAttributes": attributes}}
        return authz.create_subject_access_review(body).status

    assert review().allowed is False
    own = client.AuthorizationV1Api(as_sa).create_self_subject_access_review(
        {"spec": {"resourceAttributes": attributes}}
    )
    assert own.status.allowed is False
    _role(
        rbac,
        namespace,
        "db-reader",
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["db"], "verbs": ["get"]},
    )
    _bind(rbac, namespace, "db-reader", ("Role", "db-reader"), _sa_subject(namespace))
    allowed = wait_for(lambda: (s := review()).allowed and s)
    assert allowed.reason == (
        f'RBAC: allowed by RoleBinding "db-reader/{namespace}" of Role "db-reader" '
        f'to ServiceAccount "reader/{namespace}"'
    )
    own = client.AuthorizationV1Api(as_sa).create_self_subject_access_review(
        {"spec": {"resourceAttributes": attributes}}
    )
    assert own.status.allowed is True
    other = client.AuthorizationV1Api(as_sa).create_self_subject_access_review(
        {"spec": {"resourceAttributes": {**attributes, "name": "other"}}}
    )
    assert other.status.allowed is False
    discovery = client.AuthorizationV1Api(as_sa).create_self_subject_access_review(
        {"spec": {"nonResourceAttributes": {"path": "/api", "verb": "get"}}}
    )
    assert discovery.status.allowed is True

    # The reader itself may not ask about others: SubjectAccessReview needs system:auth-delegator.
    status = _refusal(
        lambda: client.AuthorizationV1Api(as_sa).create_subject_access_review(
            {"spec": {"user": user, "resourceAttributes": attributes}}
        )
    )
    assert status["details"] == {"group": "authorization.k8s.io", "kind": "subjectaccessreviews"}
    with pytest.raises(client.ApiException) as err:
        authz.create_subject_access_review({"spec": {"resourceAttributes": attributes}})
    assert err.value.status == 422
    assert "at least one of user or group must be specified" in _status(err.value)["message"]

    rules = client.AuthorizationV1Api(as_sa).create_self_subject_rules_review(
        {"spec": {"namespace": namespace}}
    )
    granted = [(r.resources, r.resource_names, r.verbs) for r in rules.status.resource_rules]
    assert (["secrets"], ["db"], ["get"]) in granted
    with pytest.raises(client.ApiException) as err:
        client.AuthorizationV1Api(as_sa).create_self_subject_rules_review({"spec": {}})
    assert (err.value.status, _status(err.value)["message"]) == (400, "no namespace on request")


def test_self_subject_review_and_token_review_carry_the_pod_extras(
    kube: Kube, api: client.ApiClient, core: client.CoreV1Api, namespace: str
) -> None:
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "app"}})
    pod = create_pod(core, namespace, "p", "app")
    ref = {"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": pod.metadata.uid}
    token = core.create_namespaced_service_account_token(
        "app", namespace, {"spec": {"boundObjectRef": ref, "expirationSeconds": 600}}
    ).status.token
    with kube.client_with_token(token) as as_pod:
        me = client.AuthenticationV1Api(as_pod).create_self_subject_review({}).status.user_info
    assert me.username == f"system:serviceaccount:{namespace}:app"
    assert set(me.groups) == {
        "system:serviceaccounts",
        f"system:serviceaccounts:{namespace}",
        "system:authenticated",
    }
    assert me.extra["authentication.kubernetes.io/pod-name"] == ["p"]
    assert me.extra["authentication.kubernetes.io/pod-uid"] == [pod.metadata.uid]
    assert me.extra["authentication.kubernetes.io/credential-id"][0].startswith("JTI=")
    assert "authentication.kubernetes.io/node-name" not in me.extra  # not scheduled
    review = client.AuthenticationV1Api(api).create_token_review({"spec": {"token": token}}).status
    assert review.authenticated is True
    assert review.user.extra == me.extra


# ------------------------------------------------------ escalation prevention


def test_nobody_grants_more_than_they_hold(
    as_sa: client.ApiClient, rbac: client.RbacAuthorizationV1Api, namespace: str
) -> None:
    mine = {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["mine"], "verbs": ["get"]}
    _role(
        rbac,
        namespace,
        "rbac-writer",
        {
            "apiGroups": [RBAC_GROUP],
            "resources": ["roles", "rolebindings"],
            "verbs": ["create", "update", "patch"],
        },
        mine,
    )
    _bind(rbac, namespace, "rbac-writer", ("Role", "rbac-writer"), _sa_subject(namespace))
    sa_rbac = client.RbacAuthorizationV1Api(as_sa)
    user = f"system:serviceaccount:{namespace}:reader"
    groups = f'["system:serviceaccounts" "system:serviceaccounts:{namespace}" "system:authenticated"]'

    # What it holds, it may grant: a Role with that rule, and a binding to it.
    _allowed(lambda: _role(sa_rbac, namespace, "held", mine))
    _bind(sa_rbac, namespace, "held", ("Role", "held"), _sa_subject(namespace, "other"))

    too_much = {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}
    status = _refusal(lambda: _role(sa_rbac, namespace, "too-much", too_much))
    assert status["message"] == (
        f'roles.rbac.authorization.k8s.io "too-much" is forbidden: user "{user}" (groups={groups}) '
        "is attempting to grant RBAC permissions not currently held:\n"
        '{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}\n'
        '{APIGroups:[""], Resources:["secrets"], Verbs:["list"]}'
    )
    assert status["details"] == {"name": "too-much", "group": RBAC_GROUP, "kind": "roles"}
    status = _refusal(
        lambda: sa_rbac.patch_namespaced_role(
            "held", namespace, [{"op": "add", "path": "/rules/-", "value": too_much}]
        )
    )
    assert "is attempting to grant RBAC permissions not currently held" in status["message"]
    status = _refusal(
        lambda: _bind(sa_rbac, namespace, "to-edit", ("ClusterRole", "edit"), _sa_subject(namespace))
    )
    assert status["message"].startswith(
        f'rolebindings.rbac.authorization.k8s.io "to-edit" is forbidden: user "{user}" (groups={groups}) '
        "is attempting to grant RBAC permissions not currently held:\n"
    )

    # ...unless it may "bind" that role, or "escalate" roles.
    _role(
        rbac,
        namespace,
        "binder",
        {
            "apiGroups": [RBAC_GROUP],
            "resources": ["clusterroles"],
            "resourceNames": ["edit"],
            "verbs": ["bind"],
        },
        {"apiGroups": [RBAC_GROUP], "resources": ["roles"], "verbs": ["escalate"]},
    )
    _bind(rbac, namespace, "binder", ("Role", "binder"), _sa_subject(namespace))
    _allowed(
        lambda: _bind(sa_rbac, namespace, "to-edit", ("ClusterRole", "edit"), _sa_subject(namespace, "other"))
    )
    _role(sa_rbac, namespace, "too-much", too_much)


# ---------------------------------------------------------------- validation


def _invalid(api: client.ApiClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST ``body`` raw (the typed client would refuse it) and expect 422 Invalid."""
    code, _, raw = send(api, "POST", path, body)
    status: dict[str, Any] = json.loads(raw)
    assert (code, status["reason"]) == (422, "Invalid"), status
    return status


def test_rbac_objects_are_validated_like_the_real_server(
    api: client.ApiClient, rbac: client.RbacAuthorizationV1Api, namespace: str
) -> None:
    roles = f"/apis/{RBAC_GROUP}/v1/namespaces/{namespace}/roles"

    def role(*rules: dict[str, Any]) -> dict[str, Any]:
        return {"metadata": {"name": "bad"}, "rules": list(rules)}

    status = _invalid(api, roles, role({"apiGroups": [""], "resources": ["secrets"]}))
    assert status["message"] == (
        'Role.rbac.authorization.k8s.io "bad" is invalid: rules[0].verbs: Required value: '
        "verbs must contain at least one value"
    )
    status = _invalid(api, roles, role({"nonResourceURLs": ["/healthz"], "verbs": ["get"]}))
    assert [c["field"] for c in status["details"]["causes"]] == ["rules[0].nonResourceURLs"]
    assert "namespaced rules cannot apply to non-resource URLs" in status["message"]
    status = _invalid(api, roles, role({"verbs": ["get"]}))
    assert [c["field"] for c in status["details"]["causes"]] == ["rules[0].apiGroups", "rules[0].resources"]

    # User and Group subjects get their apiGroup by default; the roleRef never changes.
    _bind(rbac, namespace, "b", ("ClusterRole", "view"), {"kind": "Group", "name": "devs"})
    binding = rbac.read_namespaced_role_binding("b", namespace)
    assert binding.subjects[0].api_group == RBAC_GROUP
    with pytest.raises(client.ApiException) as err:
        rbac.patch_namespaced_role_binding("b", namespace, {"roleRef": {"name": "edit"}})
    status = _status(err.value)
    assert (err.value.status, [c["field"] for c in status["details"]["causes"]]) == (422, ["roleRef"])
    assert "cannot change roleRef" in status["message"]
    binding = {
        "metadata": {"name": f"csi-vso-test-{uuid.uuid4().hex[:8]}"},
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "Role", "name": "view"},
        "subjects": [{"kind": "ServiceAccount", "name": "x"}, {"kind": "Robot", "name": "r"}],
    }
    status = _invalid(api, f"/apis/{RBAC_GROUP}/v1/clusterrolebindings", binding)
    assert [c["field"] for c in status["details"]["causes"]] == [
        "roleRef.kind",
        "subjects[0].namespace",
        "subjects[1].kind",
    ]
