"""Shared helpers for the API server conformance tests."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest
from kubernetes import client

from csi_vso.devkit.apiserver import APIServer
from tests.fixtures.kube import Kube

T = TypeVar("T")


@pytest.fixture
def api(kube: Kube) -> Iterator[client.ApiClient]:
    with kube.api_client() as api_client:
        yield api_client


@pytest.fixture
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


@pytest.fixture
def node(core: client.CoreV1Api) -> Iterator[client.V1Node]:
    """A Node object for the test (no kubelet behind it), deleted afterwards."""
    created = core.create_node({"metadata": {"name": f"csi-vso-test-{uuid.uuid4().hex[:8]}"}})
    try:
        yield created
    finally:
        try:
            core.delete_node(created.metadata.name)
        except client.ApiException as exc:
            if exc.status != 404:
                raise


def wait_for(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.02) -> T:
    """Poll until ``predicate()`` is truthy (asynchronous controllers: GC, namespaces)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value {value!r})")
        time.sleep(interval)


def server_client(server: APIServer) -> client.ApiClient:
    """An admin client for a dedicated in-memory server (tests that need non-default settings)."""
    cfg = client.Configuration()
    cfg.host = server.url
    cfg.api_key = {"BearerToken": f"Bearer {server.admin_token}"}
    return client.ApiClient(cfg)


def needs_server(kube: Kube) -> APIServer:
    """The in-memory server, or skip: the test reaches into server internals."""
    if kube.server is None:
        pytest.skip("needs the in-memory API server's internals (CSI_VSO_TEST_KUBECONFIG is set)")
    return kube.server


def create_pod(
    core: client.CoreV1Api, namespace: str, name: str, service_account: str, node_name: str | None = None
) -> client.V1Pod:
    """A minimal Pod running as ``service_account`` (scheduled to ``node_name`` when given)."""
    spec: dict[str, object] = {
        "serviceAccountName": service_account,
        "containers": [{"name": "c", "image": "busybox"}],
    }
    if node_name is not None:
        spec["nodeName"] = node_name
    return core.create_namespaced_pod(namespace, {"metadata": {"name": name}, "spec": spec})
