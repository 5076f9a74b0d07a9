"""The provider's readiness is a metric too, so an alert can fire when its Secret watches never sync."""

from __future__ import annotations

import urllib.request

from csi_vso.provider.metrics import MetricsServer, ProviderMetrics


def _scrape(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_ready_gauge_follows_what_readyz_answers() -> None:
    state = {"ready": False}
    metrics = ProviderMetrics()
    server = MetricsServer("127.0.0.1", 0, metrics, lambda: state["ready"])
    server.start()
    try:
        assert _scrape(server.port, "/readyz")[0] == 503
        assert "csi_vso_provider_ready 0.0" in _scrape(server.port, "/metrics")[1]
        state["ready"] = True
        assert _scrape(server.port, "/readyz")[0] == 200
        assert "csi_vso_provider_ready 1.0" in _scrape(server.port, "/metrics")[1]
    finally:
        server.stop()
