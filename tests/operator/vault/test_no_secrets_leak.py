"""Secret values, tokens, secret ids and JWTs never appear in logs or in error messages.

Runs a representative mix of successful and failing operations with every logger at DEBUG (hvac,
urllib3 and requests included), then greps everything captured for each secret.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable

import hvac
import pytest

from csi_vso.devkit.postgres import PostgresServer
from csi_vso.operator.vault import (
    AuthSettings,
    ConnectionSettings,
    VaultError,
    VaultSession,
)
from tests.operator.vault.conftest import AppRole, configure_approle
from tests.operator.vault.test_database import CREATE


def test_nothing_secret_in_logs_or_errors(
    root: hvac.Client,
    postgres: PostgresServer,
    unique_path: str,
    connection: ConnectionSettings,
    session_for: Callable[[AppRole], VaultSession],
    caplog: pytest.LogCaptureFixture,
) -> None:
    kv_value = "kv-secret-" + secrets.token_hex(8)
    kv, db = f"{unique_path}-kv", f"{unique_path}-db"
    root.sys.enable_secrets_engine("kv", path=kv, options={"version": "2"})
    root.secrets.kv.v2.create_or_update_secret(mount_point=kv, path="app", secret={"password": kv_value})
    root.secrets.kv.v2.create_or_update_secret(mount_point=kv, path="gone", secret={"password": kv_value})
    root.secrets.kv.v2.delete_latest_version_of_secret(mount_point=kv, path="gone")
    root.sys.enable_secrets_engine("database", path=db)
    root.write(
        f"{db}/config/pg",
        plugin_name="postgresql-database-plugin",
        connection_url=postgres.vault_connection_url(),
        username=postgres.superuser,
        password=postgres.password,
        allowed_roles="*",
    )
    root.write(f"{db}/roles/app", db_name="pg", creation_statements=CREATE, default_ttl="60s", max_ttl="90s")
    policy = f"""
path "{kv}/data/*" {{ capabilities = ["read"] }}
path "{db}/creds/app" {{ capabilities = ["read"] }}
path "sys/leases/*" {{ capabilities = ["update"] }}
"""
    approle = configure_approle(root, prefix=unique_path, policy_hcl=policy)

    errors: list[str] = []
    caplog.set_level(logging.DEBUG)
    session = session_for(approle)
    assert session.read_kv(kv, "app", kv_version=2).data == {"password": kv_value}
    creds = session.read_dynamic(db, "creds/app")
    session.renew_lease(creds.lease.id, increment=60)
    session.lookup_lease(creds.lease.id)
    for failing in (
        lambda: session.read_kv(kv, "gone", kv_version=2),
        lambda: session.read_kv(kv, "app", kv_version=2, version=99),
        lambda: session.read_dynamic(db, "creds/missing-role"),
        lambda: session.read_kv(f"{unique_path}-nope", "x", kv_version=1),
    ):
        with pytest.raises(VaultError) as err:
            failing()
        errors.append(f"{err.value!s} {err.value!r}")
    session.revoke_lease(creds.lease.id)
    token = session._token.value if session._token else ""  # white-box: the value we must not see

    wrong = AuthSettings(
        method="appRole",
        mount=approle.mount,
        app_role_id=approle.role_id,
        app_role_secret_id="sid-wrong-" + kv_value,
    )
    jwt_value = "eyJhbGciOi." + secrets.token_hex(20) + ".sig"
    for auth, source in ((wrong, None), (AuthSettings(method="kubernetes", role="r"), lambda: jwt_value)):
        other = VaultSession(connection=connection, auth=auth, jwt_source=source)
        with pytest.raises(VaultError) as err:
            other.login()
        errors.append(f"{err.value!s} {err.value!r}")
        other.close()

    captured = caplog.text + "\n".join(errors) + repr(approle.auth()) + repr(session.token_state())
    assert "logged in to Vault" in caplog.text and len(errors) == 6  # we did capture what we meant to
    for needle in (
        kv_value,
        creds.data["password"],
        token,
        approle.secret_id,
        "sid-wrong-",
        jwt_value,
        root.token,
        postgres.password,
    ):
        assert needle and needle not in captured, f"a secret leaked into logs or errors: {needle[:6]}..."
