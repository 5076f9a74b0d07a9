"""Per protected Secret, a Role and RoleBinding granting read to exactly the pods its policy allows.

The table checks the pure policy -> subjects mapping; the end-to-end test runs the operator
against real OpenBao and the API server and follows the objects through widening, narrowing
and the custom resource's deletion (garbage collection through the ownerReference).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import grpc
import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from csi_vso.devkit.openbao import OpenBaoDevServer
from csi_vso.operator import access_rbac
from csi_vso.operator.api import AccessPolicy
from csi_vso.provider.rotation import RotationExtension
from csi_vso.provider.server import ProviderServer
from csi_vso.provider.settings import ProviderSettings
from tests.operator.conftest import Cluster, OperatorFactory, VaultAuthSetup, static_secret, wait_for
from tests.provider.driver_support import Cluster as ProviderCluster
from tests.provider.driver_support import DriverClient, mount_request
from tests.provider.kubelet_support import KubeletDir


def group(name: str) -> dict[str, str]:
    return {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": name}


def sa(namespace: str, name: str) -> dict[str, str]:
    return {"kind": "ServiceAccount", "name": name, "namespace": namespace}


SUBJECTS = [
    ("own-namespace-only", AccessPolicy(), [group("system:serviceaccounts:team-a")]),
    (
        "plus-listed-namespaces",
        AccessPolicy(namespaces=("team-c", "team-b")),
        [
            group("system:serviceaccounts:team-a"),
            group("system:serviceaccounts:team-b"),
            group("system:serviceaccounts:team-c"),
        ],
    ),
    ("every-namespace", AccessPolicy(namespaces=("*",)), [group("system:serviceaccounts")]),
    (
        "bare-name-in-each-allowed-namespace",
        AccessPolicy(namespaces=("team-b",), service_accounts=("reader",)),
        [sa("team-a", "reader"), sa("team-b", "reader")],
    ),
    (
        "qualified-name-only-when-its-namespace-is-allowed",
        AccessPolicy(namespaces=("team-b",), service_accounts=("team-b/app", "team-x/app")),
        [sa("team-b", "app")],
    ),
    (
        "wildcard-account-is-no-narrowing",
        AccessPolicy(namespaces=("team-b",), service_accounts=("*",)),
        [group("system:serviceaccounts:team-a"), group("system:serviceaccounts:team-b")],
    ),
    (
        "bare-name-in-any-namespace-falls-back-to-all-service-accounts",
        AccessPolicy(namespaces=("*",), service_accounts=("reader",)),
        [group("system:serviceaccounts")],
    ),
    (
        "qualified-name-with-any-namespace",
        AccessPolicy(namespaces=("*",), service_accounts=("team-z/app",)),
        [sa("team-z", "app")],
    ),
    ("nobody", AccessPolicy(service_accounts=("team-x/app",)), []),
]


@pytest.mark.parametrize(("case", "policy", "expected"), SUBJECTS, ids=[c[0] for c in SUBJECTS])
def test_policy_to_subjects(case: str, policy: AccessPolicy, expected: list[dict[str, str]]) -> None:
    assert access_rbac.subjects("team-a", policy) == expected


def test_role_reads_exactly_one_secret_and_long_names_are_hashed() -> None:
    class Owner:
        api_version, kind, name, namespace, uid = (
            "secrets.hashicorp.com/v1beta1",
            "VaultStaticSecret",
            "x",
            "a",
            "u",
        )

    role = access_rbac.role(Owner(), "db")
    assert role["metadata"]["name"] == "csi-vso-read-db"
    assert role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": ["db"],
            "verbs": ["get", "list", "watch"],
        }
    ]
    long = "s" * 253
    assert len(access_rbac.object_name(long)) <= 253
    assert access_rbac.object_name(long) != access_rbac.object_name("s" * 252 + "t")


def _read(rbac: client.RbacAuthorizationV1Api, kind: str, ns: str, name: str) -> Any:
    try:
        if kind == "Role":
            return rbac.read_namespaced_role(name, ns)
        return rbac.read_namespaced_role_binding(name, ns)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def _subjects(rbac: client.RbacAuthorizationV1Api, ns: str) -> list[dict[str, str]] | None:
    binding = _read(rbac, "RoleBinding", ns, "csi-vso-read-db-secret")
    if binding is None:
        return None
    return [
        {
            k: v
            for k, v in (
                ("kind", s.kind),
                ("apiGroup", s.api_group),
                ("name", s.name),
                ("namespace", s.namespace),
            )
            if v
        }
        for s in binding.subjects or []
    ]


def test_operator_keeps_role_and_binding_with_the_policy(
    openbao: OpenBaoDevServer,
    cluster: Cluster,
    k8s_vault: VaultAuthSetup,
    kv_mount: str,
    operator: OperatorFactory,
) -> None:
    ns = k8s_vault.namespace
    openbao.client().secrets.kv.v2.create_or_update_secret(
        mount_point=kv_mount, path="app/rbac", secret={"password": "rbac-1"}
    )
    operator()
    cr = cluster.apply(
        static_secret(
            ns,
            "db",
            mount=kv_mount,
            path="app/rbac",
            destination="db-secret",
            type="kv-v2",
            refreshAfter="1h",
            allowedKubernetesNamespaces=["team-b"],
        )
    )
    rbac = client.RbacAuthorizationV1Api(cluster.api_client)
    want = [group(f"system:serviceaccounts:{ns}"), group("system:serviceaccounts:team-b")]
    assert wait_for(lambda: _subjects(rbac, ns) == sorted(want, key=lambda s: s["name"]), what="binding")
    role = _read(rbac, "Role", ns, "csi-vso-read-db-secret")
    [rule] = role.rules
    assert (rule.resources, rule.resource_names, sorted(rule.verbs)) == (
        ["secrets"],
        ["db-secret"],
        ["get", "list", "watch"],
    )
    for obj in (role, _read(rbac, "RoleBinding", ns, "csi-vso-read-db-secret")):
        [ref] = obj.metadata.owner_references
        assert (ref.kind, ref.uid, ref.controller) == ("VaultStaticSecret", cr["metadata"]["uid"], True)

    # Narrowed to one service account: the binding is re-stamped with exactly that subject.
    cluster.patch_spec("VaultStaticSecret", ns, "db", {"allowedServiceAccounts": [f"{ns}/reader"]})
    assert wait_for(lambda: _subjects(rbac, ns) == [sa(ns, "reader")], what="narrowed binding")

    # Narrowed to nobody it can name: binding and role are removed.
    cluster.patch_spec("VaultStaticSecret", ns, "db", {"allowedServiceAccounts": ["elsewhere/reader"]})
    assert wait_for(
        lambda: (
            _read(rbac, "RoleBinding", ns, "csi-vso-read-db-secret") is None
            and _read(rbac, "Role", ns, "csi-vso-read-db-secret") is None
        ),
        what="binding removed",
    )

    # Widened again, then the custom resource deleted: the garbage collector removes both.
    cluster.patch_spec("VaultStaticSecret", ns, "db", {"allowedServiceAccounts": None})
    assert wait_for(lambda: _subjects(rbac, ns) is not None, what="binding back")
    cluster.delete_cr("VaultStaticSecret", ns, "db")
    assert wait_for(
        lambda: (
            _read(rbac, "RoleBinding", ns, "csi-vso-read-db-secret") is None
            and _read(rbac, "Role", ns, "csi-vso-read-db-secret") is None
        ),
        what="garbage collected",
    )


def test_a_foreign_role_of_the_same_name_is_never_overwritten(
    openbao: OpenBaoDevServer,
    cluster: Cluster,
    k8s_vault: VaultAuthSetup,
    kv_mount: str,
    operator: OperatorFactory,
) -> None:
    ns = k8s_vault.namespace
    openbao.client().secrets.kv.v2.create_or_update_secret(
        mount_point=kv_mount, path="app/foreign", secret={"password": "x"}
    )
    rbac = client.RbacAuthorizationV1Api(cluster.api_client)
    foreign = {
        "metadata": {"name": "csi-vso-read-mine", "namespace": ns},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}],
    }
    rbac.create_namespaced_role(ns, foreign)
    operator()
    cluster.apply(
        static_secret(ns, "mine", mount=kv_mount, path="app/foreign", destination="mine", type="kv-v2")
    )
    ready = wait_for(
        lambda: (
            (cluster.condition("VaultStaticSecret", ns, "mine", "Ready") or {}).get("reason")
            == "AccessRBACNotOwned"
        ),
        what="condition",
    )
    assert ready
    role = rbac.read_namespaced_role("csi-vso-read-mine", ns)
    assert role.rules[0].resources == ["configmaps"]
    assert cluster.secret(ns, "mine") is None  # nothing written without its access control in place


def test_narrowed_policy_reaches_the_api_server_and_removes_the_excluded_pods_files(
    openbao: OpenBaoDevServer,
    cluster: Cluster,
    k8s_vault: VaultAuthSetup,
    kv_mount: str,
    operator: OperatorFactory,
    kube: Any,
    tmp_path: Path,
) -> None:
    """End to end in pod-token mode: the operator's Role/RoleBinding decide what the pods' own
    tokens may read; narrowing the CR removes the now-excluded pod's files at the next event."""
    ns = k8s_vault.namespace
    openbao.client().secrets.kv.v2.create_or_update_secret(
        mount_point=kv_mount, path="app/narrow", secret={"password": "p-1"}
    )
    operator()
    cluster.apply(
        static_secret(
            ns,
            "db",
            mount=kv_mount,
            path="app/narrow",
            destination="db-secret",
            type="kv-v2",
            refreshAfter="1h",
        )
    )
    rbac = client.RbacAuthorizationV1Api(cluster.api_client)
    assert wait_for(lambda: _subjects(rbac, ns) == [group(f"system:serviceaccounts:{ns}")], what="binding")
    pods = ProviderCluster(kube.api_client())
    reader = pods.pod(ns, name="reader-0", service_account="reader")
    other = pods.pod(ns, name="other-0", service_account="other")
    settings = ProviderSettings(
        socket_dir=tmp_path / "sockets",
        state_dir=tmp_path / "state",
        token_dir=tmp_path / "tokens",
        kubelet_dir=tmp_path / "kubelet",
        metrics_port=0,
        grace_seconds=5,
    )
    server = ProviderServer(settings, kube.api_client(), extensions=[RotationExtension()])
    server.start()
    driver = DriverClient(str(settings.socket_path))
    try:
        targets = {}
        for pod in (reader, other):
            targets[pod.name] = KubeletDir(tmp_path / "kubelet").target(pod.uid)
            driver.mount(
                mount_request(pod, [{"secretName": "db-secret", "key": "password"}], str(targets[pod.name]))
            )
            assert (targets[pod.name] / "password").read_bytes() == b"p-1"
        cluster.patch_spec("VaultStaticSecret", ns, "db", {"allowedServiceAccounts": [f"{ns}/reader"]})
        assert wait_for(lambda: _subjects(rbac, ns) == [sa(ns, "reader")], what="narrowed binding")
        assert wait_for(
            lambda: not (targets["other-0"] / "password").exists(), what="the excluded pod's files removed"
        )
        assert (targets["reader-0"] / "password").read_bytes() == b"p-1"
        # The API server itself now refuses the excluded pod: a new Mount is denied, naming the Secret.
        again = KubeletDir(tmp_path / "kubelet").target(other.uid)
        with pytest.raises(grpc.RpcError) as err:
            driver.mount(mount_request(other, [{"secretName": "db-secret", "key": "password"}], str(again)))
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert f"may not mount protected Secret {ns}/db-secret" in err.value.details()
        assert os.listdir(again) == []
    finally:
        driver.close()
        server.stop(5)
