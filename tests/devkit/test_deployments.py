"""Conformance: apps/v1 Deployments — defaulting, validation and the ``scale`` subresource."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client


def _deployment(name: str, **spec: Any) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [{"name": "app", "image": "busybox:1.36", "ports": [{"containerPort": 80}]}]
                },
            },
            **spec,
        },
    }


@pytest.fixture
def apps(api: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(api)


def test_defaults(apps: client.AppsV1Api, namespace: str) -> None:
    created = apps.create_namespaced_deployment(namespace, _deployment("web"))
    spec = created.spec
    assert spec.replicas == 1
    assert spec.strategy.type == "RollingUpdate"
    assert (spec.strategy.rolling_update.max_unavailable, spec.strategy.rolling_update.max_surge) == (
        "25%",
        "25%",
    )
    assert spec.revision_history_limit == 10
    assert spec.progress_deadline_seconds == 600
    pod = spec.template.spec
    assert (pod.restart_policy, pod.dns_policy, pod.scheduler_name) == (
        "Always",
        "ClusterFirst",
        "default-scheduler",
    )
    assert pod.termination_grace_period_seconds == 30
    container = pod.containers[0]
    assert container.image_pull_policy == "IfNotPresent"
    assert (container.termination_message_path, container.termination_message_policy) == (
        "/dev/termination-log",
        "File",
    )
    assert container.ports[0].protocol == "TCP"
    latest = _deployment("latest")
    latest["spec"]["template"]["spec"]["containers"][0]["image"] = "busybox"
    pulled = apps.create_namespaced_deployment(namespace, latest).spec.template.spec.containers[0]
    assert pulled.image_pull_policy == "Always"  # no tag means :latest


def test_explicit_values_are_kept(apps: client.AppsV1Api, namespace: str) -> None:
    created = apps.create_namespaced_deployment(
        namespace, _deployment("web", replicas=3, strategy={"type": "Recreate"}, revisionHistoryLimit=2)
    )
    assert (created.spec.replicas, created.spec.strategy.type) == (3, "Recreate")
    assert created.spec.strategy.rolling_update is None
    assert created.spec.revision_history_limit == 2


def _causes(err: pytest.ExceptionInfo[client.ApiException]) -> list[tuple[str, str]]:
    assert err.value.status == 422
    return [(c["reason"], c["field"]) for c in json.loads(err.value.body)["details"]["causes"]]


def test_image_is_required(apps: client.AppsV1Api, namespace: str) -> None:
    body = _deployment("web")
    del body["spec"]["template"]["spec"]["containers"][0]["image"]
    with pytest.raises(client.ApiException) as err:
        apps.create_namespaced_deployment(namespace, body)
    assert ("FieldValueRequired", "spec.template.spec.containers[0].image") in _causes(err)


def test_selector_must_match_the_template_labels(apps: client.AppsV1Api, namespace: str) -> None:
    body = _deployment("web")
    body["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    with pytest.raises(client.ApiException) as err:
        apps.create_namespaced_deployment(namespace, body)
    assert ("FieldValueInvalid", "spec.template.metadata.labels") in _causes(err)
    message = json.loads(err.value.body)["message"]
    assert "`selector` does not match template `labels`" in message


def test_rolling_update_budgets_may_not_both_be_zero(apps: client.AppsV1Api, namespace: str) -> None:
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}}
    with pytest.raises(client.ApiException) as err:
        apps.create_namespaced_deployment(namespace, _deployment("web", strategy=strategy))
    assert ("FieldValueInvalid", "spec.strategy.rollingUpdate.maxUnavailable") in _causes(err)


def test_scale_subresource(apps: client.AppsV1Api, namespace: str) -> None:
    created = apps.create_namespaced_deployment(namespace, _deployment("web"))
    scale = apps.read_namespaced_deployment_scale("web", namespace)
    assert (scale.kind, scale.api_version) == ("Scale", "autoscaling/v1")
    assert scale.metadata.uid == created.metadata.uid
    assert scale.spec.replicas == 1
    assert scale.status.selector == "app=web"

    stale_version = scale.metadata.resource_version
    scale.spec.replicas = 3
    # Unconditional: on a cluster the deployment controller may have written status meanwhile.
    scale.metadata.resource_version = None
    replaced = apps.replace_namespaced_deployment_scale("web", namespace, scale)
    assert replaced.spec.replicas == 3
    deployment = apps.read_namespaced_deployment("web", namespace)
    assert deployment.spec.replicas == 3
    assert deployment.metadata.generation == 2  # a spec change

    patched = apps.patch_namespaced_deployment_scale("web", namespace, {"spec": {"replicas": 0}})
    assert patched.spec.replicas == 0
    assert apps.read_namespaced_deployment("web", namespace).spec.replicas == 0

    scale.metadata.resource_version = stale_version
    with pytest.raises(client.ApiException) as err:
        apps.replace_namespaced_deployment_scale("web", namespace, scale)  # stale resourceVersion
    assert err.value.status == 409
    with pytest.raises(client.ApiException) as err:
        apps.patch_namespaced_deployment_scale("web", namespace, {"spec": {"replicas": -1}})
    assert err.value.status == 422
    assert json.loads(err.value.body)["details"]["causes"][0]["field"] == "spec.replicas"


def test_scale_is_in_discovery(api: client.ApiClient) -> None:
    resources = client.AppsV1Api(api).get_api_resources().resources
    [scale] = [r for r in resources if r.name == "deployments/scale"]
    assert (scale.kind, scale.group, scale.version) == ("Scale", "autoscaling", "v1")
    assert sorted(scale.verbs) == ["get", "patch", "update"]


def test_strategic_merge_puts_a_new_container_first(apps: client.AppsV1Api, namespace: str) -> None:
    apps.create_namespaced_deployment(namespace, _deployment("web"))
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "side", "image": "busybox:1.36"}]}}}}
    patched = apps.patch_namespaced_deployment("web", namespace, patch)
    assert [c.name for c in patched.spec.template.spec.containers] == ["side", "app"]
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "busybox:1.37"}]}}}}
    patched = apps.patch_namespaced_deployment("web", namespace, patch)
    assert [(c.name, c.image) for c in patched.spec.template.spec.containers] == [
        ("side", "busybox:1.36"),
        ("app", "busybox:1.37"),
    ]
