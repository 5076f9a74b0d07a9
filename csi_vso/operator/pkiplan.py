"""VaultPKISecret certificate state and its renewal schedule. Pure.

What survives a restart, and where: the serial number, expiration (Unix seconds) and issue time
(``lastRotation``) of the current certificate and the keyed MAC of the data written are in the
VaultPKISecret's ``status`` (VSO's field names); the certificate and its key only in the
destination Secret. After an operator restart or a leader failover the new process reads them
back: while the Secret still holds data with that MAC and the renewal time has not come, it
issues nothing (a restart must not mint certificates, nor change the files under running pods).

When to renew (VSO's rule, plus jitter): at ``expiration - expiryOffset``, moved earlier by a
stable fraction (up to :data:`JITTER_FRACTION`) of the time from issue to that point. The
fraction comes from a hash of the serial number, so the renewal time is the same in every
process and every reconcile, and a thousand certificates issued in the same second (a fresh
install, a bulk apply) renew spread over a fifth of their renewal interval instead of in the
same second. Two floors keep a bad spec from becoming an issue loop: never sooner than
:data:`MIN_LIFETIME_FRACTION` of the certificate's lifetime nor :data:`MIN_RENEW_AFTER` seconds
after issue (an ``expiryOffset`` longer than the lifetime would otherwise renew at once, forever).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

JITTER_FRACTION = 0.2
MIN_LIFETIME_FRACTION = 0.1
MIN_RENEW_AFTER = 1.0


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


@dataclass(frozen=True)
class CertState:
    serial_number: str = ""
    expiration: int = 0  # Unix seconds
    last_rotation: int = 0  # Unix seconds the certificate was issued (VSO's lastRotation)
    secret_mac: str | None = None
    last_generation: int | None = None
    # Digest of the destination's transformation when the certificate was written (None: none).
    transformation_digest: str | None = None

    @classmethod
    def from_storage(cls, status: Mapping[str, Any] | None) -> CertState:
        status = status or {}
        generation = status.get("lastGeneration")
        mac = status.get("secretMAC")
        digest = status.get("transformationDigest")
        return cls(
            serial_number=str(status.get("serialNumber") or ""),
            expiration=_int(status.get("expiration")),
            last_rotation=_int(status.get("lastRotation")),
            secret_mac=mac if isinstance(mac, str) and mac else None,
            last_generation=generation
            if isinstance(generation, int) and not isinstance(generation, bool)
            else None,
            transformation_digest=digest if isinstance(digest, str) and digest else None,
        )

    def for_storage(self) -> dict[str, Any]:
        return {
            "serialNumber": self.serial_number or None,
            "expiration": self.expiration or None,
            "lastRotation": self.last_rotation or None,
            "secretMAC": self.secret_mac,
            "lastGeneration": self.last_generation,
            "transformationDigest": self.transformation_digest,
        }

    @property
    def issued(self) -> bool:
        return bool(self.serial_number) and self.secret_mac is not None and self.last_generation is not None

    def expires_at(self) -> datetime:
        return datetime.fromtimestamp(self.expiration, UTC)


class Cause(Enum):
    """Why a certificate is issued: a fixed vocabulary (metrics label, event text)."""

    INITIAL = "initial"
    SPEC_CHANGED = "spec_changed"
    DRIFT = "drift"
    RENEWAL = "renewal"


@dataclass(frozen=True)
class PKIPlan:
    cause: Cause | None  # None: nothing to issue; look again after ``delay``
    reason: str
    delay: float | None = None


def serial_jitter(serial_number: str) -> float:
    """A stable number in [0, 1) per certificate (see the module docstring)."""
    return int.from_bytes(hashlib.sha256(serial_number.encode()).digest()[:4], "big") / 2**32


def renew_at(state: CertState, expiry_offset: float) -> datetime:
    """When to issue the next certificate (see the module docstring for the rule and floors)."""
    target = state.expiration - expiry_offset
    if state.last_rotation > 0:
        lead = target - state.last_rotation
        if lead > 0:
            target -= JITTER_FRACTION * lead * serial_jitter(state.serial_number)
        lifetime = max(0, state.expiration - state.last_rotation)
        floor = state.last_rotation + max(MIN_RENEW_AFTER, MIN_LIFETIME_FRACTION * lifetime)
        target = max(target, min(floor, state.expiration))
    return datetime.fromtimestamp(target, UTC)


def offset_too_long(state: CertState, expiry_offset: float) -> bool:
    """``expiryOffset`` is not shorter than the certificate's lifetime (the floor applies)."""
    return state.last_rotation > 0 and expiry_offset >= state.expiration - state.last_rotation


def plan_pki(
    *,
    state: CertState,
    expiry_offset: float,
    generation: int,
    drift: str | None,
    now: datetime,
    transformation_digest: str | None = None,
) -> PKIPlan:
    """Issue now (and why), or wait (and how long).

    A changed transformation (a SecretTransformation edited, or the CR's labels/annotations its
    templates read) re-issues like a spec change: the certificate response is not kept anywhere
    but in the rendered Secret, so a new render needs a new certificate.
    """
    if not state.issued:
        return PKIPlan(Cause.INITIAL, "no certificate issued yet")
    if state.last_generation != generation:
        return PKIPlan(Cause.SPEC_CHANGED, "the spec changed")
    if state.transformation_digest != transformation_digest:
        return PKIPlan(Cause.SPEC_CHANGED, "the transformation changed")
    if drift is not None:
        return PKIPlan(Cause.DRIFT, drift)
    due = renew_at(state, expiry_offset)
    if now >= due:
        return PKIPlan(Cause.RENEWAL, "the renewal is due")
    return PKIPlan(None, "certificate valid", max(0.0, (due - now).total_seconds()))


def describe_schedule(state: CertState, expiry_offset: float) -> str:
    """Words for the condition message: expiry and renewal time (no key material)."""
    due = renew_at(state, expiry_offset)
    text = (
        f"certificate {state.serial_number} valid until {_stamp(state.expires_at())}, "
        f"renewal at {_stamp(due)}"
    )
    if offset_too_long(state, expiry_offset):
        lifetime = timedelta(seconds=state.expiration - state.last_rotation)
        text += (
            f" (expiryOffset is not shorter than the certificate's lifetime {lifetime}; "
            "renewing early instead)"
        )
    return text


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
