"""Dynamic-secret lease state: what survives an operator restart, and the pure renewal plan.

Where the state lives, and why there:

- The lease (id, TTL, renewable, issued-at, renewed-at) and the MAC of the credentials are in the
  VaultDynamicSecret's ``status`` (``status.secretLease``, ``status.secretMAC``), like VSO. A
  lease id is not a credential: it cannot read the secret, and renewing or revoking it needs a
  Vault token whose policy allows ``sys/leases/*`` — the operator's. Who can read the CR's
  status learns only that a lease exists and when it ends.
- The credentials themselves are only in the destination Secret (a protected Secret: readable by
  whoever has RBAC on Secrets in that namespace, served to pods only under its access policy).
  Nothing else stores them — no operator-side file, no status field.
- Old leases kept alive for ``revocationDuration`` are listed in ``status.pendingRevocations``
  (ids and due times), so a restart still revokes them on time.
- The accessor of the Vault token that issued the lease (``status.secretLease.tokenAccessor``).
  Vault revokes a lease when its issuing token expires, and only the process holding a token
  keeps renewing it: after a restart (or a re-login when the token hit its max TTL) the lease
  is doomed however often it is renewed. The accessor lets the new token look up when the old
  one expires (``auth/token/lookup-accessor``), and the credentials are replaced halfway to
  that moment instead of failing at it. An accessor cannot read secrets or act as the token.

On restart the operator reads these back (:meth:`LeaseState.from_storage`); if the destination
Secret still carries the data whose MAC is recorded and the lease has not ended, it keeps
renewing that lease (after one ``sys/leases/lookup`` to confirm Vault still knows it) instead of
issuing new credentials. A crash between writing new credentials and recording their lease
shows up as a MAC mismatch and leads to one more rotation; the unrecorded lease then simply
expires at its TTL.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from csi_vso.operator import api
from csi_vso.operator.static import parse_time
from csi_vso.operator.vault import leases as vault_leases
from csi_vso.operator.vault.model import Lease

REFRESH_LOW = 0.8
STATIC_ROTATION_SLACK = 1.0


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class PendingRevocation:
    lease_id: str
    revoke_at: datetime


@dataclass(frozen=True)
class LeaseState:
    lease_id: str = ""
    duration: int = 0
    renewable: bool = False
    request_id: str = ""
    issued_at: datetime | None = None
    renewed_at: datetime | None = None
    secret_mac: str | None = None
    last_generation: int | None = None
    last_sync: datetime | None = None
    pending: tuple[PendingRevocation, ...] = ()
    token_accessor: str = ""  # the Vault token that issued the lease (the lease dies with it)
    transformation_digest: str = ""  # of the transformation the Secret was rendered with

    @classmethod
    def from_storage(cls, status: Mapping[str, Any] | None) -> LeaseState:
        status = status or {}
        lease = status.get("secretLease") or {}
        pending = []
        for item in status.get("pendingRevocations") or []:
            when = parse_time(item.get("revokeAt")) if isinstance(item, dict) else None
            if when is not None and item.get("id"):
                pending.append(PendingRevocation(str(item["id"]), when))
        generation = status.get("lastGeneration")
        return cls(
            lease_id=str(lease.get("id") or ""),
            duration=int(lease.get("duration") or 0),
            renewable=bool(lease.get("renewable")),
            request_id=str(lease.get("requestID") or ""),
            issued_at=parse_time(lease.get("issuedAt")),
            renewed_at=parse_time(lease.get("renewedAt")),
            secret_mac=status.get("secretMAC") or None,
            last_generation=generation if isinstance(generation, int) else None,
            last_sync=parse_time(status.get("lastSyncTime")),
            pending=tuple(pending),
            token_accessor=str(lease.get("tokenAccessor") or ""),
            transformation_digest=str(status.get("transformationDigest") or ""),
        )

    def for_storage(self) -> dict[str, Any]:
        """The status fields this state owns (merged into the CR's status by the caller)."""
        lease: api.LeaseDict = {
            "id": self.lease_id,
            "duration": self.duration,
            "renewable": self.renewable,
            "requestID": self.request_id,
        }
        if self.issued_at is not None:
            lease["issuedAt"] = _iso(self.issued_at) or ""
        if self.renewed_at is not None:
            lease["renewedAt"] = _iso(self.renewed_at) or ""
        if self.token_accessor:
            lease["tokenAccessor"] = self.token_accessor
        return {
            "secretLease": lease,
            "secretMAC": self.secret_mac,
            "lastGeneration": self.last_generation,
            "lastSyncTime": _iso(self.last_sync),
            "lastRenewalTime": int(self.renewed_at.timestamp()) if self.renewed_at else None,
            "pendingRevocations": [{"id": p.lease_id, "revokeAt": _iso(p.revoke_at)} for p in self.pending]
            or None,
            "transformationDigest": self.transformation_digest or None,
        }

    def expires_at(self) -> datetime | None:
        if not self.lease_id or self.duration <= 0 or self.renewed_at is None:
            return None
        return self.renewed_at + timedelta(seconds=self.duration)

    def as_lease(self) -> Lease:
        return Lease(id=self.lease_id, duration=self.duration, renewable=self.renewable)

    def renewed(self, granted: Lease, now: datetime) -> LeaseState:
        return replace(
            self, duration=granted.duration, renewable=granted.renewable, renewed_at=now, last_sync=now
        )

    def issued(
        self,
        lease: Lease,
        request_id: str,
        mac: str,
        generation: int,
        now: datetime,
        grace: float | None,
        token_accessor: str = "",
        transformation_digest: str = "",
    ) -> LeaseState:
        """New credentials; the previous lease is revoked after ``grace`` seconds (None: left to expire)."""
        pending = list(self.pending)
        if self.lease_id and self.lease_id != lease.id and grace is not None:
            pending.append(PendingRevocation(self.lease_id, now + timedelta(seconds=grace)))
        return LeaseState(
            lease_id=lease.id,
            duration=lease.duration,
            renewable=lease.renewable,
            request_id=request_id,
            issued_at=now,
            renewed_at=now,
            secret_mac=mac,
            last_generation=generation,
            last_sync=now,
            pending=tuple(pending),
            token_accessor=token_accessor,
            transformation_digest=transformation_digest,
        )

    def without_pending(self, lease_ids: set[str]) -> LeaseState:
        return replace(self, pending=tuple(p for p in self.pending if p.lease_id not in lease_ids))


class Action(Enum):
    ISSUE = "issue"
    RENEW = "renew"
    WAIT = "wait"


@dataclass(frozen=True)
class DynamicPlan:
    action: Action
    reason: str
    delay: float | None = None  # WAIT: seconds until the next look (None: nothing scheduled)


def lease_jitter(lease_id: str) -> float:
    """A stable number in [0, 1) per lease: the renewal time does not move between reconciles."""
    return int.from_bytes(hashlib.sha256(lease_id.encode()).digest()[:4], "big") / 2**32


def renew_at(state: LeaseState, renewal_percent: int) -> datetime | None:
    if not state.lease_id or state.renewed_at is None or state.duration <= 0:
        return None
    delay = vault_leases.renewal_delay(state.duration, renewal_percent, lease_jitter(state.lease_id))
    return state.renewed_at + timedelta(seconds=delay)


def plan_dynamic(
    *, spec: api.DynamicSecretSpec, state: LeaseState, generation: int, drift: str | None, now: datetime
) -> DynamicPlan:
    """What to do now for a VaultDynamicSecret whose stored state is ``state``."""
    if state.last_generation is None or state.secret_mac is None:
        return DynamicPlan(Action.ISSUE, "no credentials issued yet")
    if state.last_generation != generation:
        return DynamicPlan(Action.ISSUE, "the spec changed")
    if drift is not None:
        return DynamicPlan(Action.ISSUE, drift)
    expires = state.expires_at()
    if expires is not None:
        if now >= expires:
            return DynamicPlan(Action.ISSUE, "the lease expired")
        due = renew_at(state, spec.renewal_percent)
        assert due is not None
        if now >= due:
            if not state.renewable:
                return DynamicPlan(Action.ISSUE, "the lease is not renewable")
            return DynamicPlan(Action.RENEW, "the renewal is due")
        return DynamicPlan(Action.WAIT, "lease valid", _min_delay(state, (due - now).total_seconds(), now))
    static_due = static_rotation_at(spec, state)
    if static_due is not None:
        if now >= static_due:
            return DynamicPlan(Action.ISSUE, "Vault rotated the static credentials")
        return DynamicPlan(
            Action.WAIT,
            "static credentials valid",
            _min_delay(state, (static_due - now).total_seconds(), now),
        )
    # No lease TTL (static credentials): refresh on refreshAfter, if set.
    if spec.refresh_after is not None and state.last_sync is not None:
        due = state.last_sync + timedelta(seconds=spec.refresh_after * REFRESH_LOW)
        if now >= due:
            return DynamicPlan(Action.ISSUE, "the refresh is due")
        return DynamicPlan(Action.WAIT, "not due", _min_delay(state, (due - now).total_seconds(), now))
    return DynamicPlan(Action.WAIT, "no lease to renew", _min_delay(state, None, now))


def static_rotation_at(spec: api.DynamicSecretSpec, state: LeaseState) -> datetime | None:
    """With ``allowStaticCreds``: when Vault rotates the credentials next (their ``ttl`` when read,
    kept as the lease-less state's duration), plus a second so the read sees the new ones."""
    if not spec.allow_static_creds or state.lease_id or state.duration <= 0 or state.renewed_at is None:
        return None
    return state.renewed_at + timedelta(seconds=state.duration + STATIC_ROTATION_SLACK)


def _min_delay(state: LeaseState, delay: float | None, now: datetime) -> float | None:
    """Wake up for the earliest of ``delay`` and the next pending revocation."""
    for pending in state.pending:
        until = max(0.0, (pending.revoke_at - now).total_seconds())
        delay = until if delay is None else min(delay, until)
    return delay


def due_revocations(state: LeaseState, now: datetime) -> list[str]:
    return [p.lease_id for p in state.pending if p.revoke_at <= now]
