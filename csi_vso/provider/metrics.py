"""The provider's Prometheus metrics and its small HTTP endpoint (/metrics, /healthz, /readyz).

Each :class:`ProviderMetrics` owns its registry, so several providers can live in one
test process and the rotation (issue 4) registers its metrics on the same registry.
Label values are status code names and write modes only: nothing pod- or
Secret-controlled ever becomes a label, so a metric can never carry a secret.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

# Mount is served from memory: most calls land in the sub-10 ms buckets.
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ProviderMetrics:
    """Mounts by result code, Mount latency, cached Secrets, bytes served."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.mounts = Counter(
            "csi_vso_provider_mounts",
            "Mount calls by gRPC result code and write mode",
            ["code", "mode"],
            registry=self.registry,
        )
        self.mount_seconds = Histogram(
            "csi_vso_provider_mount_duration_seconds",
            "Time to answer a Mount, from request to response",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.cached_secrets = Gauge(
            "csi_vso_provider_cached_secrets",
            "Protected Secrets held in the watch cache",
            registry=self.registry,
        )
        self.secret_watches = Gauge(
            "csi_vso_provider_secret_watches",
            "Secret watches open against the API server (pod-token mode: one per Secret mounted "
            "on this node; cluster mode: 1)",
            registry=self.registry,
        )
        self.ready = Gauge(
            "csi_vso_provider_ready",
            "1 once the protected-Secret watches have synced and Mounts are served (what /readyz "
            "answers), else 0: alert when it stays 0",
            registry=self.registry,
        )
        self.bytes_served = Counter(
            "csi_vso_provider_served_bytes",
            "File bytes served by successful Mounts (returned or written)",
            ["mode"],
            registry=self.registry,
        )

    def observe_mount(self, *, code: str, mode: str, seconds: float, bytes_served: int = 0) -> None:
        self.mounts.labels(code=code, mode=mode).inc()
        self.mount_seconds.observe(seconds)
        if bytes_served:
            self.bytes_served.labels(mode=mode).inc(bytes_served)

    def track_cached_secrets(self, count: Callable[[], int]) -> None:
        self.cached_secrets.set_function(lambda: float(count()))

    def track_secret_watches(self, count: Callable[[], int]) -> None:
        self.secret_watches.set_function(lambda: float(count()))

    def track_ready(self, ready: Callable[[], bool]) -> None:
        self.ready.set_function(lambda: 1.0 if ready() else 0.0)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class MetricsServer:
    """HTTP on ``host:port``: /metrics (Prometheus text), /healthz (alive), /readyz (cache synced)."""

    def __init__(self, host: str, port: int, metrics: ProviderMetrics, ready: Callable[[], bool]) -> None:
        metrics.track_ready(ready)
        handler = _handler(metrics, ready)
        self._httpd = ThreadingHTTPServer((host, port), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="metrics-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():  # shutdown() waits for serve_forever, which may never have run
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.server_close()


def _handler(metrics: ProviderMetrics, ready: Callable[[], bool]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._send(200, metrics.exposition(), CONTENT_TYPE_LATEST)
            elif self.path == "/healthz":
                self._send(200, b"ok\n")
            elif self.path == "/readyz":
                ok = ready()
                self._send(200 if ok else 503, b"ok\n" if ok else b"protected Secret cache not synced\n")
            else:
                self._send(404, b"not found\n")

        def _send(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Probes every few seconds would flood the log; stay quiet."""

    return Handler
