"""Conformance: selectors, patches on built-in kinds, workloads, pods, leases, discovery, paging."""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

import pytest
from kubernetes import client
from kubernetes.leaderelection import electionconfig, leaderelection
from kubernetes.leaderelection.resourcelock.leaselock import LeaseLock

from tests.devkit.conftest import wait_for


@pytest.fixture
def labelled(core: client.CoreV1Api, namespace: str) -> str:
    for name, labels in (
        ("a", {"app": "web", "tier": "front"}),
        ("b", {"app": "web", "tier": "back"}),
        ("c", {"app": "db"}),
        ("d", {}),
    ):
        core.create_namespaced_secret(namespace, {"metadata": {"name": name, "labels": labels}})
    return namespace


@pytest.mark.parametrize(
    ("selector", "names"),
    [
        ("app=web", ["a", "b"]),
        ("app==web,tier=back", ["b"]),
        ("app!=web", ["c", "d"]),
        ("tier in (front,back)", ["a", "b"]),
        ("app notin (web)", ["c", "d"]),
        ("tier", ["a", "b"]),
        ("!tier", ["c", "d"]),
    ],
)
def test_label_selectors(core: client.CoreV1Api, labelled: str, selector: str, names: list[str]) -> None:
    listed = core.list_namespaced_secret(labelled, label_selector=selector)
    assert [s.metadata.name for s in listed.items] == names


def test_field_selectors(core: client.CoreV1Api, labelled: str) -> None:
    by_name = core.list_namespaced_secret(labelled, field_selector="metadata.name=c")
    assert [s.metadata.name for s in by_name.items] == ["c"]
    not_name = core.list_namespaced_secret(labelled, field_selector="metadata.name!=c")
    assert [s.metadata.name for s in not_name.items] == ["a", "b", "d"]
    across = core.list_secret_for_all_namespaces(
        field_selector=f"metadata.namespace={labelled}", label_selector="app=db"
    )
    assert [(s.metadata.namespace, s.metadata.name) for s in across.items] == [(labelled, "c")]


def test_bad_selectors_are_400(core: client.CoreV1Api, namespace: str) -> None:
    for kw in ({"label_selector": "app in ("}, {"field_selector": "spec.bogus=x"}):
        with pytest.raises(client.ApiException) as err:
            core.list_namespaced_secret(namespace, **kw)
        assert (err.value.status, json.loads(err.value.body)["reason"]) == (400, "BadRequest")


def test_paging_with_limit_and_continue(core: client.CoreV1Api, labelled: str) -> None:
    first = core.list_namespaced_secret(labelled, limit=3)
    assert [s.metadata.name for s in first.items] == ["a", "b", "c"]
    assert first.metadata._continue
    rest = core.list_namespaced_secret(labelled, limit=3, _continue=first.metadata._continue)
    assert [s.metadata.name for s in rest.items] == ["d"]
    assert not rest.metadata._continue


def _deployment(name: str) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels, "annotations": {"keep": "me"}},
                "spec": {
                    "containers": [{"name": "app", "image": "busybox", "env": [{"name": "A", "value": "1"}]}]
                },
            },
        },
    }


def test_strategic_merge_restart_annotation_bumps_generation(api: client.ApiClient, namespace: str) -> None:
    apps = client.AppsV1Api(api)
    created = apps.create_namespaced_deployment(namespace, _deployment("web"))
    assert created.metadata.generation == 1
    patched = apps.patch_namespaced_deployment(
        "web",
        namespace,
        {
            "spec": {
                "template": {
                    "metadata": {
                        "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z"}
                    },
                    "spec": {"containers": [{"name": "app", "image": "busybox:2"}]},
                }
            }
        },
    )
    template = patched.spec.template
    assert template.metadata.annotations == {
        "keep": "me",
        "kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z",
    }
    assert template.spec.containers[0].image == "busybox:2"
    assert template.spec.containers[0].env[0].name == "A"  # merged by container name, not replaced
    assert patched.metadata.generation == 2
    status = apps.patch_namespaced_deployment_status("web", namespace, {"status": {"observedGeneration": 2}})
    assert status.metadata.generation == 2 and status.status.observed_generation == 2


