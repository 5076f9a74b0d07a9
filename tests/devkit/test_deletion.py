"""Conformance: finalizers, deletionTimestamp, ownerReference garbage collection, namespaces."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client

from csi_vso.devkit.apiserver import APIServer
from tests.devkit.conftest import needs_server, server_client, wait_for
from tests.fixtures.kube import Kube

HOLD = "example.com/hold"


def _exists(read: Any, *args: Any) -> bool:
    try:
        read(*args)
    except client.ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def _owner_ref(owner: Any, kind: str = "ConfigMap") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": kind, "name": owner.metadata.name, "uid": owner.metadata.uid}


def test_finalizer_holds_the_object_until_removed(core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "c", "finalizers": [HOLD]}})
    core.delete_namespaced_config_map("c", namespace)
    held = core.read_namespaced_config_map("c", namespace)
    assert held.metadata.deletion_timestamp is not None
    assert held.metadata.finalizers == [HOLD]

    with pytest.raises(client.ApiException) as err:
        core.patch_namespaced_config_map(
            "c", namespace, {"metadata": {"finalizers": [HOLD, "example.com/more"]}}
        )
    assert err.value.status == 422
    assert "no new finalizers can be added" in json.loads(err.value.body)["message"]

    core.patch_namespaced_config_map(
        "c", namespace, {"metadata": {"$deleteFromPrimitiveList/finalizers": [HOLD]}}
    )
    assert not _exists(core.read_namespaced_config_map, "c", namespace)


def test_delete_preconditions(core: client.CoreV1Api, namespace: str) -> None:
    created = core.create_namespaced_config_map(namespace, {"metadata": {"name": "c"}})
    with pytest.raises(client.ApiException) as err:
        core.delete_namespaced_config_map("c", namespace, body={"preconditions": {"uid": "not-the-uid"}})
    assert err.value.status == 409
    core.delete_namespaced_config_map("c", namespace, body={"preconditions": {"uid": created.metadata.uid}})
    assert not _exists(core.read_namespaced_config_map, "c", namespace)


def test_dependents_are_garbage_collected_in_background(core: client.CoreV1Api, namespace: str) -> None:
    owner = core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}})
    core.create_namespaced_secret(
        namespace, {"metadata": {"name": "dep", "ownerReferences": [_owner_ref(owner)]}}
    )
    other = core.create_namespaced_config_map(namespace, {"metadata": {"name": "other"}})
    core.create_namespaced_secret(
        namespace, {"metadata": {"name": "shared", "ownerReferences": [_owner_ref(owner), _owner_ref(other)]}}
    )
    core.delete_namespaced_config_map("owner", namespace)
    wait_for(lambda: not _exists(core.read_namespaced_secret, "dep", namespace))
    # A dependent with another live owner stays and only loses the dangling reference.
    wait_for(
        lambda: len(core.read_namespaced_secret("shared", namespace).metadata.owner_references or []) == 1
    )
    assert core.read_namespaced_secret("shared", namespace).metadata.owner_references[0].name == "other"


def test_orphan_propagation_keeps_dependents(core: client.CoreV1Api, namespace: str) -> None:
    owner = core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}})
    core.create_namespaced_secret(
        namespace, {"metadata": {"name": "dep", "ownerReferences": [_owner_ref(owner)]}}
    )
    core.delete_namespaced_config_map("owner", namespace, propagation_policy="Orphan")
    wait_for(lambda: not _exists(core.read_namespaced_config_map, "owner", namespace))
    dep = core.read_namespaced_secret("dep", namespace)
    assert not dep.metadata.owner_references


def test_foreground_propagation_deletes_dependents_first(core: client.CoreV1Api, namespace: str) -> None:
    owner = core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}})
    blocking = {**_owner_ref(owner), "blockOwnerDeletion": True}
    core.create_namespaced_secret(
        namespace, {"metadata": {"name": "dep", "finalizers": [HOLD], "ownerReferences": [blocking]}}
    )
    core.delete_namespaced_config_map("owner", namespace, propagation_policy="Foreground")
    wait_for(lambda: core.read_namespaced_secret("dep", namespace).metadata.deletion_timestamp is not None)
    waiting = core.read_namespaced_config_map("owner", namespace)
    assert "foregroundDeletion" in waiting.metadata.finalizers  # held while a blocking dependent remains
    assert waiting.metadata.deletion_timestamp is not None
    core.patch_namespaced_secret("dep", namespace, {"metadata": {"finalizers": None}})
    wait_for(lambda: not _exists(core.read_namespaced_config_map, "owner", namespace))
    assert not _exists(core.read_namespaced_secret, "dep", namespace)


def test_foreground_propagation_waits_only_for_blocking_dependents(
    core: client.CoreV1Api, namespace: str
) -> None:
    """A dependent without ``blockOwnerDeletion: true`` does not hold its owner; it is collected after."""
    owner = core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}})
    core.create_namespaced_secret(
        namespace, {"metadata": {"name": "dep", "finalizers": [HOLD], "ownerReferences": [_owner_ref(owner)]}}
    )
    core.delete_namespaced_config_map("owner", namespace, propagation_policy="Foreground")
    wait_for(lambda: not _exists(core.read_namespaced_config_map, "owner", namespace))
    # Deleted too (in the background, once its owner is gone), held by its own finalizer.
    wait_for(lambda: core.read_namespaced_secret("dep", namespace).metadata.deletion_timestamp is not None)
    core.patch_namespaced_secret("dep", namespace, {"metadata": {"finalizers": None}})
    wait_for(lambda: not _exists(core.read_namespaced_secret, "dep", namespace))


def test_controllers_act_after_their_modelled_delay(kube: Kube) -> None:
    """GC and namespace content removal happen later, as on a cluster, not inside the DELETE."""
    needs_server(kube)  # a dedicated server with long delays, so the test does not race them
    with APIServer(gc_delay=0.3, namespace_delay=0.3) as server, server_client(server) as api:
        core = client.CoreV1Api(api)
        core.create_namespace({"metadata": {"name": "slow"}})
        owner = core.create_namespaced_config_map("slow", {"metadata": {"name": "owner"}})
        core.create_namespaced_secret(
            "slow", {"metadata": {"name": "dep", "ownerReferences": [_owner_ref(owner)]}}
        )
        core.delete_namespaced_config_map("owner", "slow")
        assert _exists(core.read_namespaced_secret, "dep", "slow")
        wait_for(lambda: not _exists(core.read_namespaced_secret, "dep", "slow"))
        core.create_namespaced_config_map("slow", {"metadata": {"name": "plain"}})
        core.delete_namespace("slow")
        assert _exists(core.read_namespaced_config_map, "plain", "slow")
        wait_for(lambda: not _exists(core.read_namespace, "slow"))
        assert not _exists(core.read_namespaced_config_map, "plain", "slow")


def test_namespace_deletion_terminates_then_removes_content(core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "plain"}})
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "held", "finalizers": [HOLD]}})
    core.delete_namespace(namespace)
    terminating = core.read_namespace(namespace)
    assert terminating.status.phase == "Terminating"
    assert terminating.metadata.deletion_timestamp is not None
    assert terminating.spec.finalizers == ["kubernetes"]
    with pytest.raises(client.ApiException) as err:
        core.create_namespaced_config_map(namespace, {"metadata": {"name": "late"}})
    assert err.value.status == 403
    status = json.loads(err.value.body)
    assert status["reason"] == "Forbidden"
    assert status["message"] == (
        f'configmaps "late" is forbidden: unable to create new content in namespace {namespace} '
        "because it is being terminated"
    )
    assert status["details"] == {
        "name": "late",
        "kind": "configmaps",
        "causes": [
            {
                "reason": "NamespaceTerminating",
                "message": f"namespace {namespace} is being terminated",
                "field": "metadata.namespace",
            }
        ],
    }
    wait_for(lambda: not _exists(core.read_namespaced_config_map, "plain", namespace), timeout=60)
    assert _exists(core.read_namespace, namespace)
    core.patch_namespaced_config_map("held", namespace, {"metadata": {"finalizers": None}})
    wait_for(lambda: not _exists(core.read_namespace, namespace), timeout=60)
