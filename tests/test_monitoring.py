"""deploy/monitoring (Grafana dashboard, PrometheusRule) only uses metrics and labels that exist.

A dashboard panel or an alert on a metric nobody exports is silent forever: this reads every
PromQL expression in both files and checks each ``csi_vso_*`` series name and each label it
filters or groups by against the processes' own Prometheus registries (the provider's metric
objects built on a fresh registry, the operator's module-level metrics after importing every
operator module). Labels Prometheus adds to every scraped series (namespace, pod, ...) are
allowed too.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY, CollectorRegistry

import csi_vso.operator
from csi_vso.provider.metrics import ProviderMetrics
from csi_vso.provider.rotation import RotationMetrics

ROOT = Path(__file__).resolve().parents[1]
MONITORING = ROOT / "deploy" / "monitoring"
ALERTS = ROOT / "deploy" / "charts" / "csi-vso" / "files" / "alerts.yaml"
TARGET_LABELS = {"namespace", "pod", "instance", "job", "container", "service", "endpoint", "node"}
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created")}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless"}


def _series(registry: CollectorRegistry) -> dict[str, set[str]]:
    """Every series name a registry can expose -> the label names it carries."""
    found: dict[str, set[str]] = {}
    for collector in list(registry._collector_to_names):
        for family in collector.collect():
            labels = set(getattr(collector, "_labelnames", ()))
            labels |= {name for sample in family.samples for name in sample.labels}
            if family.type == "histogram":
                found[f"{family.name}_bucket"] = labels | {"le"}
            for suffix in SUFFIXES.get(family.type, ()):
                found.setdefault(f"{family.name}{suffix}", labels)
            found.setdefault(family.name, labels)
    return found


@pytest.fixture(scope="module")
def exported() -> dict[str, set[str]]:
    for module in pkgutil.walk_packages(csi_vso.operator.__path__, "csi_vso.operator."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    provider = CollectorRegistry()
    ProviderMetrics(provider)
    RotationMetrics(provider)
    series = _series(REGISTRY)
    series.update(_series(provider))
    return {name: labels for name, labels in series.items() if name.startswith("csi_vso_")}


def _dashboard_expressions() -> list[str]:
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    return [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]


def _alert_expressions() -> list[str]:
    return [rule["expr"] for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def _used(expression: str) -> tuple[set[str], set[str]]:
    """(csi_vso series names, label names) an expression refers to (matchers and by/without)."""
    names = set(re.findall(r"\bcsi_vso_[a-z0-9_]+", expression))
    labels = set()
    for selector in re.findall(r"\{([^}]*)\}", expression):
        labels |= set(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", selector))
    for grouping in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expression):
        labels |= {g.strip() for g in grouping.split(",") if g.strip()}
    return names, labels - PROMQL_WORDS


@pytest.mark.parametrize(
    "expression", [*_dashboard_expressions(), *_alert_expressions()], ids=lambda e: e[:60]
)
def test_every_metric_and_label_in_the_dashboard_and_alerts_is_exported(
    exported: dict[str, set[str]], expression: str
) -> None:
    names, labels = _used(expression)
    assert names, f"an expression on no csi-vso metric: {expression}"
    for name in names:
        assert name in exported, f"{name} is not exported by the operator or the provider"
        unknown = labels - exported[name] - TARGET_LABELS
        # A label may belong to another series of the same expression (a ratio of two metrics).
        unknown -= set().union(*(exported[n] for n in names if n in exported))
        assert not unknown, f"{expression}: labels {sorted(unknown)} are on no series it uses"


def test_the_dashboard_covers_what_the_issue_asks_for() -> None:
    text = " ".join(_dashboard_expressions())
    for metric in (
        "csi_vso_rotation_propagation_seconds_bucket",
        "csi_vso_provider_mounts_total",
        "csi_vso_reconcile_errors_total",
        "csi_vso_lease_renewals_total",
        "csi_vso_vault_requests_total",
    ):
        assert metric in text


def test_the_rendered_prometheusrule_is_the_alerts_file() -> None:
    rendered: dict[str, Any] = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())
    assert rendered["kind"] == "PrometheusRule"
    assert rendered["spec"] == yaml.safe_load(ALERTS.read_text())
    alerts = {r["alert"] for g in rendered["spec"]["groups"] for r in g["rules"]}
    assert {
        "CsiVsoRotationErrors",
        "CsiVsoSecretCacheNotSynced",
        "CsiVsoLeaseRenewalFailures",
        "CsiVsoVaultUnreachable",
        "CsiVsoCertificateNearExpiry",
    } <= alerts
