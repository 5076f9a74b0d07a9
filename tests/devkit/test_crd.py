"""Conformance: CustomResourceDefinitions and their custom resources.

Schema validation (422), defaulting and pruning, the ``/status`` subresource and
``metadata.generation``, merge patches, cluster-scoped kinds, and CRD deletion taking its
custom resources with it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from tests.devkit.conftest import wait_for

VERSION = "v1"


def _crd(group: str, plural: str, kind: str, scope: str = "Namespaced") -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": scope,
            "names": {"plural": plural, "singular": kind.lower(), "kind": kind, "listKind": f"{kind}List"},
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "required": ["path"],
                                    "properties": {
                                        "path": {"type": "string", "pattern": "^[a-z0-9/]+$"},
                                        "type": {"type": "string", "enum": ["kv-v1", "kv-v2"]},
                                        "refreshAfter": {"type": "string", "default": "30s"},
                                        "count": {"type": "integer"},
                                    },
                                },
                                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                            },
                        }
                    },
                }
            ],
        },
    }


@pytest.fixture(scope="module")
def crd_group(kube: Any) -> Iterator[str]:
    group = f"t{uuid.uuid4().hex[:8]}.example.com"
    with kube.api_client() as api:
        ext = client.ApiextensionsV1Api(api)
        ext.create_custom_resource_definition(_crd(group, "widgets", "Widget"))
        ext.create_custom_resource_definition(_crd(group, "gadgets", "Gadget", scope="Cluster"))

        def established() -> bool:
            crd = ext.read_custom_resource_definition(f"widgets.{group}")
            return any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or [])

        wait_for(established)
        try:
            yield group
        finally:
            for plural in ("widgets", "gadgets"):
                try:
                    ext.delete_custom_resource_definition(f"{plural}.{group}")
                except client.ApiException as exc:
                    if exc.status != 404:
                        raise


@pytest.fixture
def custom(api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api)


def _widget(group: str, name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{group}/{VERSION}",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": {"path": "a/b", **spec},
    }


def test_discovery_lists_the_custom_kind(api: client.ApiClient, crd_group: str) -> None:
    resources = client.CustomObjectsApi(api).get_api_resources(crd_group, VERSION)
    names = {r.name: r for r in resources.resources}
    assert names["widgets"].kind == "Widget" and names["widgets"].namespaced is True
    assert names["gadgets"].namespaced is False
    assert "widgets/status" in names


def test_create_defaults_prunes_and_starts_at_generation_1(
    custom: client.CustomObjectsApi, crd_group: str, namespace: str
) -> None:
    body = _widget(crd_group, "w", unknown="dropped")
    body["status"] = {"ignored": "on create"}
    created = custom.create_namespaced_custom_object(crd_group, VERSION, namespace, "widgets", body)
    assert created["spec"] == {"path": "a/b", "refreshAfter": "30s"}
    assert "status" not in created
    assert created["metadata"]["generation"] == 1


@pytest.mark.parametrize(
    ("spec", "field", "reason"),
    [
        ({"type": "kv-v9"}, "spec.type", "FieldValueNotSupported"),
        ({"path": "UPPER"}, "spec.path", "FieldValueInvalid"),
        ({"count": "three"}, "spec.count", "FieldValueTypeInvalid"),
    ],
)
def test_schema_violations_are_422(
    custom: client.CustomObjectsApi,
    crd_group: str,
    namespace: str,
    spec: dict[str, Any],
    field: str,
    reason: str,
) -> None:
    with pytest.raises(client.ApiException) as err:
        custom.create_namespaced_custom_object(
            crd_group, VERSION, namespace, "widgets", _widget(crd_group, "bad", **spec)
        )
    status = json.loads(err.value.body)
    assert (err.value.status, status["reason"]) == (422, "Invalid")
    assert status["details"]["kind"] == "Widget" and status["details"]["group"] == crd_group
    assert [(c["field"], c["reason"]) for c in status["details"]["causes"]] == [(field, reason)]


def test_missing_required_field_is_422(
    custom: client.CustomObjectsApi, crd_group: str, namespace: str
) -> None:
    body = _widget(crd_group, "bad")
    del body["spec"]["path"]
    with pytest.raises(client.ApiException) as err:
        custom.create_namespaced_custom_object(crd_group, VERSION, namespace, "widgets", body)
    assert err.value.status == 422
    assert json.loads(err.value.body)["details"]["causes"][0]["field"] == "spec.path"


def test_status_writes_do_not_bump_generation(
    custom: client.CustomObjectsApi, crd_group: str, namespace: str
) -> None:
    custom.create_namespaced_custom_object(crd_group, VERSION, namespace, "widgets", _widget(crd_group, "w"))
    status = custom.patch_namespaced_custom_object_status(
        crd_group,
        VERSION,
        namespace,
        "widgets",
        "w",
        {"status": {"phase": "Ready"}, "spec": {"path": "ignored"}},
    )
    assert status["status"] == {"phase": "Ready"}
    assert status["spec"]["path"] == "a/b"  # /status ignores everything but status
    assert status["metadata"]["generation"] == 1
    spec = custom.patch_namespaced_custom_object(
        crd_group, VERSION, namespace, "widgets", "w", {"spec": {"path": "c"}, "status": {"phase": "ignored"}}
    )
    assert spec["metadata"]["generation"] == 2
    assert spec["status"] == {"phase": "Ready"}  # the main resource ignores status
    meta_only = custom.patch_namespaced_custom_object(
        crd_group, VERSION, namespace, "widgets", "w", {"metadata": {"labels": {"a": "b"}}}
    )
    assert meta_only["metadata"]["generation"] == 2


def test_replace_needs_a_resource_version(
    custom: client.CustomObjectsApi, crd_group: str, namespace: str
) -> None:
    created = custom.create_namespaced_custom_object(
        crd_group, VERSION, namespace, "widgets", _widget(crd_group, "w")
    )
    body = _widget(crd_group, "w", path="x")
    with pytest.raises(client.ApiException) as err:
        custom.replace_namespaced_custom_object(crd_group, VERSION, namespace, "widgets", "w", body)
    assert err.value.status == 422
    body["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"]
    replaced = custom.replace_namespaced_custom_object(crd_group, VERSION, namespace, "widgets", "w", body)
    assert replaced["spec"]["path"] == "x"
    with pytest.raises(client.ApiException) as err:
        custom.replace_namespaced_custom_object(crd_group, VERSION, namespace, "widgets", "w", body)
    assert err.value.status == 409


def test_strategic_merge_is_refused_for_custom_resources(
    custom: client.CustomObjectsApi, crd_group: str, namespace: str
) -> None:
    custom.create_namespaced_custom_object(crd_group, VERSION, namespace, "widgets", _widget(crd_group, "w"))
    with pytest.raises(client.ApiException) as err:
        custom.patch_namespaced_custom_object(
            crd_group,
            VERSION,
            namespace,
            "widgets",
            "w",
            {"spec": {"count": 1}},
            _content_type="application/strategic-merge-patch+json",
        )
    assert err.value.status == 415
    patched = custom.patch_namespaced_custom_object(
        crd_group,
        VERSION,
        namespace,
        "widgets",
        "w",
        [{"op": "add", "path": "/spec/count", "value": 2}],
        _content_type="application/json-patch+json",
    )
    assert patched["spec"]["count"] == 2


def test_list_with_selectors_and_cluster_scope(
    custom: client.CustomObjectsApi, crd_group: str, namespace: str
) -> None:
    for name, tier in (("a", "x"), ("b", "y")):
        body = _widget(crd_group, name)
        body["metadata"]["labels"] = {"tier": tier}
        custom.create_namespaced_custom_object(crd_group, VERSION, namespace, "widgets", body)
    listed = custom.list_namespaced_custom_object(
        crd_group, VERSION, namespace, "widgets", label_selector="tier=y"
    )
    assert [i["metadata"]["name"] for i in listed["items"]] == ["b"]
    assert listed["kind"] == "WidgetList"
    name = f"g-{uuid.uuid4().hex[:6]}"
    created = custom.create_cluster_custom_object(
        crd_group,
        VERSION,
        "gadgets",
        {
            "apiVersion": f"{crd_group}/{VERSION}",
            "kind": "Gadget",
            "metadata": {"name": name},
            "spec": {"path": "p"},
        },
    )
    assert "namespace" not in created["metadata"]
    assert custom.get_cluster_custom_object(crd_group, VERSION, "gadgets", name)["spec"]["path"] == "p"
    custom.delete_cluster_custom_object(crd_group, VERSION, "gadgets", name)


def test_deleting_a_crd_removes_its_resources(api: client.ApiClient, namespace: str) -> None:
    group = f"t{uuid.uuid4().hex[:8]}.example.com"
    ext = client.ApiextensionsV1Api(api)
    custom = client.CustomObjectsApi(api)
    ext.create_custom_resource_definition(_crd(group, "widgets", "Widget"))
    wait_for(
        lambda: any(
            c.type == "Established"
            for c in ext.read_custom_resource_definition(f"widgets.{group}").status.conditions or []
        )
    )
    custom.create_namespaced_custom_object(group, VERSION, namespace, "widgets", _widget(group, "w"))
    ext.delete_custom_resource_definition(f"widgets.{group}")

    def gone() -> bool:
        try:
            ext.read_custom_resource_definition(f"widgets.{group}")
        except client.ApiException as exc:
            return exc.status == 404
        return False

    wait_for(gone)
    with pytest.raises(client.ApiException) as err:
        custom.list_namespaced_custom_object(group, VERSION, namespace, "widgets")
    assert err.value.status == 404


def test_deletion_with_a_finalizer_bumps_generation_once(
    custom: client.CustomObjectsApi, crd_group: str, namespace: str
) -> None:
    """The real server bumps generation when it sets deletionTimestamp (controllers that skip
    unchanged generations must still notice a deletion)."""
    body = _widget(crd_group, "w")
    body["metadata"]["finalizers"] = ["example.com/hold"]
    custom.create_namespaced_custom_object(crd_group, VERSION, namespace, "widgets", body)
    custom.delete_namespaced_custom_object(crd_group, VERSION, namespace, "widgets", "w")
    held = custom.get_namespaced_custom_object(crd_group, VERSION, namespace, "widgets", "w")
    assert held["metadata"]["deletionTimestamp"] and held["metadata"]["generation"] == 2
    custom.delete_namespaced_custom_object(crd_group, VERSION, namespace, "widgets", "w")
    again = custom.get_namespaced_custom_object(crd_group, VERSION, namespace, "widgets", "w")
    assert again["metadata"]["generation"] == 2
    custom.patch_namespaced_custom_object(
        crd_group, VERSION, namespace, "widgets", "w", {"metadata": {"finalizers": None}}
    )
    with pytest.raises(client.ApiException) as err:
        custom.get_namespaced_custom_object(crd_group, VERSION, namespace, "widgets", "w")
    assert err.value.status == 404
