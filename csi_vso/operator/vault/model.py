"""What Vault answers, as typed values, and the pure functions that read Vault's JSON into them.

No I/O here. Values that hold secret data (KV data, dynamic credentials, tokens) keep it out of
``repr`` so a stray log line or assertion message cannot print it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from csi_vso.operator.vault.errors import RequestContext, VaultInvalid, VaultNotFound

__all__ = [
    "DynamicSecret",
    "KVSecret",
    "Lease",
    "LeaseInfo",
    "MountInfo",
    "Token",
    "parse_dynamic",
    "parse_kv",
    "parse_lease",
    "parse_lease_lookup",
    "parse_mount",
    "parse_token",
]


@dataclass(frozen=True)
class Token:
    """A Vault token from a login. ``ttl`` 0 means it never expires (root tokens)."""

    value: str = field(repr=False)
    accessor: str
    ttl: int
    renewable: bool
    policies: tuple[str, ...]
    obtained_at: float  # the session clock (monotonic) when Vault issued it

    def expires_at(self) -> float | None:
        return None if self.ttl <= 0 else self.obtained_at + self.ttl


@dataclass(frozen=True)
class Lease:
    """A lease as Vault returns it with a secret or a renewal. ``id`` is empty for unleased answers."""

    id: str
    duration: int
    renewable: bool


@dataclass(frozen=True)
class LeaseInfo:
    """``sys/leases/lookup``: how long a lease still lives (used to reuse a lease after a restart)."""

    id: str
    ttl: int
    renewable: bool
    issue_time: str | None
    expire_time: str | None
    last_renewal: str | None


@dataclass(frozen=True)
class KVSecret:
    """A KV read. ``version`` is None for kv-v1.

    ``raw`` is the answer's whole ``data`` object (kv-v2: ``{"data": ..., "metadata": ...}``) and
    ``metadata`` the kv-v2 metadata: what VSO's transformations expose as ``_raw`` and ``.Metadata``.
    """

    data: Mapping[str, Any] = field(repr=False)
    version: int | None = None
    created_time: str | None = None
    custom_metadata: Mapping[str, str] | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DynamicSecret:
    """A dynamic read (database credentials, PKI, ...): the data and its lease."""

    data: Mapping[str, Any] = field(repr=False)
    lease: Lease


@dataclass(frozen=True)
class MountInfo:
    path: str
    type: str
    kv_version: int | None  # 1 or 2 for kv mounts, None for other engines


def _require_dict(value: Any, what: str, context: RequestContext) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise VaultInvalid(f"{context.describe()}: answer has no {what} object", context=context)
    return value


def parse_token(body: Mapping[str, Any] | None, *, now: float, context: RequestContext) -> Token:
    """The ``auth`` block of a login or renew-self answer."""
    auth = _require_dict((body or {}).get("auth"), "auth", context)
    value = auth.get("client_token")
    if not isinstance(value, str) or not value:
        raise VaultInvalid(f"{context.describe()}: answer has no client token", context=context)
    return Token(
        value=value,
        accessor=str(auth.get("accessor") or ""),
        ttl=int(auth.get("lease_duration") or 0),
        renewable=bool(auth.get("renewable")),
        policies=tuple(str(p) for p in auth.get("policies") or ()),
        obtained_at=now,
    )


def parse_kv(body: Mapping[str, Any] | None, *, kv_version: int, context: RequestContext) -> KVSecret:
    """A kv-v1 answer (``data`` is the secret) or kv-v2 (``data.data`` and ``data.metadata``)."""
    outer = _require_dict((body or {}).get("data"), "data", context)
    if kv_version == 1:
        return KVSecret(data=dict(outer), raw=dict(outer))
    metadata = outer.get("metadata") if isinstance(outer.get("metadata"), dict) else {}
    assert isinstance(metadata, dict)
    inner = outer.get("data")
    if inner is None:
        # kv-v2 answers data=null for a version that was deleted or destroyed.
        state = "destroyed" if metadata.get("destroyed") else "deleted"
        raise VaultNotFound(f"{context.describe()}: this version was {state}", context=context, status=404)
    data = _require_dict(inner, "data.data", context)
    custom = metadata.get("custom_metadata")
    return KVSecret(
        data=data,
        version=int(metadata["version"]) if metadata.get("version") is not None else None,
        created_time=str(metadata.get("created_time") or "") or None,
        custom_metadata={str(k): str(v) for k, v in custom.items()} if isinstance(custom, dict) else None,
        raw=dict(outer),
        metadata=dict(metadata),
    )


def parse_lease(body: Mapping[str, Any] | None, *, context: RequestContext) -> Lease:
    """The top-level lease fields of a secret or ``sys/leases/renew`` answer."""
    if body is None:
        raise VaultInvalid(f"{context.describe()}: empty answer", context=context)
    return Lease(
        id=str(body.get("lease_id") or ""),
        duration=int(body.get("lease_duration") or 0),
        renewable=bool(body.get("renewable")),
    )


def parse_dynamic(body: Mapping[str, Any] | None, *, context: RequestContext) -> DynamicSecret:
    data = _require_dict((body or {}).get("data"), "data", context)
    return DynamicSecret(data=data, lease=parse_lease(body, context=context))


def parse_lease_lookup(body: Mapping[str, Any] | None, *, context: RequestContext) -> LeaseInfo:
    data = _require_dict((body or {}).get("data"), "data", context)

    def text(key: str) -> str | None:
        value = data.get(key)
        return str(value) if value else None

    return LeaseInfo(
        id=str(data.get("id") or ""),
        ttl=int(data.get("ttl") or 0),
        renewable=bool(data.get("renewable")),
        issue_time=text("issue_time"),
        expire_time=text("expire_time"),
        last_renewal=text("last_renewal"),
    )


def parse_mount(body: Mapping[str, Any] | None, *, context: RequestContext) -> MountInfo:
    """``sys/internal/ui/mounts/<path>``: the engine type, and the KV version from ``options.version``."""
    data = _require_dict((body or {}).get("data"), "data", context)
    engine = str(data.get("type") or "")
    if not engine:
        raise VaultNotFound(f"{context.describe()}: no secrets engine mounted there", context=context)
    kv_version: int | None = None
    if engine in ("kv", "generic"):
        options = data.get("options") if isinstance(data.get("options"), dict) else {}
        assert isinstance(options, dict)
        kv_version = 2 if str(options.get("version") or "1") == "2" else 1
    return MountInfo(path=str(data.get("path") or ""), type=engine, kv_version=kv_version)
