"""Prometheus metrics of the operator (Vault requests are counted by the Vault layer itself).

Labels are fixed vocabularies (kind, outcome, reason): never names, namespaces or paths a CR
author controls (unbounded cardinality) and never anything secret.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import Counter, Histogram, make_wsgi_app

log = logging.getLogger(__name__)

RECONCILES = Counter("csi_vso_reconciles", "Reconciles run, by kind and outcome.", ["kind", "outcome"])
SYNCS = Counter("csi_vso_secret_syncs", "Vault reads that were synced into a destination Secret.", ["kind"])
SECRET_WRITES = Counter("csi_vso_secret_writes", "Destination Secrets created or updated.", ["kind"])
SKIPPED_WRITES = Counter(
    "csi_vso_secret_writes_skipped", "Syncs whose rendered data matched the Secret (no write).", ["kind"]
)
STATUS_WRITES = Counter("csi_vso_status_writes", "Status patches of custom resources, by kind.", ["kind"])
ERRORS = Counter("csi_vso_reconcile_errors", "Failed reconciles, by kind and reason.", ["kind", "reason"])
LEASE_RENEWALS = Counter("csi_vso_lease_renewals", "Dynamic lease renewals, by outcome.", ["outcome"])
LEASE_REVOCATIONS = Counter("csi_vso_lease_revocations", "Dynamic leases revoked, by cause.", ["cause"])
ROLLOUTS = Counter("csi_vso_rollout_restarts", "Workload restarts triggered, by workload kind.", ["kind"])
RECONCILE_SECONDS = Histogram("csi_vso_reconcile_seconds", "Time spent in one reconcile.", ["kind"])


class Health:
    """What /healthz and /readyz answer; set by the process as it starts, leads and stops."""

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.healthy = threading.Event()
        self.healthy.set()


def _app(health: Health) -> Callable[..., Iterable[bytes]]:
    metrics_app = make_wsgi_app()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path in ("/healthz", "/readyz"):
            ok = (health.healthy if path == "/healthz" else health.ready).is_set()
            start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"ok\n" if ok else b"not ready\n"]
        result: Iterable[bytes] = metrics_app(environ, start_response)
        return result

    return app


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # probes every few seconds: not news
        pass


def serve(address: str, health: Health) -> WSGIServer | None:
    """Serve /metrics, /healthz and /readyz on ``host:port`` ("" or "0": disabled)."""
    if not address or address == "0":
        return None
    host, _, port = address.rpartition(":")
    server = make_server(
        host or "127.0.0.1", int(port), _app(health), ThreadingWSGIServer, handler_class=_QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
    thread.start()
    log.info("serving metrics and health", extra={"address": f"{host}:{server.server_port}"})
    return server


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
