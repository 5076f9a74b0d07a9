"""Helpers for the Vault-layer tests: configure the real OpenBao (as root) and log in as a role.

Every test gets its own mounts and roles under a unique prefix on the shared dev server.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import hvac
import pytest

from csi_vso.devkit.openbao import OpenBaoDevServer
from csi_vso.operator.vault import AuthSettings, ConnectionSettings, VaultSession


@dataclass
class AppRole:
    mount: str
    role: str
    role_id: str
    secret_id: str
    policy: str

    def auth(self) -> AuthSettings:
        return AuthSettings(
            method="appRole", mount=self.mount, app_role_id=self.role_id, app_role_secret_id=self.secret_id
        )


def configure_approle(
    root: hvac.Client,
    *,
    prefix: str,
    policy_hcl: str,
    token_ttl: str = "1h",
    token_max_ttl: str = "2h",
    role_id: str | None = None,
    secret_id: str | None = None,
) -> AppRole:
    """An AppRole login with exactly ``policy_hcl``; fixed ids may be given (to recreate after restart)."""
    mount = f"{prefix}-approle"
    policy = f"{prefix}-policy"
    root.sys.create_or_update_policy(name=policy, policy=policy_hcl)
    if f"{mount}/" not in root.sys.list_auth_methods()["data"]:
        root.sys.enable_auth_method("approle", path=mount)
    root.write(
        f"auth/{mount}/role/app",
        token_policies=[policy],
        token_ttl=token_ttl,
        token_max_ttl=token_max_ttl,
        secret_id_ttl=0,
    )
    role_id = role_id or "role-" + secrets.token_hex(8)
    secret_id = secret_id or "sid-" + secrets.token_hex(16)
    root.write(f"auth/{mount}/role/app/role-id", role_id=role_id)
    root.write(f"auth/{mount}/role/app/custom-secret-id", secret_id=secret_id)
    return AppRole(mount=mount, role="app", role_id=role_id, secret_id=secret_id, policy=policy)


@pytest.fixture
def root(openbao: OpenBaoDevServer) -> Iterator[hvac.Client]:
    client = openbao.client()
    yield client
    client.adapter.close()


@pytest.fixture
def connection(openbao: OpenBaoDevServer) -> ConnectionSettings:
    return ConnectionSettings(address=openbao.address, timeout=5)


@pytest.fixture
def session_for(connection: ConnectionSettings) -> Iterator[Callable[[AppRole], VaultSession]]:
    """Build VaultSessions for AppRoles; all closed at the end of the test."""
    made: list[VaultSession] = []

    def make(approle: AppRole) -> VaultSession:
        session = VaultSession(connection=connection, auth=approle.auth())
        made.append(session)
        return session

    yield make
    for session in made:
        session.close()