def test_workload_selector_must_match_template(api: client.ApiClient, namespace: str) -> None:
    body = _deployment("web")
    body["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    with pytest.raises(client.ApiException) as err:
        client.AppsV1Api(api).create_namespaced_deployment(namespace, body)
    assert err.value.status == 422


def test_pod_needs_its_service_account(core: client.CoreV1Api, namespace: str) -> None:
    pod = {
        "metadata": {"name": "p"},
        "spec": {"serviceAccountName": "missing", "containers": [{"name": "c", "image": "i"}]},
    }
    with pytest.raises(client.ApiException) as err:
        core.create_namespaced_pod(namespace, pod)
    assert err.value.status == 403
    wait_for(
        lambda: core.list_namespaced_service_account(namespace, field_selector="metadata.name=default").items
    )
    del pod["spec"]["serviceAccountName"]
    created = core.create_namespaced_pod(namespace, pod)
    assert created.spec.service_account_name == "default"
    assert created.status.phase == "Pending"


def test_events_can_be_recorded(core: client.CoreV1Api, namespace: str) -> None:
    cm = core.create_namespaced_config_map(namespace, {"metadata": {"name": "c"}})
    core.create_namespaced_event(
        namespace,
        {
            "metadata": {"generateName": "c."},
            "involvedObject": {
                "kind": "ConfigMap",
                "namespace": namespace,
                "name": "c",
                "uid": cm.metadata.uid,
            },
            "reason": "Synced",
            "message": "ok",
            "type": "Normal",
        },
    )
    listed = core.list_namespaced_event(namespace, field_selector=f"involvedObject.uid={cm.metadata.uid}")
    assert [e.reason for e in listed.items] == ["Synced"]


def test_leader_election_with_a_lease_lock(api: client.ApiClient, namespace: str) -> None:
    leaders: list[str] = []
    release = threading.Event()

    def candidate(identity: str) -> None:
        lock = LeaseLock("leader", namespace, identity)
        lock.api_instance = client.CoordinationV1Api(api)

        def lead() -> None:
            leaders.append(identity)
            release.wait(30)
            raise RuntimeError("stepping down")  # makes LeaderElection stop renewing

        config = electionconfig.Config(
            lock,
            lease_duration=3,
            renew_deadline=2,
            retry_period=1,
            onstarted_leading=lead,
            onstopped_leading=lambda: None,
        )
        leaderelection.LeaderElection(config).run()

    coordination = client.CoordinationV1Api(api)
    first = threading.Thread(target=candidate, args=("one",), daemon=True)
    first.start()
    wait_for(lambda: leaders == ["one"])
    threading.Thread(target=candidate, args=("two",), daemon=True).start()
    assert coordination.read_namespaced_lease("leader", namespace).spec.holder_identity == "one"
    release.set()  # "one" steps down; "two" takes over once the lease expires
    wait_for(lambda: leaders == ["one", "two"], timeout=15)
    lease = coordination.read_namespaced_lease("leader", namespace)
    assert lease.spec.holder_identity == "two"


def test_discovery(api: client.ApiClient) -> None:
    core_versions = client.CoreApi(api).get_api_versions()
    assert core_versions.versions == ["v1"]
    groups = {g.name: g for g in client.ApisApi(api).get_api_versions().groups}
    for group in ("apps", "coordination.k8s.io", "apiextensions.k8s.io", "authentication.k8s.io"):
        assert group in groups
    resources = {r.name for r in client.CoreV1Api(api).get_api_resources().resources}
    assert {"secrets", "serviceaccounts/token", "pods/status", "namespaces"} <= resources
    assert client.VersionApi(api).get_code().major == "1"


def test_unknown_paths_and_namespaces(core: client.CoreV1Api) -> None:
    name = f"nope-{uuid.uuid4().hex[:6]}"
    with pytest.raises(client.ApiException) as err:
        core.read_namespace(name)
    assert err.value.status == 404
    assert json.loads(err.value.body)["message"] == f'namespaces "{name}" not found'


def test_immutable_fields_of_pods_and_workloads(
    api: client.ApiClient, core: client.CoreV1Api, namespace: str
) -> None:
    wait_for(
        lambda: core.list_namespaced_service_account(namespace, field_selector="metadata.name=default").items
    )
    core.create_namespaced_pod(
        namespace, {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i:1"}]}}
    )
    assert core.patch_namespaced_pod(
        "p", namespace, {"spec": {"containers": [{"name": "c", "image": "i:2"}]}}
    )
    with pytest.raises(client.ApiException) as err:
        core.patch_namespaced_pod(
            "p", namespace, {"spec": {"containers": [{"name": "c", "command": ["sh"]}]}}
        )
    assert err.value.status == 422
    assert "pod updates may not change fields" in json.loads(err.value.body)["message"]
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(namespace, _deployment("web"))
    with pytest.raises(client.ApiException) as err:
        apps.patch_namespaced_deployment(
            "web",
            namespace,
            {
                "spec": {
                    "selector": {"matchLabels": {"app": "web", "x": "y"}},
                    "template": {"metadata": {"labels": {"app": "web", "x": "y"}}},
                }
            },
        )
    assert err.value.status == 422
    assert json.loads(err.value.body)["details"]["causes"][0]["field"] == "spec.selector"
