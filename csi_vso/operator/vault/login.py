"""The login request for each auth method, built without I/O.

All three methods are one ``POST auth/<mount>/login``; they differ only in the body:
``kubernetes`` and ``jwt`` send ``role`` + ``jwt``, ``appRole`` sends ``role_id`` + ``secret_id``.
The VaultAuth's ``params`` go into the body first, so they can add fields (e.g. a Vault role's
extra inputs) but never replace the credentials.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from csi_vso.operator.vault.settings import AuthSettings

__all__ = ["LoginRequest", "build_login"]


@dataclass(frozen=True)
class LoginRequest:
    path: str
    body: dict[str, Any] = field(repr=False)


def build_login(auth: AuthSettings, jwt: str | None) -> LoginRequest:
    """The request that logs in with ``auth``; ``jwt`` is required for kubernetes and jwt."""
    body: dict[str, Any] = dict(auth.params)
    if auth.method in ("kubernetes", "jwt"):
        if not jwt:
            raise ValueError(f"{auth.method} login needs a JWT and the jwt source returned none")
        body.update(role=auth.role, jwt=jwt)
    else:
        body.update(role_id=auth.app_role_id, secret_id=auth.app_role_secret_id)
    return LoginRequest(path=f"auth/{auth.mount}/login", body=body)
