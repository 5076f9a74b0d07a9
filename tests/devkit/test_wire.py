"""Conformance: the wire shape of responses where clients could notice a difference.

List items of built-in kinds carry no ``kind``/``apiVersion``; a server-side apply that
creates answers 201; errors of the router (unknown path, unsupported verb) carry the real
server's details. Written with the ``kubernetes`` client so they run unchanged on a cluster.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client


def _raw(api: client.ApiClient, method: str, path: str, body: Any = None) -> tuple[int, str, str]:
    """(status, content type, body) of a raw request with the client's credentials."""
    headers = {"Accept": "application/json", "Content-Type": "application/json"}
    api.update_params_for_auth(headers, [], ["BearerToken"], path, method, body)
    answer = api.rest_client.request(method, api.configuration.host + path, headers=headers, body=body)
    answer.read()
    return answer.status, answer.getheader("Content-Type") or "", answer.data.decode()


def test_list_items_of_built_in_kinds_have_no_kind(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "c"}})
    answer = core.list_namespaced_config_map(
        namespace, field_selector="metadata.name=c", _preload_content=False
    )
    body = json.loads(answer.data)
    assert (body["kind"], body["apiVersion"]) == ("ConfigMapList", "v1")
    [item] = body["items"]
    assert "kind" not in item and "apiVersion" not in item
    assert item["metadata"]["name"] == "c"
    # A single object does carry them.
    one = json.loads(core.read_namespaced_config_map("c", namespace, _preload_content=False).data)
    assert (one["kind"], one["apiVersion"]) == ("ConfigMap", "v1")


def test_server_side_apply_that_creates_answers_201(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    manifest = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": {"a": "1"}}
    _, status, _ = core.patch_namespaced_config_map_with_http_info(
        "applied",
        namespace,
        manifest,
        field_manager="csi-vso-test",
        _content_type="application/apply-patch+yaml",
    )
    assert status == 201
    manifest["data"] = {"a": "2"}
    updated, status, _ = core.patch_namespaced_config_map_with_http_info(
        "applied",
        namespace,
        manifest,
        field_manager="csi-vso-test",
        _content_type="application/apply-patch+yaml",
    )
    assert status == 200
    assert updated.data == {"a": "2"}


def test_unknown_resource_under_a_served_version_is_a_404_status(api: client.ApiClient) -> None:
    code, content_type, body = _raw(api, "GET", "/api/v1/nonsenses")
    assert code == 404 and content_type.startswith("application/json")
    status = json.loads(body)
    assert status["reason"] == "NotFound"
    assert status["message"] == "the server could not find the requested resource"
    assert status["details"] == {}


def test_unknown_group_is_a_plain_404(api: client.ApiClient) -> None:
    code, content_type, body = _raw(api, "GET", "/apis/nonsense.csi-vso.io/v1")
    assert code == 404
    assert content_type.startswith("text/plain")
    assert body.strip() == "404 page not found"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/api/v1/namespaces/default/configmaps"),  # no replace on a collection
        ("POST", "/api/v1/namespaces/default/configmaps/x"),  # no create on a named object
    ],
)
def test_unsupported_verb_is_a_405_with_empty_details(api: client.ApiClient, method: str, path: str) -> None:
    code, _, body = _raw(api, method, path, {"metadata": {"name": "x"}})
    assert code == 405
    status = json.loads(body)
    assert status["reason"] == "MethodNotAllowed"
    assert status["message"] == "the server does not allow this method on the requested resource"
    assert status["details"] == {}
