"""Status conditions (``Ready``, ``SecretSynced``, ``LeaseRenewal``), metav1.Condition-shaped.

Pure. :func:`set_condition` keeps ``lastTransitionTime`` when the status did not change, so
rewriting the same condition is a no-op and the controller can skip the status patch entirely
(compare before and after); a status write on every resync would be API load for nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal

from csi_vso.operator.api import ConditionDict

READY = "Ready"
SECRET_SYNCED = "SecretSynced"  # noqa: S105 (a condition type)
LEASE_RENEWAL = "LeaseRenewal"

Status = Literal["True", "False", "Unknown"]


class ReasonedError(Exception):
    """A failure that names its own condition reason (``VaultAuthNotFound``, ``SecretNotOwned``,
    ``TransformationNotFound``, ...); the controller reports it as is and retries with backoff.
    Messages name objects and problems, never a secret value."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


def now_rfc3339(now: datetime | None = None) -> str:
    """Second-precision RFC 3339 UTC, the format metav1.Time serialises to."""
    return (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(
    conditions: Sequence[ConditionDict],
    *,
    type: str,
    status: Status,
    reason: str,
    message: str,
    generation: int,
    now: datetime | None = None,
) -> list[ConditionDict]:
    """A new list with condition ``type`` set; other conditions are kept in order."""
    result: list[ConditionDict] = []
    replaced = False
    for existing in conditions:
        if existing.get("type") != type:
            result.append(existing)
            continue
        replaced = True
        transition = existing.get("lastTransitionTime") if existing.get("status") == status else None
        result.append(_make(type, status, reason, message, generation, transition or now_rfc3339(now)))
    if not replaced:
        result.append(_make(type, status, reason, message, generation, now_rfc3339(now)))
    return result


def synced_conditions(
    conditions: Sequence[ConditionDict], *, message: str, generation: int
) -> list[ConditionDict]:
    """``Ready`` and ``SecretSynced`` both True with ``message``: the outcome of every good sync."""
    conditions = set_condition(
        conditions, type=READY, status="True", reason="Synced", message=message, generation=generation
    )
    return set_condition(
        conditions,
        type=SECRET_SYNCED,
        status="True",
        reason="SecretSynced",
        message=message,
        generation=generation,
    )


def _make(type: str, status: Status, reason: str, message: str, generation: int, when: str) -> ConditionDict:
    return {
        "type": type,
        "status": status,
        "reason": reason,
        "message": message[:1024],
        "observedGeneration": generation,
        "lastTransitionTime": when,
    }


def get_condition(conditions: Sequence[ConditionDict] | None, type: str) -> ConditionDict | None:
    for condition in conditions or ():
        if condition.get("type") == type:
            return condition
    return None
