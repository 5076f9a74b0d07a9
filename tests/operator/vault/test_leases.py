"""Lease timing decisions (pure): when to renew, and whether to keep or replace credentials."""

from __future__ import annotations

import pytest

from csi_vso.operator.vault.leases import (
    Verdict,
    judge_renewal,
    renewal_delay,
    token_renewal_due,
)
from csi_vso.operator.vault.model import Lease


@pytest.mark.parametrize(
    ("duration", "percent", "jitter", "expected"),
    [
        (3600, 67, 0.0, 2412.0),  # the default: 67 %
        (3600, 67, 0.5, 2592.0),  # + 5 % jitter
        (3600, 67, 0.999, 2771.64),  # jitter stays below 10 %
        (100, 90, 0.999, 95.0),  # capped at 95 % of the lease
        (100, 150, 0.0, 90.0),  # percent clamped to 90
        (100, -5, 0.0, 0.0),  # ... and to 0
        (0, 67, 0.3, 0.0),  # no duration: act now
        (-1, 67, 0.3, 0.0),
    ],
)
def test_renewal_delay(duration: float, percent: int, jitter: float, expected: float) -> None:
    assert renewal_delay(duration, percent, jitter) == pytest.approx(expected)


@pytest.mark.parametrize("jitter", [-0.1, 1.0, 2.0])
def test_renewal_delay_rejects_jitter_outside_unit_interval(jitter: float) -> None:
    with pytest.raises(ValueError, match=r"jitter must be in \[0, 1\)"):
        renewal_delay(60, 67, jitter)


LEASE = Lease(id="db/creds/app/abc", duration=3600, renewable=True)


@pytest.mark.parametrize(
    ("lease", "requested", "granted", "verdict", "reason"),
    [
        (LEASE, 3600, Lease(LEASE.id, 3600, True), Verdict.KEEP, "renewed for 3600s"),
        (LEASE, 3600, Lease(LEASE.id, 3599, True), Verdict.KEEP, "renewed for 3599s"),  # rounding
        (
            LEASE,
            3600,
            Lease(LEASE.id, 1200, True),
            Verdict.NEW_CREDENTIALS,
            "truncated to 1200s of the 3600s",
        ),
        (LEASE, 3600, None, Verdict.NEW_CREDENTIALS, "the lease renewal failed"),
        (LEASE, 3600, Lease(LEASE.id, 3600, False), Verdict.NEW_CREDENTIALS, "no longer renewable"),
        (Lease(LEASE.id, 3600, False), 3600, None, Verdict.NEW_CREDENTIALS, "the lease is not renewable"),
        (Lease("", 3600, False), 3600, None, Verdict.NEW_CREDENTIALS, "has no lease to renew"),
    ],
)
def test_judge_renewal(
    lease: Lease, requested: int, granted: Lease | None, verdict: Verdict, reason: str
) -> None:
    outcome = judge_renewal(lease=lease, requested_increment=requested, granted=granted)
    assert outcome.verdict is verdict
    assert reason in outcome.reason


@pytest.mark.parametrize(
    ("now", "obtained", "ttl", "due"),
    [
        (100.0, 100.0, 30, False),
        (119.9, 100.0, 30, False),
        (120.0, 100.0, 30, True),  # two thirds
        (500.0, 100.0, 0, False),  # ttl 0: never expires, never renewed
    ],
)
def test_token_renewal_due(now: float, obtained: float, ttl: int, due: bool) -> None:
    assert token_renewal_due(now=now, obtained_at=obtained, ttl=ttl) is due
