"""Dynamic database credentials: OpenBao's database engine issuing real PostgreSQL roles."""

from __future__ import annotations

import time
from collections.abc import Callable

import hvac
import psycopg
import pytest

from csi_vso.devkit.postgres import PostgresServer
from csi_vso.operator.vault import VaultNotFound, VaultSession, Verdict, judge_renewal
from tests.operator.vault.conftest import AppRole, configure_approle

CREATE = [
    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';",
    'GRANT CONNECT ON DATABASE postgres TO "{{name}}";',
]


@pytest.fixture
def database(root: hvac.Client, postgres: PostgresServer, unique_path: str) -> tuple[AppRole, str]:
    mount = f"{unique_path}-db"
    root.sys.enable_secrets_engine("database", path=mount)
    root.write(
        f"{mount}/config/pg",
        plugin_name="postgresql-database-plugin",
        connection_url=postgres.vault_connection_url(),
        username=postgres.superuser,
        password=postgres.password,
        allowed_roles="*",
    )
    root.write(
        f"{mount}/roles/app", db_name="pg", creation_statements=CREATE, default_ttl="60s", max_ttl="90s"
    )
    policy = f"""
path "{mount}/creds/app" {{ capabilities = ["read"] }}
path "sys/leases/renew" {{ capabilities = ["update"] }}
path "sys/leases/revoke" {{ capabilities = ["update"] }}
path "sys/leases/lookup" {{ capabilities = ["update"] }}
"""
    return configure_approle(root, prefix=unique_path, policy_hcl=policy), mount


def _can_log_in(postgres: PostgresServer, username: str, password: str) -> bool:
    try:
        with psycopg.connect(postgres.dsn(user=username, password=password)) as conn:
            return conn.execute("select current_user").fetchone() == (username,)
    except psycopg.OperationalError:
        return False


def test_issue_renew_truncate_revoke(
    database: tuple[AppRole, str], postgres: PostgresServer, session_for: Callable[[AppRole], VaultSession]
) -> None:
    approle, mount = database
    session = session_for(approle)

    secret = session.read_dynamic(mount, "creds/app")
    username, password = secret.data["username"], secret.data["password"]
    assert secret.lease.id.startswith(f"{mount}/creds/app/")
    assert (secret.lease.duration, secret.lease.renewable) == (60, True)
    assert _can_log_in(postgres, username, password)
    assert password not in repr(secret)

    time.sleep(2.1)  # let the TTL run down a little so a renewal visibly moves it
    before = session.lookup_lease(secret.lease.id)
    renewed = session.renew_lease(secret.lease.id, increment=60)
    after = session.lookup_lease(secret.lease.id)
    assert after.ttl > before.ttl
    assert judge_renewal(lease=secret.lease, requested_increment=60, granted=renewed).verdict is Verdict.KEEP

    truncated = session.renew_lease(secret.lease.id, increment=3600)  # max_ttl is 90s
    assert truncated.duration < 90
    verdict = judge_renewal(lease=secret.lease, requested_increment=3600, granted=truncated)
    assert verdict.verdict is Verdict.NEW_CREDENTIALS
    assert "truncated" in verdict.reason

    session.revoke_lease(secret.lease.id)
    assert not _can_log_in(postgres, username, password)
    with pytest.raises(VaultNotFound, match="sys/leases/lookup"):
        session.lookup_lease(secret.lease.id)
