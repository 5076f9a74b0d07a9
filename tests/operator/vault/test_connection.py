"""Connection options against real servers: TLS (CA PEM, server name, skip verify), and Vault
going away and coming back. (Headers: see test_namespaces.)"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from csi_vso.devkit.openbao import OpenBaoDevServer
from csi_vso.operator.vault import (
    AuthSettings,
    ConnectionSettings,
    VaultInvalid,
    VaultSession,
    VaultUnavailable,
)
from csi_vso.operator.vault.metrics import VAULT_REQUESTS
from tests.operator.vault.conftest import configure_approle


@pytest.fixture(scope="module")
def tls_openbao() -> Iterator[OpenBaoDevServer]:
    with OpenBaoDevServer(tls=True) as server:
        yield server


def _read(server: OpenBaoDevServer, connection: ConnectionSettings, prefix: str) -> dict[str, object]:
    root = server.client()
    mount = f"{prefix}-kv"
    if f"{mount}/" not in root.sys.list_mounted_secrets_engines()["data"]:
        root.sys.enable_secrets_engine("kv", path=mount, options={"version": "1"})
    root.write(f"{mount}/app", greeting="hello")
    approle = configure_approle(
        root,
        prefix=prefix,
        policy_hcl=f'path "{mount}/*" {{ capabilities = ["read"] }}',
        role_id="r-" + prefix,
    )
    session = VaultSession(connection=connection, auth=approle.auth())
    try:
        return dict(session.read_kv(mount, "app", kv_version=1).data)
    finally:
        session.close()


def test_tls_with_configured_ca(tls_openbao: OpenBaoDevServer, unique_path: str) -> None:
    connection = ConnectionSettings(
        address=tls_openbao.address, ca_cert_pem=tls_openbao.ca_cert_pem, timeout=5
    )
    assert _read(tls_openbao, connection, unique_path) == {"greeting": "hello"}
    assert "BEGIN CERTIFICATE" not in repr(connection)


def test_tls_server_name_is_checked(tls_openbao: OpenBaoDevServer, unique_path: str) -> None:
    # The dev certificate names "localhost": connecting to 127.0.0.1 while verifying "localhost" works...
    good = ConnectionSettings(
        address=tls_openbao.address,
        ca_cert_pem=tls_openbao.ca_cert_pem,
        tls_server_name="localhost",
        timeout=5,
    )
    assert _read(tls_openbao, good, unique_path) == {"greeting": "hello"}
    # ...and a name the certificate does not carry is refused.
    bad = ConnectionSettings(
        address=tls_openbao.address,
        ca_cert_pem=tls_openbao.ca_cert_pem,
        tls_server_name="vault.example.com",
        timeout=5,
    )
    with pytest.raises(VaultInvalid, match="TLS verification failed"):
        VaultSession(
            connection=bad, auth=AuthSettings(method="appRole", app_role_id="x", app_role_secret_id="y")
        ).login()


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_tls_untrusted_unless_skip_verify(tls_openbao: OpenBaoDevServer, unique_path: str) -> None:
    untrusted = ConnectionSettings(address=tls_openbao.address, timeout=5)  # system store only
    with pytest.raises(VaultInvalid, match="TLS verification failed"):
        _read(tls_openbao, untrusted, unique_path)
    skip = ConnectionSettings(address=tls_openbao.address, skip_tls_verify=True, timeout=5)
    assert _read(tls_openbao, skip, unique_path) == {"greeting": "hello"}


def test_vault_down_is_temporary_and_recovers(openbao_private: OpenBaoDevServer, unique_path: str) -> None:
    root = openbao_private.client()
    root.sys.enable_secrets_engine("kv", path="kv", options={"version": "1"})
    root.write("kv/app", greeting="hello")
    policy = 'path "kv/*" { capabilities = ["read"] }'
    approle = configure_approle(root, prefix="p", policy_hcl=policy)
    connection = ConnectionSettings(address=openbao_private.address, timeout=3)
    session = VaultSession(connection=connection, auth=approle.auth())
    try:
        assert session.read_kv("kv", "app", kv_version=1).data == {"greeting": "hello"}
        unavailable_before = VAULT_REQUESTS.labels(operation="read_kv", outcome="unavailable")._value.get()

        openbao_private.stop()
        with pytest.raises(
            VaultUnavailable, match=r"read_kv .*/v1/kv/app: Vault unreachable \(ConnectionError\)"
        ) as err:
            session.read_kv("kv", "app", kv_version=1)
        assert err.value.temporary
        assert (
            VAULT_REQUESTS.labels(operation="read_kv", outcome="unavailable")._value.get()
            == unavailable_before + 1
        )

        openbao_private.start()  # dev mode: empty again, so configure the same role, ids and data
        root = openbao_private.client()
        root.sys.enable_secrets_engine("kv", path="kv", options={"version": "1"})
        root.write("kv/app", greeting="hello again")
        configure_approle(
            root, prefix="p", policy_hcl=policy, role_id=approle.role_id, secret_id=approle.secret_id
        )
        # The old token is unknown to the new server: 403, re-login, retry.
        assert session.read_kv("kv", "app", kv_version=1).data == {"greeting": "hello again"}
        assert session.login_count == 2
    finally:
        session.close()
