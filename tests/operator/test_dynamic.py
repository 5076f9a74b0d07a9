"""VaultDynamicSecret end to end with OpenBao's database engine and a real PostgreSQL."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import psycopg
import pytest

from csi_vso.devkit.openbao import OpenBaoDevServer
from csi_vso.devkit.postgres import PostgresServer
from csi_vso.operator import api
from tests.operator.conftest import Cluster, OperatorFactory, VaultAuthSetup, wait_for

CREATE = [
    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';",
    'GRANT CONNECT ON DATABASE postgres TO "{{name}}";',
]


def can_log_in(postgres: PostgresServer, creds: dict[str, str] | None) -> bool:
    if not creds:
        return False
    try:
        with psycopg.connect(postgres.dsn(user=creds["username"], password=creds["password"])) as conn:
            return conn.execute("select current_user").fetchone() == (creds["username"],)
    except (psycopg.OperationalError, psycopg.errors.UndefinedObject):
        # UndefinedObject ("invalid role OID"): the role was dropped (revoked) between the
        # login and the query, which also means these credentials no longer work.
        return False


@pytest.fixture
def database(openbao: OpenBaoDevServer, postgres: PostgresServer) -> Iterator[str]:
    root = openbao.client()
    mount = "db-" + secrets.token_hex(3)
    root.sys.enable_secrets_engine("database", path=mount)
    root.write(
        f"{mount}/config/pg",
        plugin_name="postgresql-database-plugin",
        connection_url=postgres.vault_connection_url(),
        username=postgres.superuser,
        password=postgres.password,
        allowed_roles="*",
    )
    yield mount
    root.sys.disable_secrets_engine(mount)
    root.adapter.close()


def db_role(openbao: OpenBaoDevServer, mount: str, name: str, default_ttl: str, max_ttl: str) -> None:
    openbao.client().write(
        f"{mount}/roles/{name}",
        db_name="pg",
        creation_statements=CREATE,
        default_ttl=default_ttl,
        max_ttl=max_ttl,
    )


def dynamic_secret(
    namespace: str, name: str, *, mount: str, path: str, destination: str, **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": api.API_VERSION,
        "kind": "VaultDynamicSecret",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"mount": mount, "path": path, "destination": {"name": destination, "create": True}, **spec},
    }


def lease_status(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return dict(
        ((cluster.get_cr("VaultDynamicSecret", namespace, name) or {}).get("status") or {}).get("secretLease")
        or {}
    )


def test_renewal_then_truncation_rotates(
    openbao: OpenBaoDevServer,
    postgres: PostgresServer,
    cluster: Cluster,
    k8s_vault: VaultAuthSetup,
    database: str,
    operator: OperatorFactory,
) -> None:
    ns = k8s_vault.namespace
    db_role(openbao, database, "short", default_ttl="4s", max_ttl="11s")
    operator()
    cluster.apply(
        dynamic_secret(ns, "app", mount=database, path="creds/short", destination="app-db", renewalPercent=40)
    )
    first = wait_for(lambda: cluster.secret_data(ns, "app-db"), what="credentials")
    assert can_log_in(postgres, first)
    lease = wait_for(lambda: lease_status(cluster, ns, "app").get("id"), what="lease in status")
    assert lease.startswith(f"{database}/creds/short/")
    issued = lease_status(cluster, ns, "app")
    expire_before = openbao.client().sys.read_lease(lease)["data"]["expire_time"]

    # Renewed: same lease, later expiry in OpenBao, same credentials.
    wait_for(
        lambda: lease_status(cluster, ns, "app").get("renewedAt", "") > issued["renewedAt"], what="renewal"
    )
    assert lease_status(cluster, ns, "app")["id"] == lease
    assert openbao.client().sys.read_lease(lease)["data"]["expire_time"] > expire_before
    assert cluster.secret_data(ns, "app-db") == first
    renewal = cluster.condition("VaultDynamicSecret", ns, "app", "LeaseRenewal")
    assert renewal is not None and renewal["status"] == "True"

    # The max TTL truncates a renewal: new credentials, while the old ones still worked.
    second = wait_for(
        lambda: (d := cluster.secret_data(ns, "app-db")) and d["username"] != first["username"] and d,
        timeout=20,
        what="rotation after truncation",
    )
    assert can_log_in(postgres, second)
    # Status and the event follow the Secret write: wait for them rather than race them.
    wait_for(
        lambda: lease_status(cluster, ns, "app").get("id") not in (None, lease), what="new lease in status"
    )
    rotated = wait_for(
        lambda: [e for e in cluster.events(ns, "app") if e.reason == "CredentialsRotated"],
        what="rotation event",
    )
    # Near the max TTL a renewal comes back truncated, or (if Vault's rounding kept one within
    # the slack) the next one is refused as past the max TTL: either way, new credentials.
    assert rotated and ("truncated" in rotated[0].message or "renewal failed" in rotated[0].message)
    assert first["password"] not in str(cluster.get_cr("VaultDynamicSecret", ns, "app"))
    for creds in (first, second):
        assert creds["password"] not in str([e.to_dict() for e in cluster.events(ns, "app")])


def test_revocation_grace_and_revoke_on_delete(
    openbao: OpenBaoDevServer,
    postgres: PostgresServer,
    cluster: Cluster,
    kube: Any,
    k8s_vault: VaultAuthSetup,
    database: str,
    operator: OperatorFactory,
) -> None:
    ns = k8s_vault.namespace
    db_role(openbao, database, "long", default_ttl="5m", max_ttl="10m")
    operator()
    cluster.apply(
        dynamic_secret(
            ns,
            "app",
            mount=database,
            path="creds/long",
            destination="app-db",
            revocationDuration="4s",
            revoke=True,
        )
    )
    first = wait_for(lambda: cluster.secret_data(ns, "app-db"), what="credentials")
    old_lease = wait_for(lambda: lease_status(cluster, ns, "app").get("id"), what="lease")

    # A spec change rotates; the old credentials keep working during revocationDuration...
    cluster.patch_spec(
        "VaultDynamicSecret",
        ns,
        "app",
        {"destination": {"name": "app-db", "create": True, "labels": {"rev": "2"}}},
    )
    second = wait_for(
        lambda: (d := cluster.secret_data(ns, "app-db")) and d["username"] != first["username"] and d,
        what="rotation",
    )
    assert can_log_in(postgres, first)
    pending = (cluster.get_cr("VaultDynamicSecret", ns, "app") or {})["status"]["pendingRevocations"]
    assert [p["id"] for p in pending] == [old_lease]
    # ...and are refused after it (their own TTL is 5 minutes: this is the revocation).
    wait_for(lambda: not can_log_in(postgres, first), timeout=20, what="old credentials revoked")
    assert can_log_in(postgres, second)
    assert not (cluster.get_cr("VaultDynamicSecret", ns, "app") or {})["status"].get("pendingRevocations")

    # revoke: true -> deleting the CR revokes the current lease; the Secret goes with the CR.
    cluster.delete_cr("VaultDynamicSecret", ns, "app")
    wait_for(
        lambda: cluster.get_cr("VaultDynamicSecret", ns, "app") is None, what="CR gone (finalizer removed)"
    )
    assert not can_log_in(postgres, second)
    wait_for(lambda: cluster.secret(ns, "app-db") is None, what="Secret garbage-collected")


def test_restart_keeps_a_valid_lease(
    openbao: OpenBaoDevServer,
    postgres: PostgresServer,
    cluster: Cluster,
    k8s_vault: VaultAuthSetup,
    database: str,
    operator: OperatorFactory,
) -> None:
    ns = k8s_vault.namespace
    db_role(openbao, database, "steady", default_ttl="6s", max_ttl="10m")
    key = secrets.token_bytes(32)
    first_operator = operator(hmac_key=key)
    cluster.apply(
        dynamic_secret(
            ns, "app", mount=database, path="creds/steady", destination="app-db", renewalPercent=30
        )
    )
    creds = wait_for(lambda: cluster.secret_data(ns, "app-db"), what="credentials")
    lease = wait_for(lambda: lease_status(cluster, ns, "app").get("id"), what="lease")
    first_operator.stop()

    restarted = datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    operator(hmac_key=key)
    wait_for(
        lambda: lease_status(cluster, ns, "app").get("renewedAt", "") > restarted,
        what="renewal by the new process",
    )
    assert lease_status(cluster, ns, "app")["id"] == lease
    assert cluster.secret_data(ns, "app-db") == creds
    assert can_log_in(postgres, creds)


def test_put_with_params_and_no_lease_refreshes_on_refresh_after(
    openbao: OpenBaoDevServer, cluster: Cluster, k8s_vault: VaultAuthSetup, operator: OperatorFactory
) -> None:
    """PKI issues with PUT + params and no lease: refreshAfter alone decides when to fetch again."""
    ns = k8s_vault.namespace
    root = openbao.client()
    mount = "pki-" + secrets.token_hex(3)
    root.sys.enable_secrets_engine("pki", path=mount, config={"max_lease_ttl": "1h"})
    root.write(f"{mount}/root/generate/internal", common_name="test-ca", ttl="1h")
    root.write(f"{mount}/roles/web", allowed_domains="example.com", allow_subdomains=True, max_ttl="1h")
    operator()
    cluster.apply(
        dynamic_secret(
            ns,
            "cert",
            mount=mount,
            path="issue/web",
            destination="cert",
            refreshAfter="3s",
            params={"common_name": "a.example.com", "ttl": "10m"},
        )
    )
    first = wait_for(lambda: cluster.secret_data(ns, "cert"), what="certificate")
    assert first["certificate"].startswith("-----BEGIN CERTIFICATE-----")
    assert "PRIVATE KEY" in first["private_key"]
    # The status patch follows the Secret write: wait for it rather than race it.
    lease = wait_for(
        lambda: (st := lease_status(cluster, ns, "cert")) and "id" in st and st, what="lease status"
    )
    assert lease["id"] == ""
    second = wait_for(
        lambda: (d := cluster.secret_data(ns, "cert")) and d["serial_number"] != first["serial_number"] and d,
        timeout=10,
        what="re-issue after refreshAfter",
    )
    assert second["certificate"] != first["certificate"]
    root.sys.disable_secrets_engine(mount)


def test_non_renewable_lease_gets_new_credentials_at_renewal_time(
    openbao: OpenBaoDevServer, cluster: Cluster, k8s_vault: VaultAuthSetup, operator: OperatorFactory
) -> None:
    """PKI with generate_lease issues a lease Vault will not renew: replaced at renewalPercent."""
    ns = k8s_vault.namespace
    root = openbao.client()
    mount = "pkil-" + secrets.token_hex(3)
    root.sys.enable_secrets_engine("pki", path=mount, config={"max_lease_ttl": "1h"})
    root.write(f"{mount}/root/generate/internal", common_name="test-ca", ttl="1h")
    root.write(
        f"{mount}/roles/web", allowed_domains="example.com", allow_subdomains=True, generate_lease=True
    )
    operator()
    cluster.apply(
        dynamic_secret(
            ns,
            "cert",
            mount=mount,
            path="issue/web",
            destination="cert",
            renewalPercent=20,
            params={"common_name": "a.example.com", "ttl": "6s"},
        )
    )
    first = wait_for(lambda: cluster.secret_data(ns, "cert"), what="certificate")
    lease = wait_for(lambda: lease_status(cluster, ns, "cert").get("id"), what="lease")
    assert lease_status(cluster, ns, "cert")["renewable"] is False
    second = wait_for(
        lambda: (d := cluster.secret_data(ns, "cert")) and d["serial_number"] != first["serial_number"] and d,
        timeout=15,
        what="new certificate instead of a renewal",
    )
    assert second["certificate"] != first["certificate"]
    assert lease_status(cluster, ns, "cert")["id"] != lease
    rotated = [e for e in cluster.events(ns, "cert") if e.reason == "CredentialsRotated"]
    assert rotated and "the lease is not renewable" in rotated[0].message
    root.sys.disable_secrets_engine(mount)


def test_allow_static_creds_follows_vaults_rotation(
    openbao: OpenBaoDevServer,
    postgres: PostgresServer,
    cluster: Cluster,
    k8s_vault: VaultAuthSetup,
    database: str,
    operator: OperatorFactory,
) -> None:
    """A database static role has no lease: its ``ttl`` says when Vault rotates, and then we fetch again."""
    ns = k8s_vault.namespace
    user = "static_" + secrets.token_hex(3)
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        conn.execute(f"CREATE ROLE \"{user}\" WITH LOGIN PASSWORD '{secrets.token_hex(8)}'")
    try:
        openbao.client().write(
            f"{database}/static-roles/app", db_name="pg", username=user, rotation_period="6s"
        )
        operator()
        cluster.apply(
            dynamic_secret(
                ns, "st", mount=database, path="static-creds/app", destination="st", allowStaticCreds=True
            )
        )
        first = wait_for(lambda: cluster.secret_data(ns, "st"), what="static credentials")
        assert first["username"] == user and can_log_in(postgres, first)
        assert lease_status(cluster, ns, "st")["id"] == ""
        second = wait_for(
            lambda: (d := cluster.secret_data(ns, "st")) and d["password"] != first["password"] and d,
            timeout=20,
            what="credentials after Vault's rotation",
        )
        assert can_log_in(postgres, second) and not can_log_in(postgres, first)
        rotated = [e for e in cluster.events(ns, "st") if e.reason == "CredentialsRotated"]
        assert rotated and "Vault rotated the static credentials" in rotated[0].message
    finally:
        openbao.client().delete(f"{database}/static-roles/app")
        with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
            conn.execute(f'DROP ROLE IF EXISTS "{user}"')


def test_restart_replaces_credentials_before_the_old_token_takes_them_down(
    openbao: OpenBaoDevServer,
    postgres: PostgresServer,
    kube: Any,
    cluster: Cluster,
    k8s_vault: VaultAuthSetup,
    database: str,
    operator: OperatorFactory,
) -> None:
    """Vault revokes a lease when the token that issued it expires, and after a restart nobody
    renews that token: the new process keeps the credentials, then replaces them in time."""
    from tests.operator.conftest import configure_k8s_auth

    ns = k8s_vault.namespace
    root = openbao.client()
    configure_k8s_auth(
        root, kube, mount=k8s_vault.mount, role="app", sa="app", namespaces=[ns], token_ttl="10s"
    )
    db_role(openbao, database, "tok", default_ttl="2m", max_ttl="10m")
    key = secrets.token_bytes(32)
    first_operator = operator(hmac_key=key)
    cluster.apply(dynamic_secret(ns, "app", mount=database, path="creds/tok", destination="app-db"))
    creds = wait_for(lambda: cluster.secret_data(ns, "app-db"), what="credentials")
    lease = wait_for(lambda: lease_status(cluster, ns, "app").get("id"), what="lease")
    accessor = lease_status(cluster, ns, "app")["tokenAccessor"]
    assert accessor and accessor not in str(cluster.secret(ns, "app-db").data)
    first_operator.stop()

    operator(hmac_key=key)
    replaced = wait_for(
        lambda: (d := cluster.secret_data(ns, "app-db")) and d["username"] != creds["username"] and d,
        timeout=15,
        what="credentials replaced under the new process's token",
    )
    # Status and the event follow the Secret write: wait for them rather than race them.
    wait_for(
        lambda: lease_status(cluster, ns, "app").get("id") not in (None, lease), what="new lease in status"
    )
    rotated = wait_for(
        lambda: [e for e in cluster.events(ns, "app") if e.reason == "CredentialsRotated"],
        what="rotation event",
    )
    # Normally "no longer renewed" (halfway to its expiry); on a slow machine the token may be gone.
    assert rotated and "the Vault token that issued the lease" in rotated[0].message

    def old_token_gone() -> bool:
        try:
            root.write("auth/token/lookup-accessor", accessor=accessor)
            return False
        except Exception:
            return True

    wait_for(old_token_gone, timeout=15, what="the first process's token expired")
    # Vault takes the old credentials down with their token (asynchronously)...
    wait_for(
        lambda: not can_log_in(postgres, creds), timeout=10, what="old credentials revoked with the token"
    )
    assert can_log_in(postgres, replaced)  # ...after the Secret already held working ones
    assert cluster.secret_data(ns, "app-db") == replaced
