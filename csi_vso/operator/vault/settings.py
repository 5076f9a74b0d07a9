"""Resolved settings for talking to Vault: what a VaultConnection and a VaultAuth mean once the
operator has read their referenced Secrets (CA bundle, AppRole secret id).

These are plain frozen values built by the operator; this package never reads CRs, Secrets or the
environment. Secret-bearing fields are excluded from ``repr`` so that a logged settings object
cannot leak them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

__all__ = [
    "AUTH_METHODS",
    "DEFAULT_MOUNTS",
    "AuthMethod",
    "AuthSettings",
    "ConnectionSettings",
]

AuthMethod = Literal["kubernetes", "jwt", "appRole"]
AUTH_METHODS: tuple[AuthMethod, ...] = ("kubernetes", "jwt", "appRole")

# Where each method is mounted when the VaultAuth names no mount: Vault's own defaults
# (`vault auth enable approle` mounts at "approle", lower case; paths are case-sensitive).
DEFAULT_MOUNTS: Mapping[str, str] = MappingProxyType(
    {"kubernetes": "kubernetes", "jwt": "jwt", "appRole": "approle"}
)

# Lifetime of a service-account token the operator mints for a login: VSO's default (600 s) is
# the minimum; the maximum bounds what a token handed to a hostile Vault address is worth.
MIN_TOKEN_EXPIRATION = 600
MAX_TOKEN_EXPIRATION = 3600

_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, kw_only=True)
class ConnectionSettings:
    """How to reach one Vault server (a resolved VaultConnection).

    ``tls_server_name`` is sent as SNI and is the name the server certificate is checked against,
    while the TCP connection goes to ``address``'s host (useful when Vault is reached by IP or
    through a tunnel). ``ca_cert_pem`` replaces the system trust store for this connection.
    """

    address: str
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)  # may carry credentials
    tls_server_name: str | None = None
    ca_cert_pem: str | None = field(default=None, repr=False)
    skip_tls_verify: bool = False
    timeout: float = 30.0

    def __post_init__(self) -> None:
        if not self.address.startswith(("http://", "https://")):
            raise ValueError(f"Vault address {self.address!r} must start with http:// or https://")
        object.__setattr__(self, "address", self.address.rstrip("/"))
        object.__setattr__(self, "headers", MappingProxyType(dict(self.headers)))
        if self.timeout <= 0:
            raise ValueError(f"timeout must be positive, got {self.timeout}")


@dataclass(frozen=True, kw_only=True)
class AuthSettings:
    """How to log in (a resolved VaultAuth).

    - ``kubernetes``: ``role``; the JWT comes from the caller's ``jwt_source`` (a TokenRequest for the
      service account with ``audiences`` and ``token_expiration_seconds`` — minted by the operator,
      since this package never calls the Kubernetes API).
    - ``jwt``: ``role``; the JWT comes from ``jwt_source`` too (a TokenRequest or a Secret's value).
    - ``appRole``: ``app_role_id`` and ``app_role_secret_id`` (the value read from ``secretRef``).

    ``params`` are extra login parameters (the request's own fields win); ``headers`` are added to
    every request made with this login. ``vault_namespace`` is where the auth mount lives.
    """

    method: AuthMethod
    mount: str = ""
    vault_namespace: str | None = None
    role: str = ""
    params: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)  # may carry credentials
    audiences: tuple[str, ...] = ()
    token_expiration_seconds: int = 600
    app_role_id: str = ""
    app_role_secret_id: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ValueError("; ".join(problems))
        object.__setattr__(self, "mount", (self.mount or DEFAULT_MOUNTS[self.method]).strip("/"))
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))
        object.__setattr__(self, "headers", MappingProxyType(dict(self.headers)))

    def problems(self) -> list[str]:
        """Every reason these settings cannot log in (empty when they can)."""
        found: list[str] = []
        if self.method not in AUTH_METHODS:
            found.append(f"auth method {self.method!r} is not one of {', '.join(AUTH_METHODS)}")
            return found
        if self.method in ("kubernetes", "jwt") and not self.role:
            found.append(f"{self.method} login needs a role")
        if self.method == "appRole":
            if not self.app_role_id:
                found.append("appRole login needs a role id")
            if not self.app_role_secret_id:
                found.append("appRole login needs a secret id")
        if not MIN_TOKEN_EXPIRATION <= self.token_expiration_seconds <= MAX_TOKEN_EXPIRATION:
            found.append(
                f"token expiration must be {MIN_TOKEN_EXPIRATION} to {MAX_TOKEN_EXPIRATION} seconds, "
                f"got {self.token_expiration_seconds}"
            )
        return found

    @property
    def uses_jwt(self) -> bool:
        """True when logging in needs a JWT from the caller's ``jwt_source``."""
        return self.method in ("kubernetes", "jwt")
