"""A logged-in Vault session: the token's lifecycle plus the reads and lease calls the operator makes.

Token upkeep: a request first makes sure the token is not (about to be) expired and logs in
again if it is; :meth:`VaultSession.maintain` (called periodically by the ``SessionCache``
thread) renews it with ``auth/token/renew-self`` once two thirds of its TTL have passed, and logs
in again when it is not renewable, the renewal fails or is truncated. A 403 answer to a request
triggers one re-login and one retry: the token may have been revoked behind our back.

Why tokens must be kept alive rather than re-obtained lazily: Vault revokes every lease a token
created when that token expires. Dynamic credentials outlive the session's quiet periods only if
the token that issued them is renewed in time. After a re-login (``login_count`` goes up) leases
issued under the previous token die with it at its expiry; the caller may compare
``login_count`` to decide when such credentials must be replaced.

Thread safety: one lock guards the token; requests themselves run concurrently.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from csi_vso.operator.vault import leases
from csi_vso.operator.vault.errors import (
    RequestContext,
    VaultDenied,
    VaultError,
    VaultInvalid,
    VaultUnavailable,
)
from csi_vso.operator.vault.login import build_login
from csi_vso.operator.vault.model import (
    DynamicSecret,
    KVSecret,
    Lease,
    LeaseInfo,
    MountInfo,
    Token,
    parse_dynamic,
    parse_kv,
    parse_lease,
    parse_lease_lookup,
    parse_mount,
    parse_token,
)
from csi_vso.operator.vault.pki import IssuedCertificate, parse_issued
from csi_vso.operator.vault.settings import AuthSettings, ConnectionSettings
from csi_vso.operator.vault.transport import Transport

__all__ = ["JwtSource", "TokenState", "VaultSession"]

log = logging.getLogger(__name__)

JwtSource = Callable[[], str]
HttpMethod = Literal["GET", "PUT", "POST"]

# A token this close to expiry is treated as expired (seconds, and at most this share of its TTL).
_EXPIRY_MARGIN_SECONDS = 5.0
_EXPIRY_MARGIN_FRACTION = 0.1


@dataclass(frozen=True)
class TokenState:
    """What may be shown about the current token (no token value, no accessor)."""

    logged_in: bool
    ttl_remaining: float | None  # None: never expires
    renewable: bool
    login_count: int


def _join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p.strip("/"))


class VaultSession:
    """One Vault identity (connection + auth) and its token; see the module docstring."""

    def __init__(
        self,
        *,
        connection: ConnectionSettings,
        auth: AuthSettings,
        jwt_source: JwtSource | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_relogin: Callable[[], None] | None = None,
    ) -> None:
        if auth.uses_jwt and jwt_source is None:
            raise ValueError(f"{auth.method} login needs a jwt_source")
        self._on_relogin = on_relogin
        self.connection = connection
        self.auth = auth
        self._jwt_source = jwt_source
        self._clock = clock
        self._transport = Transport(connection, extra_headers=auth.headers)
        self._lock = threading.Lock()
        self._token: Token | None = None
        self._login_count = 0

    # -- token lifecycle -------------------------------------------------------------------------

    @property
    def address(self) -> str:
        return self.connection.address

    @property
    def login_count(self) -> int:
        return self._login_count

    @property
    def token_accessor(self) -> str:
        """The current token's accessor ("" before login): names the token without being it."""
        token = self._token
        return token.accessor if token is not None else ""

    def token_state(self) -> TokenState:
        token = self._token
        if token is None:
            return TokenState(False, None, False, self._login_count)
        expires = token.expires_at()
        remaining = None if expires is None else max(0.0, expires - self._clock())
        return TokenState(True, remaining, token.renewable, self._login_count)

    def upkeep_due_at(self) -> float | None:
        """Clock time at which :meth:`maintain` has work to do (None: no token, or one that never
        expires). The upkeep thread sleeps until the earliest of these, so a short-lived token is
        renewed in time however its TTL falls against the upkeep interval."""
        token = self._token
        if token is None:
            return None
        return leases.token_renewal_at(obtained_at=token.obtained_at, ttl=token.ttl)

    def login(self) -> None:
        """Log in now (replacing any current token)."""
        with self._lock:
            self._login_locked()

    def maintain(self) -> None:
        """Renew the token when due; log in again when it cannot be renewed. Raises VaultError."""
        with self._lock:
            token = self._token
            if token is None:
                return
            now = self._clock()
            if self._expired(token, now):
                self._login_locked()
                return
            if not leases.token_renewal_due(now=now, obtained_at=token.obtained_at, ttl=token.ttl):
                return
            if not token.renewable:
                self._login_locked()
                return
            context = self._context(
                "renew_token", "auth/token/renew-self", namespace=self.auth.vault_namespace
            )
            try:
                body = self._transport.request(context, "POST", token=token.value, json={})
                renewed = parse_token(body, now=self._clock(), context=context)
            except VaultError:
                # Refused, or OpenBao's 500 "past the max TTL": log in afresh. When Vault is really
                # down the login raises too and the old token is kept for the next attempt.
                self._login_locked()
                return
            if renewed.ttl + 1 < token.ttl:
                # Truncated by the token's max TTL: start a fresh token while this one still works.
                self._login_locked()
                return
            self._token = renewed

    def close(self) -> None:
        self._transport.close()

    def _login_locked(self) -> Token:
        auth = self.auth
        path = f"auth/{auth.mount}/login"
        context = self._context("login", path, mount=auth.mount, namespace=auth.vault_namespace)
        jwt: str | None = None
        if auth.uses_jwt:
            assert self._jwt_source is not None
            try:
                jwt = self._jwt_source()
            except VaultError:
                raise
            except Exception as exc:
                # The source talks to Kubernetes; its failures are worth a retry. Only the type is
                # reported: an API error's text is not ours to vet for secrets.
                raise VaultUnavailable(
                    f"{context.describe()}: could not obtain a JWT to log in ({type(exc).__name__})",
                    context=context,
                ) from exc
        try:
            request = build_login(auth, jwt)
        except ValueError as exc:
            raise VaultInvalid(f"{context.describe()}: {exc}", context=context) from None
        body = self._transport.request(context, "POST", json=request.body)
        token = parse_token(body, now=self._clock(), context=context)
        self._token = token
        self._login_count += 1
        if self._login_count > 1 and self._on_relogin is not None:
            # The previous token is no longer renewed: leases it issued end when it expires.
            self._on_relogin()
        log.info(
            "logged in to Vault",
            extra={
                "vault_address": self.address,
                "auth_method": auth.method,
                "auth_mount": auth.mount,
                "token_ttl": token.ttl,
                "token_renewable": token.renewable,
            },
        )
        return token

    def _expired(self, token: Token, now: float) -> bool:
        expires = token.expires_at()
        if expires is None:
            return False
        margin = min(_EXPIRY_MARGIN_SECONDS, token.ttl * _EXPIRY_MARGIN_FRACTION)
        return now >= expires - margin

    def _valid_token(self) -> Token:
        with self._lock:
            token = self._token
            if token is None or self._expired(token, self._clock()):
                token = self._login_locked()
            return token

    def _context(
        self, operation: str, path: str, *, mount: str | None = None, namespace: str | None = None
    ) -> RequestContext:
        return RequestContext(
            operation=operation, address=self.address, path=path, mount=mount, namespace=namespace
        )

    def _call(
        self,
        context: RequestContext,
        method: str,
        *,
        json: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        relogin_on_denied: bool = True,
    ) -> dict[str, Any] | None:
        token = self._valid_token()
        try:
            return self._transport.request(context, method, token=token.value, json=json, params=params)
        except VaultDenied:
            if not relogin_on_denied:
                raise
            with self._lock:
                if self._token is token:  # nobody re-logged in meanwhile
                    self._login_locked()
                token = self._token if self._token is not None else token
            return self._transport.request(context, method, token=token.value, json=json, params=params)

    def _namespace(self, namespace: str | None) -> str | None:
        return namespace if namespace is not None else self.auth.vault_namespace

    # -- secrets --------------------------------------------------------------------------------

    def read_kv(
        self,
        mount: str,
        path: str,
        *,
        kv_version: int,
        version: int | None = None,
        namespace: str | None = None,
    ) -> KVSecret:
        """Read a KV secret; ``version`` pins a kv-v2 version (kv-v1 has none: VaultInvalid)."""
        ns = self._namespace(namespace)
        if kv_version == 1:
            context = self._context("read_kv", _join(mount, path), mount=mount, namespace=ns)
            if version is not None:
                raise VaultInvalid(f"{context.describe()}: kv-v1 has no versions to pin", context=context)
            return parse_kv(self._call(context, "GET"), kv_version=1, context=context)
        if kv_version != 2:
            raise ValueError(f"kv_version must be 1 or 2, got {kv_version}")
        context = self._context("read_kv", _join(mount, "data", path), mount=mount, namespace=ns)
        params = {"version": str(version)} if version is not None else None
        return parse_kv(self._call(context, "GET", params=params), kv_version=2, context=context)

    def mount_info(self, path: str, *, namespace: str | None = None) -> MountInfo:
        """The engine mounted at (or above) ``path``, as the vault CLI finds it."""
        context = self._context(
            "mount_info",
            _join("sys/internal/ui/mounts", path),
            mount=path,
            namespace=self._namespace(namespace),
        )
        return parse_mount(self._call(context, "GET"), context=context)

    def detect_kv_version(self, mount: str, *, namespace: str | None = None) -> int:
        """1 or 2 for a KV mount; VaultInvalid when another engine is mounted there."""
        info = self.mount_info(mount, namespace=namespace)
        if info.kv_version is None:
            context = self._context("mount_info", _join("sys/internal/ui/mounts", mount), mount=mount)
            raise VaultInvalid(
                f"{context.describe()}: {mount!r} is a {info.type!r} engine, not a KV store", context=context
            )
        return info.kv_version

    def read_dynamic(
        self,
        mount: str,
        path: str,
        *,
        method: HttpMethod = "GET",
        params: Mapping[str, Any] | None = None,
        namespace: str | None = None,
    ) -> DynamicSecret:
        """Issue dynamic credentials: GET (``params`` as query) or PUT/POST (``params`` as the body)."""
        context = self._context(
            "read_dynamic", _join(mount, path), mount=mount, namespace=self._namespace(namespace)
        )
        if method == "GET":
            body = self._call(context, "GET", params=params)
        else:
            body = self._call(context, method, json=params or {})
        return parse_dynamic(body, context=context)

    # -- leases ---------------------------------------------------------------------------------

    def renew_lease(
        self, lease_id: str, increment: int | None = None, *, namespace: str | None = None
    ) -> Lease:
        """``sys/leases/renew``; the answer's duration may be shorter than asked (truncated)."""
        context = self._context("renew_lease", "sys/leases/renew", namespace=self._namespace(namespace))
        payload: dict[str, Any] = {"lease_id": lease_id}
        if increment is not None:
            payload["increment"] = int(increment)
        return parse_lease(self._call(context, "PUT", json=payload), context=context)

    def revoke_lease(self, lease_id: str, *, namespace: str | None = None) -> None:
        context = self._context("revoke_lease", "sys/leases/revoke", namespace=self._namespace(namespace))
        self._call(context, "PUT", json={"lease_id": lease_id})

    def lookup_token_ttl(self, accessor: str) -> int:
        """Seconds the token named by ``accessor`` has left (0: never expires; VaultNotFound: gone).

        ``auth/token/lookup-accessor`` in the auth's Vault namespace, where the token lives.
        """
        context = self._context(
            "lookup_token", "auth/token/lookup-accessor", namespace=self.auth.vault_namespace
        )
        # A 403 here is a policy without auth/token/lookup-accessor, not a dead token: logging in
        # again would abandon the current token, and with it every lease it issued.
        body = self._call(context, "POST", json={"accessor": accessor}, relogin_on_denied=False)
        data = (body or {}).get("data")
        if not isinstance(data, dict):
            raise VaultInvalid(f"{context.describe()}: answer has no data", context=context)
        return int(data.get("ttl") or 0)

    def lookup_lease(self, lease_id: str, *, namespace: str | None = None) -> LeaseInfo:
        """Remaining TTL of a lease (VaultNotFound when Vault no longer knows it)."""
        context = self._context("lookup_lease", "sys/leases/lookup", namespace=self._namespace(namespace))
        # No re-login on 403 (see lookup_token_ttl): a policy without sys/leases/lookup is common.
        body = self._call(context, "PUT", json={"lease_id": lease_id}, relogin_on_denied=False)
        return parse_lease_lookup(body, context=context)

    # -- PKI ------------------------------------------------------------------------------------

    def issue_certificate(
        self, path: str, params: Mapping[str, Any], *, mount: str, namespace: str | None = None
    ) -> IssuedCertificate:
        """``<mount>/issue/<role>`` (or ``.../issuer/<ref>/issue/<role>``): a new certificate and key."""
        context = self._context("pki_issue", path, mount=mount, namespace=self._namespace(namespace))
        return parse_issued(self._call(context, "PUT", json=params), context=context)

    def revoke_certificate(self, mount: str, serial_number: str, *, namespace: str | None = None) -> None:
        """``<mount>/revoke``: the certificate goes on the CRL (and ``cert/<serial>`` shows it)."""
        context = self._context(
            "pki_revoke", _join(mount, "revoke"), mount=mount, namespace=self._namespace(namespace)
        )
        self._call(context, "PUT", json={"serial_number": serial_number})
