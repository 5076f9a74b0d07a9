"""Lease and token timing decisions, as pure functions (no clock reads, no randomness inside).

The operator's dynamic-secret controller and the session's token upkeep both ask two questions:
*when* to renew, and, after trying, whether the credentials can be kept or new ones are needed.

- When: at ``renewal_percent`` of the lease duration plus up to 10 % jitter (the caller passes a
  number in [0, 1) — ``random.random()`` in production, fixed values in tests), so that many
  secrets issued together do not renew in one burst. The result is capped below the lease's end
  so a renewal always has time to happen.
- Keep or replace: a renewal that returned less time than asked for was *truncated* by the
  lease's max TTL; renewing again will only shrink it, so new credentials are fetched now, while
  the old ones still work. A failed renewal or a lease that is not renewable also means new
  credentials (VSO behaves the same way).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from csi_vso.operator.vault.model import Lease

__all__ = [
    "DEFAULT_RENEWAL_PERCENT",
    "MAX_RENEWAL_PERCENT",
    "RenewalVerdict",
    "Verdict",
    "judge_renewal",
    "renewal_delay",
    "token_renewal_at",
    "token_renewal_due",
]

DEFAULT_RENEWAL_PERCENT = 67
MAX_RENEWAL_PERCENT = 90
JITTER_PERCENT = 10
# Leave at least this share of the lease for the renewal itself to happen.
_LATEST_FRACTION = 0.95
# Vault rounds to whole seconds; granted == requested - 1 is not a truncation.
_TRUNCATION_SLACK_SECONDS = 1


def renewal_delay(
    duration: float, renewal_percent: int = DEFAULT_RENEWAL_PERCENT, jitter: float = 0.0
) -> float:
    """Seconds after issue (or last renewal) at which to renew a lease lasting ``duration`` seconds.

    ``renewal_percent`` is clamped to [0, 90]; ``jitter`` in [0, 1) adds up to 10 % of the duration.
    Never later than 95 % of the duration. A non-positive duration gives 0 (act now).
    """
    if duration <= 0:
        return 0.0
    if not 0.0 <= jitter < 1.0:
        raise ValueError(f"jitter must be in [0, 1), got {jitter}")
    percent = min(max(renewal_percent, 0), MAX_RENEWAL_PERCENT) + JITTER_PERCENT * jitter
    return min(duration * percent / 100.0, duration * _LATEST_FRACTION)


class Verdict(Enum):
    KEEP = "keep"  # renewed: keep the credentials, schedule the next renewal
    NEW_CREDENTIALS = "new_credentials"  # fetch new credentials (then retire the old lease)


@dataclass(frozen=True)
class RenewalVerdict:
    verdict: Verdict
    reason: str  # words for a condition message; no secret material


def judge_renewal(*, lease: Lease, requested_increment: int, granted: Lease | None) -> RenewalVerdict:
    """Decide after a renewal attempt (``granted`` None: the renewal failed or was not tried).

    ``lease`` is the lease as known before renewing; ``requested_increment`` what was asked for.
    """
    if not lease.id:
        return RenewalVerdict(Verdict.NEW_CREDENTIALS, "the secret has no lease to renew")
    if not lease.renewable:
        return RenewalVerdict(Verdict.NEW_CREDENTIALS, "the lease is not renewable")
    if granted is None:
        return RenewalVerdict(Verdict.NEW_CREDENTIALS, "the lease renewal failed")
    if not granted.renewable:
        return RenewalVerdict(Verdict.NEW_CREDENTIALS, "the renewed lease is no longer renewable")
    if granted.duration + _TRUNCATION_SLACK_SECONDS < requested_increment:
        return RenewalVerdict(
            Verdict.NEW_CREDENTIALS,
            f"the renewal was truncated to {granted.duration}s of the {requested_increment}s asked for "
            "(max TTL reached)",
        )
    return RenewalVerdict(Verdict.KEEP, f"renewed for {granted.duration}s")


def token_renewal_at(*, obtained_at: float, ttl: int) -> float | None:
    """When a token should be renewed: two thirds into its TTL (None: ttl 0, it never expires)."""
    if ttl <= 0:
        return None
    return obtained_at + ttl * 2 / 3


def token_renewal_due(*, now: float, obtained_at: float, ttl: int) -> bool:
    """Whether a token should be renewed now (see :func:`token_renewal_at`)."""
    due = token_renewal_at(obtained_at=obtained_at, ttl=ttl)
    return due is not None and now >= due
