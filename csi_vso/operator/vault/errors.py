"""Typed Vault errors, and the one place that maps hvac/requests exceptions onto them.

The operator decides retries by type: :class:`VaultUnavailable` is temporary (back off and try
again), the others are permanent until something changes (the CR, a policy, the secret). Messages
carry context — Vault address, operation, mount, path, HTTP status and Vault's own error strings —
but never request or response bodies, tokens or secret values: hvac exceptions keep the whole
response text and JSON (a kv-v2 404 body, a login response), so we read only ``errors`` from them.
"""

from __future__ import annotations

from dataclasses import dataclass

import hvac.exceptions
import requests

__all__ = [
    "RequestContext",
    "VaultDenied",
    "VaultError",
    "VaultInvalid",
    "VaultNotFound",
    "VaultUnavailable",
    "translate",
]

_MAX_VAULT_MESSAGE = 300


@dataclass(frozen=True)
class RequestContext:
    """What a request was about, for error messages and metrics (no secret material)."""

    operation: str
    address: str
    path: str
    mount: str | None = None
    namespace: str | None = None

    def describe(self) -> str:
        where = f"{self.address}/v1/{self.path}"
        if self.namespace:
            where += f" (namespace {self.namespace})"
        return f"{self.operation} {where}"


class VaultError(Exception):
    """Base of every error the Vault layer raises; ``temporary`` tells the caller whether to retry."""

    temporary: bool = False
    outcome: str = "error"

    def __init__(
        self, message: str, *, context: RequestContext | None = None, status: int | None = None
    ) -> None:
        super().__init__(message)
        self.context = context
        self.status = status


class VaultUnavailable(VaultError):
    """Vault could not be reached or answered 5xx/429/sealed: retry with backoff."""

    temporary = True
    outcome = "unavailable"


class VaultDenied(VaultError):
    """Authentication failed or the token's policies do not allow the operation (401/403)."""

    outcome = "denied"


class VaultNotFound(VaultError):
    """Nothing at that path (404), no such mount, no such lease, or a deleted/destroyed KV version."""

    outcome = "not_found"


class VaultInvalid(VaultError):
    """Vault rejected the request as malformed (400), or the answer was not what the caller asked for."""

    outcome = "invalid"


def _vault_messages(exc: hvac.exceptions.VaultError) -> str:
    """Vault's ``errors`` strings only; the response body may hold secret data, so never ``text``."""
    errors = exc.errors if isinstance(exc.errors, list) else []
    text = "; ".join(" ".join(str(e).split())[:_MAX_VAULT_MESSAGE] for e in errors if e)
    return f": {text}" if text else ""


def _deleted_kv_version(exc: hvac.exceptions.VaultError) -> str | None:
    """kv-v2 answers 404 for a deleted or destroyed version, with only its metadata in the body."""
    body = exc.json if isinstance(exc.json, dict) else {}
    data = body.get("data") if isinstance(body.get("data"), dict) else {}
    metadata = data.get("metadata") if isinstance(data, dict) else None
    if not isinstance(metadata, dict):
        return None
    if metadata.get("destroyed"):
        return "this version was destroyed"
    if metadata.get("deletion_time"):
        return "this version was deleted"
    return None


def translate(exc: BaseException, context: RequestContext) -> VaultError:
    """Map an exception from hvac or requests to our typed error (the only mapping in the package)."""
    if isinstance(exc, VaultError):
        return exc
    where = context.describe()
    if isinstance(exc, hvac.exceptions.VaultError):
        status = _status_of(exc)
        detail = _vault_messages(exc)
        if isinstance(exc, hvac.exceptions.Unauthorized | hvac.exceptions.Forbidden):
            return VaultDenied(
                f"{where}: permission denied (HTTP {status}){detail}", context=context, status=status
            )
        if isinstance(exc, hvac.exceptions.InvalidPath):
            what = _deleted_kv_version(exc) or "not found"
            return VaultNotFound(f"{where}: {what} (HTTP 404){detail}", context=context, status=status)
        if isinstance(exc, hvac.exceptions.InvalidRequest):
            if context.operation == "login":  # auth methods answer 400 for bad credentials
                return VaultDenied(
                    f"{where}: login rejected (HTTP 400){detail}", context=context, status=status
                )
            if "invalid lease" in detail:  # sys/leases/lookup answers 400 for an unknown lease
                return VaultNotFound(
                    f"{where}: no such lease (HTTP 400){detail}", context=context, status=status
                )
            if "invalid accessor" in detail:  # auth/token/lookup-accessor: the token is gone
                return VaultNotFound(
                    f"{where}: no such token (HTTP 400){detail}", context=context, status=status
                )
            return VaultInvalid(f"{where}: rejected (HTTP 400){detail}", context=context, status=status)
        if isinstance(
            exc,
            hvac.exceptions.InternalServerError
            | hvac.exceptions.VaultDown
            | hvac.exceptions.BadGateway
            | hvac.exceptions.RateLimitExceeded
            | hvac.exceptions.VaultNotInitialized,
        ):
            return VaultUnavailable(
                f"{where}: Vault unavailable (HTTP {status}){detail}", context=context, status=status
            )
        return VaultInvalid(
            f"{where}: unexpected answer (HTTP {status}){detail}", context=context, status=status
        )
    if isinstance(exc, requests.exceptions.SSLError):
        # A TLS failure is configuration (CA, server name), not an outage: retrying will not fix it.
        return VaultInvalid(f"{where}: TLS verification failed ({type(exc).__name__})", context=context)
    if isinstance(exc, requests.exceptions.ConnectionError | requests.exceptions.Timeout):
        return VaultUnavailable(f"{where}: Vault unreachable ({type(exc).__name__})", context=context)
    if isinstance(exc, requests.exceptions.RequestException | ValueError):
        return VaultInvalid(f"{where}: bad request or answer ({type(exc).__name__})", context=context)
    return VaultUnavailable(f"{where}: unexpected failure ({type(exc).__name__})", context=context)


_STATUS = {
    hvac.exceptions.InvalidRequest: 400,
    hvac.exceptions.Unauthorized: 401,
    hvac.exceptions.Forbidden: 403,
    hvac.exceptions.InvalidPath: 404,
    hvac.exceptions.RateLimitExceeded: 429,
    hvac.exceptions.InternalServerError: 500,
    hvac.exceptions.VaultNotInitialized: 501,
    hvac.exceptions.BadGateway: 502,
    hvac.exceptions.VaultDown: 503,
}


def _status_of(exc: hvac.exceptions.VaultError) -> int | None:
    return _STATUS.get(type(exc))
