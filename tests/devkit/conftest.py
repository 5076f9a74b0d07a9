"""Shared helpers for the API server conformance tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client

from tests.fixtures.kube import Kube


@pytest.fixture
def api(kube: Kube) -> Iterator[client.ApiClient]:
    with kube.api_client() as api_client:
        yield api_client


@pytest.fixture
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)
