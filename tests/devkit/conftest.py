"""Shared helpers for the API server conformance tests."""

from __future__ import annotations

import time
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
