"""VaultAuthGlobal end to end: VSO's documented example, applied as published (in the test's
namespace), logs in with the inherited settings against real OpenBao; editing the global
changes the login of the VaultAuths that use it."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from csi_vso.devkit.openbao import OpenBaoDevServer
from tests.fixtures.kube import Kube
from tests.operator.conftest import Cluster, OperatorFactory, configure_k8s_auth, static_secret, wait_for
from tests.operator.test_transformations import documented, not_ready

VAULT_NS = "example-ns"


@pytest.fixture
def example_ns(openbao: OpenBaoDevServer, kube: Kube, namespace: str, cluster: Cluster) -> Iterator[Any]:
    """Vault namespace ``example-ns`` with kubernetes auth at ``kubernetes``: only role ``local-role``
    (audience ``vault``, ServiceAccount ``default`` of the test namespace), and a kv-v2 mount."""
    root = openbao.client()
    if f"{VAULT_NS}/" not in (root.list("sys/namespaces") or {}).get("data", {}).get("keys", []):
        root.write(f"sys/namespaces/{VAULT_NS}")
    inner = openbao.client()
    inner.adapter.namespace = VAULT_NS
    configure_k8s_auth(
        inner, kube, mount="kubernetes", role="local-role", sa="default", namespaces=[namespace]
    )
    inner.write(
        "auth/kubernetes/role/local-role",
        bound_service_account_names=["default"],
        bound_service_account_namespaces=[namespace],
        token_policies=["csi-vso-operator"],
        audience="vault",
        token_ttl="1h",
    )
    mount = "kv-" + secrets.token_hex(3)
    inner.sys.enable_secrets_engine("kv", path=mount, options={"version": "2"})
    cluster.service_account(namespace, "default")
    cluster.apply(
        {
            "apiVersion": "secrets.hashicorp.com/v1beta1",
            "kind": "VaultConnection",
            "metadata": {"name": "default", "namespace": namespace},
            "spec": {"address": openbao.address},
        }
    )
    yield inner, mount
    inner.sys.disable_secrets_engine(mount)
    inner.sys.disable_auth_method("kubernetes")
    inner.adapter.close()
    root.adapter.close()


def test_documented_vault_auth_global_example_logs_in(
    namespace: str, cluster: Cluster, example_ns: Any, operator: OperatorFactory
) -> None:
    inner, mount = example_ns
    inner.secrets.kv.v2.create_or_update_secret(mount_point=mount, path="app", secret={"greeting": "hello"})
    global_obj, auth = documented("vso_vaultauthglobal.yaml", namespace)
    cluster.apply(auth)
    operator()
    # Before its global exists the VaultAuth says so; the global's arrival heals it.
    missing = wait_for(
        lambda: (
            (c := cluster.condition("VaultAuth", namespace, "vault-auth", "Ready"))
            and c["status"] == "False"
            and c
        )
    )
    assert missing["reason"] == "VaultAuthGlobalNotFound"
    assert f"VaultAuthGlobal {namespace}/vault-auth-global not found" in missing["message"]
    cluster.apply(global_obj)
    # No namespace on the secret: it is read in the VaultAuth's Vault namespace, example-ns,
    # which only the merged VaultAuth knows (it comes from the global's kubernetes block).
    cluster.apply(
        static_secret(
            namespace, "s", mount=mount, path="app", destination="s", type="kv-v2", vaultAuthRef="vault-auth"
        )
    )
    assert wait_for(lambda: cluster.secret_data(namespace, "s"), what="synced through the global") == {
        "greeting": "hello"
    }
    assert wait_for(
        lambda: (
            (c := cluster.condition("VaultAuth", namespace, "vault-auth", "Ready")) and c["status"] == "True"
        ),
        what="the VaultAuth healed by its global's arrival",
    )
    assert (
        wait_for(
            lambda: (c := cluster.condition("VaultAuthGlobal", namespace, "vault-auth-global", "Ready")) and c
        )["status"]
        == "True"
    )

    # The global's audience is what the role checks: change it and the login must fail, for the
    # VaultAuth that did not change at all (a new session, not the cached one).
    cluster.patch_spec(
        "VaultAuthGlobal", namespace, "vault-auth-global", {"kubernetes": {"audiences": ["other"]}}
    )
    inner.secrets.kv.v2.create_or_update_secret(mount_point=mount, path="app", secret={"greeting": "again"})
    cluster.patch_spec("VaultStaticSecret", namespace, "s", {"refreshAfter": "1s"})
    failed = not_ready(cluster, "s", namespace)  # the login is refused with the new audience
    assert failed["reason"].startswith("Vault")
    assert cluster.secret_data(namespace, "s") == {"greeting": "hello"}


def test_global_in_another_namespace_needs_allowed_namespaces(
    namespace: str, cluster: Cluster, example_ns: Any, operator: OperatorFactory, kube: Kube
) -> None:
    inner, mount = example_ns
    inner.secrets.kv.v2.create_or_update_secret(mount_point=mount, path="app", secret={"k": "v"})
    other = "vag-" + secrets.token_hex(3)
    cluster.ensure_namespace(other)
    try:
        global_obj, auth = documented("vso_vaultauthglobal.yaml", namespace)
        global_obj["metadata"]["namespace"] = other
        auth["spec"]["vaultAuthGlobalRef"]["namespace"] = other
        cluster.apply(global_obj)
        cluster.apply(auth)
        operator()
        cluster.apply(
            static_secret(
                namespace,
                "s",
                mount=mount,
                path="app",
                destination="s",
                type="kv-v2",
                vaultAuthRef="vault-auth",
            )
        )
        failed = not_ready(cluster, "s", namespace)
        assert failed["reason"] == "VaultAuthGlobalNotAllowed"
        assert (
            f"VaultAuthGlobal {other}/vault-auth-global does not allow namespace {namespace!r}"
            in failed["message"]
        )
        cluster.patch_spec("VaultAuthGlobal", other, "vault-auth-global", {"allowedNamespaces": [namespace]})
        assert wait_for(lambda: cluster.secret_data(namespace, "s"), what="allowed now") == {"k": "v"}
    finally:
        cluster.core.delete_namespace(other)
