"""Prometheus metrics of the Vault layer.

One counter of Vault requests by operation (``login``, ``read_kv``, ``renew_lease``, ...) and
outcome (``ok``, ``denied``, ``not_found``, ``invalid``, ``unavailable``). Labels are fixed
vocabularies: never paths, mounts or anything a CR author controls (cardinality) and never
anything secret.
"""

from __future__ import annotations

from prometheus_client import Counter

__all__ = ["VAULT_REQUESTS", "record_request"]

VAULT_REQUESTS = Counter(
    "csi_vso_vault_requests",
    "Requests sent to Vault/OpenBao, by operation and outcome.",
    ["operation", "outcome"],
)


def record_request(operation: str, outcome: str) -> None:
    VAULT_REQUESTS.labels(operation=operation, outcome=outcome).inc()
