"""Prometheus metrics of VaultPKISecrets: issuance counts and certificate expiry, bounded labels.

Per-certificate gauges would need the resource's name as a label (unbounded cardinality, and
names a tenant chooses), so expiry is exported as aggregates computed at scrape time from what
the operator holds: how many certificates, the soonest expiration, how many are past their
renewal time (renewal failing: alert on ``> 0`` for a few minutes) and how many have expired.
Labels elsewhere are fixed vocabularies (cause, reason, outcome).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from prometheus_client import REGISTRY, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

ISSUED = Counter(
    "csi_vso_pki_certificates_issued",
    "Certificates issued, by cause (initial, renewal, spec_changed, drift).",
    ["cause"],
)
ISSUE_ERRORS = Counter(
    "csi_vso_pki_issue_errors",
    "Certificate requests that failed, by reason (rejected, ttl_capped, denied, unavailable, ...).",
    ["reason"],
)
REVOKED = Counter(
    "csi_vso_pki_revocations", "Certificate revocations on delete, by outcome (revoked, failed).", ["outcome"]
)


class CertificateExpiries(Collector):
    """Expiry and renewal time of every certificate the operator holds, keyed by resource uid."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._certs: dict[str, tuple[float, float]] = {}  # uid -> (expiration, renew_at), Unix s

    def set(self, uid: str, expiration: float, renew_at: float) -> None:
        with self._lock:
            self._certs[uid] = (expiration, renew_at)

    def forget(self, uid: str) -> None:
        with self._lock:
            self._certs.pop(uid, None)

    def collect(self, now: float | None = None) -> Iterator[GaugeMetricFamily]:
        now = time.time() if now is None else now
        with self._lock:
            certs = list(self._certs.values())
        yield GaugeMetricFamily(
            "csi_vso_pki_certificates", "Certificates held in destination Secrets.", value=len(certs)
        )
        soonest = min((exp for exp, _ in certs), default=0.0)
        yield GaugeMetricFamily(
            "csi_vso_pki_certificate_expiry_soonest_timestamp_seconds",
            "Earliest expiration (Unix time) among the certificates held; 0 when none.",
            value=soonest,
        )
        yield GaugeMetricFamily(
            "csi_vso_pki_certificates_renewal_overdue",
            "Certificates past their renewal time and not yet expired (their renewal is failing).",
            value=sum(1 for exp, due in certs if due <= now < exp),
        )
        yield GaugeMetricFamily(
            "csi_vso_pki_certificates_expired",
            "Certificates held that have expired (renewal failed until the end).",
            value=sum(1 for exp, _ in certs if exp <= now),
        )


EXPIRIES = CertificateExpiries()
REGISTRY.register(EXPIRIES)
