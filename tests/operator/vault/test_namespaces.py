"""Vault namespaces (OpenBao supports them): login in the VaultAuth's namespace, reads in the
secret's namespace, and connection headers applied to every request."""

from __future__ import annotations

import pytest

from csi_vso.devkit.openbao import OpenBaoDevServer
from csi_vso.operator.vault import AuthSettings, ConnectionSettings, VaultNotFound, VaultSession
from tests.operator.vault.conftest import configure_approle


@pytest.fixture
def namespaced(openbao: OpenBaoDevServer, unique_path: str) -> tuple[str, AuthSettings]:
    """Namespace ``<p>`` with an AppRole; child ``<p>/child`` with a kv-v2 mount the role may read."""
    root = openbao.client()
    root.write(f"sys/namespaces/{unique_path}")
    parent = openbao.client()
    parent.adapter.namespace = unique_path
    parent.write("sys/namespaces/child")
    child = openbao.client()
    child.adapter.namespace = f"{unique_path}/child"
    child.sys.enable_secrets_engine("kv", path="kv", options={"version": "2"})
    child.secrets.kv.v2.create_or_update_secret(mount_point="kv", path="app", secret={"where": "child"})
    parent.sys.enable_secrets_engine("kv", path="kv", options={"version": "2"})
    parent.secrets.kv.v2.create_or_update_secret(mount_point="kv", path="app", secret={"where": "parent"})
    policy = (
        'path "kv/data/*" { capabilities = ["read"] }\npath "child/kv/data/*" { capabilities = ["read"] }'
    )
    approle = configure_approle(parent, prefix="ns", policy_hcl=policy)
    auth = AuthSettings(
        method="appRole",
        mount=approle.mount,
        vault_namespace=unique_path,
        app_role_id=approle.role_id,
        app_role_secret_id=approle.secret_id,
    )
    for client in (root, parent, child):
        client.adapter.close()
    return unique_path, auth


def test_login_and_reads_follow_namespaces(
    connection: ConnectionSettings, namespaced: tuple[str, AuthSettings]
) -> None:
    ns, auth = namespaced
    session = VaultSession(connection=connection, auth=auth)
    try:
        assert session.read_kv("kv", "app", kv_version=2).data == {"where": "parent"}  # the auth's namespace
        child = session.read_kv("kv", "app", kv_version=2, namespace=f"{ns}/child")
        assert child.data == {"where": "child"}
        assert session.detect_kv_version("kv", namespace=f"{ns}/child") == 2
        with pytest.raises(VaultNotFound, match=rf"\(namespace {ns}/child\)"):
            session.read_kv("kv", "missing", kv_version=2, namespace=f"{ns}/child")
    finally:
        session.close()


def test_connection_headers_reach_vault(
    openbao: OpenBaoDevServer, namespaced: tuple[str, AuthSettings]
) -> None:
    """A header OpenBao acts on proves the connection's headers are sent: X-Vault-Namespace."""
    ns, auth = namespaced
    headers = {"X-Vault-Namespace": ns}
    connection = ConnectionSettings(address=openbao.address, headers=headers, timeout=5)
    plain_auth = AuthSettings(
        method="appRole",
        mount=auth.mount,
        app_role_id=auth.app_role_id,
        app_role_secret_id=auth.app_role_secret_id,
    )
    session = VaultSession(connection=connection, auth=plain_auth)  # no namespace of its own
    try:
        assert session.read_kv("kv", "app", kv_version=2).data == {"where": "parent"}
    finally:
        session.close()
