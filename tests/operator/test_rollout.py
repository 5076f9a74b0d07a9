"""Rollouts: which workloads consume a Secret (table), and restarts only when data really changed."""

from __future__ import annotations

import json
from typing import Any

import pytest
from prometheus_client import REGISTRY

from csi_vso.devkit.openbao import OpenBaoDevServer
from csi_vso.operator.rollout import RESTARTED_AT_ANNOTATION, consumes_secret, restart_patch
from tests.operator.conftest import Cluster, OperatorFactory, VaultAuthSetup, static_secret, wait_for
from tests.operator.test_dynamic import database, db_role, dynamic_secret  # noqa: F401 (fixture)

ENV = {
    "containers": [
        {"name": "a", "env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}
    ]
}
ENV_FROM = {"containers": [{"name": "a", "envFrom": [{"secretRef": {"name": "s"}}]}]}
INIT_ENV_FROM = {
    "initContainers": [{"name": "i", "envFrom": [{"secretRef": {"name": "s"}}]}],
    "containers": [],
}
VOLUME = {"containers": [{"name": "a"}], "volumes": [{"name": "v", "secret": {"secretName": "s"}}]}
PROJECTED = {"volumes": [{"name": "v", "projected": {"sources": [{"secret": {"name": "s"}}]}}]}
CSI = {
    "volumes": [
        {
            "name": "v",
            "csi": {"driver": "secrets-store.csi.k8s.io", "volumeAttributes": {"secretProviderClass": "s"}},
        }
    ]
}
OTHER = {"containers": [{"name": "a", "envFrom": [{"secretRef": {"name": "other"}}]}]}
CONFIGMAP = {"containers": [{"name": "a", "envFrom": [{"configMapRef": {"name": "s"}}]}]}


@pytest.mark.parametrize(
    ("pod_spec", "consumes"),
    [
        (ENV, True),
        (ENV_FROM, True),
        (INIT_ENV_FROM, True),
        (VOLUME, True),
        (PROJECTED, True),
        (CSI, False),
        (OTHER, False),
        (CONFIGMAP, False),
        ({}, False),
    ],
)
def test_consumes_secret(pod_spec: dict[str, Any], consumes: bool) -> None:
    assert consumes_secret(pod_spec, "s") is consumes


def test_restart_patch_has_sub_second_precision() -> None:
    from datetime import UTC, datetime

    stamp = restart_patch(datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC))
    assert (
        stamp["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT_ANNOTATION]
        == "2026-01-02T03:04:05.678901Z"
    )


def workload(kind: str, name: str, pod_spec: dict[str, Any]) -> dict[str, Any]:
    labels = {"app": name}
    spec: dict[str, Any] = {
        "selector": {"matchLabels": labels},
        "template": {
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": "c", "image": "busybox"}], **pod_spec},
        },
    }
    if kind == "StatefulSet":
        spec["serviceName"] = name
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def create(cluster: Cluster, namespace: str, kind: str, name: str, pod_spec: dict[str, Any]) -> None:
    body = workload(kind, name, pod_spec)
    {
        "Deployment": cluster.apps.create_namespaced_deployment,
        "StatefulSet": cluster.apps.create_namespaced_stateful_set,
        "DaemonSet": cluster.apps.create_namespaced_daemon_set,
    }[kind](namespace, body, _preload_content=False)


def restarted_at(cluster: Cluster, namespace: str, kind: str, name: str) -> str | None:
    read = {
        "Deployment": cluster.apps.read_namespaced_deployment,
        "StatefulSet": cluster.apps.read_namespaced_stateful_set,
        "DaemonSet": cluster.apps.read_namespaced_daemon_set,
    }[kind]
    obj = json.loads(read(name, namespace, _preload_content=False).data)
    annotations = obj["spec"]["template"]["metadata"].get("annotations") or {}
    value = annotations.get(RESTARTED_AT_ANNOTATION)
    return str(value) if value is not None else None


def env_from(secret: str) -> dict[str, Any]:
    return {"containers": [{"name": "c", "image": "busybox", "envFrom": [{"secretRef": {"name": secret}}]}]}


def test_static_rollout_restart_targets_only_on_change(
    openbao: OpenBaoDevServer,
    cluster: Cluster,
    k8s_vault: VaultAuthSetup,
    kv_mount: str,
    operator: OperatorFactory,
) -> None:
    ns = k8s_vault.namespace
    root = openbao.client()
    root.secrets.kv.v2.create_or_update_secret(mount_point=kv_mount, path="cfg", secret={"k": "1"})
    create(cluster, ns, "Deployment", "web", env_from("cfg"))
    create(cluster, ns, "DaemonSet", "agent", {})
    operator()
    cluster.apply(
        static_secret(
            ns,
            "cfg",
            mount=kv_mount,
            path="cfg",
            destination="cfg",
            type="kv-v2",
            refreshAfter="1s",
            rolloutRestartTargets=[
                {"kind": "Deployment", "name": "web"},
                {"kind": "DaemonSet", "name": "agent"},
            ],
        )
    )
    wait_for(lambda: cluster.secret_data(ns, "cfg"), what="first sync")
    # First sync and no-op refreshes restart nothing.
    skipped = (
        REGISTRY.get_sample_value("csi_vso_secret_writes_skipped_total", {"kind": "VaultStaticSecret"}) or 0
    )
    wait_for(
        lambda: (
            (
                REGISTRY.get_sample_value(
                    "csi_vso_secret_writes_skipped_total", {"kind": "VaultStaticSecret"}
                )
                or 0
            )
            > skipped
        ),
        what="a no-op refresh",
    )
    assert restarted_at(cluster, ns, "Deployment", "web") is None
    root.secrets.kv.v2.create_or_update_secret(mount_point=kv_mount, path="cfg", secret={"k": "2"})
    first = wait_for(lambda: restarted_at(cluster, ns, "Deployment", "web"), what="restart after change")
    assert restarted_at(cluster, ns, "DaemonSet", "agent") is not None
    root.secrets.kv.v2.create_or_update_secret(mount_point=kv_mount, path="cfg", secret={"k": "3"})
    wait_for(lambda: restarted_at(cluster, ns, "Deployment", "web") != first, what="second restart")


def test_dynamic_rollout_pods_restarts_env_and_volume_consumers_not_csi(
    openbao: OpenBaoDevServer,
    cluster: Cluster,
    k8s_vault: VaultAuthSetup,
    database: str,  # noqa: F811
    operator: OperatorFactory,
) -> None:
    ns = k8s_vault.namespace
    db_role(openbao, database, "app", default_ttl="5m", max_ttl="10m")
    create(cluster, ns, "Deployment", "env-user", env_from("app-db"))
    create(
        cluster,
        ns,
        "StatefulSet",
        "volume-user",
        {"volumes": [{"name": "v", "secret": {"secretName": "app-db"}}]},
    )
    create(cluster, ns, "Deployment", "csi-user", CSI)
    create(cluster, ns, "Deployment", "unrelated", env_from("something-else"))
    operator()
    cluster.apply(
        dynamic_secret(ns, "app", mount=database, path="creds/app", destination="app-db", rollout="pods")
    )
    first = wait_for(lambda: cluster.secret_data(ns, "app-db"), what="credentials")
    assert restarted_at(cluster, ns, "Deployment", "env-user") is None  # not on first issue
    cluster.patch_spec(
        "VaultDynamicSecret",
        ns,
        "app",
        {"destination": {"name": "app-db", "create": True, "labels": {"r": "2"}}},
    )
    wait_for(lambda: cluster.secret_data(ns, "app-db") != first, what="rotation")
    wait_for(lambda: restarted_at(cluster, ns, "Deployment", "env-user"), what="env consumer restarted")
    wait_for(
        lambda: restarted_at(cluster, ns, "StatefulSet", "volume-user"), what="volume consumer restarted"
    )
    assert restarted_at(cluster, ns, "Deployment", "csi-user") is None
    assert restarted_at(cluster, ns, "Deployment", "unrelated") is None


def test_restarts_are_debounced_per_workload(cluster: Cluster, namespace: str) -> None:
    from csi_vso.operator.rollout import Rollouts

    create(cluster, namespace, "Deployment", "web", env_from("s"))
    rollouts = Rollouts(cluster.apps, debounce=1.0)
    before = REGISTRY.get_sample_value("csi_vso_rollout_restarts_total", {"kind": "Deployment"}) or 0
    workload = ("Deployment", namespace, "web")
    rollouts.request([workload])  # now
    first = restarted_at(cluster, namespace, "Deployment", "web")
    rollouts.request([workload])  # inside the window: one restart at its end...
    rollouts.request([workload, workload])  # ...which these join
    assert restarted_at(cluster, namespace, "Deployment", "web") == first
    second = wait_for(
        lambda: (r := restarted_at(cluster, namespace, "Deployment", "web")) != first and r, timeout=5
    )
    assert second is not None and first is not None and second > first
    after = REGISTRY.get_sample_value("csi_vso_rollout_restarts_total", {"kind": "Deployment"}) or 0
    assert after - before == 2
    rollouts.close()
