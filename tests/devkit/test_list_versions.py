"""Conformance: list ``resourceVersion`` / ``resourceVersionMatch`` semantics."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client

from tests.devkit.conftest import needs_server
from tests.fixtures.kube import Kube

FAR_AHEAD = 10**15


def _status(err: pytest.ExceptionInfo[client.ApiException]) -> Any:
    return json.loads(err.value.body)


def test_exact_serves_the_snapshot_at_that_version(core: client.CoreV1Api, namespace: str) -> None:
    first = core.create_namespaced_config_map(namespace, {"metadata": {"name": "a"}, "data": {"v": "1"}})
    version = first.metadata.resource_version
    core.patch_namespaced_config_map("a", namespace, {"data": {"v": "2"}})
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "b"}})
    then = core.list_namespaced_config_map(
        namespace,
        resource_version=version,
        resource_version_match="Exact",
        field_selector="metadata.name!=kube-root-ca.crt",
    )
    assert then.metadata.resource_version == version
    assert [(c.metadata.name, c.data) for c in then.items] == [("a", {"v": "1"})]
    now = core.list_namespaced_config_map(
        namespace,
        resource_version=version,
        resource_version_match="NotOlderThan",
        field_selector="metadata.name!=kube-root-ca.crt",
    )
    assert [(c.metadata.name, c.data) for c in now.items] == [("a", {"v": "2"}), ("b", None)]
    assert int(now.metadata.resource_version) > int(version)


@pytest.mark.parametrize("match", ["Exact", "NotOlderThan"])
def test_a_future_version_is_504_too_large(core: client.CoreV1Api, namespace: str, match: str) -> None:
    with pytest.raises(client.ApiException) as err:
        core.list_namespaced_config_map(
            namespace, resource_version=str(FAR_AHEAD), resource_version_match=match
        )
    assert err.value.status == 504
    status = _status(err)
    assert status["reason"] == "Timeout"
    assert status["message"].startswith(f"Timeout: Too large resource version: {FAR_AHEAD}, current: ")
    assert status["details"]["causes"] == [
        {"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}
    ]
    assert status["details"]["retryAfterSeconds"] == 1


def test_exact_after_compaction_is_410(kube: Kube, core: client.CoreV1Api, namespace: str) -> None:
    server = needs_server(kube)  # compaction cannot be forced on a real cluster
    first = core.create_namespaced_config_map(namespace, {"metadata": {"name": "a"}})
    core.patch_namespaced_config_map("a", namespace, {"data": {"v": "2"}})
    server.set_watch_window(0)
    try:
        with pytest.raises(client.ApiException) as err:
            core.list_namespaced_config_map(
                namespace, resource_version=first.metadata.resource_version, resource_version_match="Exact"
            )
    finally:
        server.set_watch_window(25_000)
    assert err.value.status == 410
    assert _status(err)["reason"] == "Expired"
    assert _status(err)["message"] == "The resourceVersion for the provided list is too old."


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"resource_version_match": "Exact"},
            "resourceVersionMatch is forbidden unless resourceVersion is provided",
        ),
        (
            {"resource_version": "0", "resource_version_match": "Exact"},
            'resourceVersionMatch "exact" is forbidden for resourceVersion "0"',
        ),
        ({"send_initial_events": True}, "sendInitialEvents is forbidden for list"),
    ],
)
def test_bad_list_options_are_422(
    core: client.CoreV1Api, namespace: str, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(client.ApiException) as err:
        core.list_namespaced_config_map(namespace, **options)
    assert err.value.status == 422
    status = _status(err)
    assert status["details"]["kind"] == "ListOptions" and status["details"]["group"] == "meta.k8s.io"
    assert message in status["message"]
