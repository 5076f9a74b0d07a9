"""What the authorizer is asked, per request (pure table test of ``requestinfo``)."""

from __future__ import annotations

import pytest

from csi_vso.devkit.apiserver.requestinfo import RequestInfo, accepts, request_info


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        ("GET", "/api/v1/namespaces/ns/secrets", {}, ("list", "", "ns", "secrets", "", "")),
        ("GET", "/api/v1/namespaces/ns/secrets", {"watch": "true"}, ("watch", "", "ns", "secrets", "", "")),
        ("GET", "/api/v1/namespaces/ns/secrets", {"watch": "1"}, ("watch", "", "ns", "secrets", "", "")),
        (
            "GET",
            "/api/v1/namespaces/ns/secrets",
            {"watch": "true", "fieldSelector": "metadata.name=db"},
            ("watch", "", "ns", "secrets", "", "db"),
        ),
        (
            "GET",
            "/api/v1/namespaces/ns/secrets",
            {"fieldSelector": "type=Opaque,metadata.name==db"},
            ("list", "", "ns", "secrets", "", "db"),
        ),
        (
            "GET",
            "/api/v1/namespaces/ns/secrets",
            {"fieldSelector": "metadata.name!=db"},
            ("list", "", "ns", "secrets", "", ""),
        ),
        ("GET", "/api/v1/namespaces/ns/secrets/db", {}, ("get", "", "ns", "secrets", "", "db")),
        ("POST", "/api/v1/namespaces/ns/secrets", {}, ("create", "", "ns", "secrets", "", "")),
        (
            "DELETE",
            "/api/v1/namespaces/ns/secrets",
            {"fieldSelector": "metadata.name=db"},
            ("deletecollection", "", "ns", "secrets", "", ""),
        ),
        (
            "POST",
            "/api/v1/namespaces/ns/serviceaccounts/sa/token",
            {},
            ("create", "", "ns", "serviceaccounts", "token", "sa"),
        ),
        ("PATCH", "/api/v1/namespaces/ns/pods/p/status", {}, ("patch", "", "ns", "pods", "status", "p")),
        ("GET", "/api/v1/namespaces/ns", {}, ("get", "", "ns", "namespaces", "", "ns")),
        ("PUT", "/api/v1/namespaces/ns/finalize", {}, ("update", "", "ns", "namespaces", "finalize", "ns")),
        ("GET", "/api/v1/namespaces", {}, ("list", "", "", "namespaces", "", "")),
        ("GET", "/apis/apps/v1/namespaces/ns/deployments", {}, ("list", "apps", "ns", "deployments", "", "")),
        (
            "POST",
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            {},
            ("create", "authentication.k8s.io", "", "selfsubjectreviews", "", ""),
        ),
    ],
)
def test_resource_requests(method: str, path: str, query: dict[str, str], expected: tuple[str, ...]) -> None:
    info = request_info(method, path, query)
    assert info.resource_request
    assert (info.verb, info.api_group, info.namespace, info.resource, info.subresource, info.name) == expected


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api"),
        ("GET", "/api/v1"),
        ("GET", "/apis/apps/v1"),
        ("GET", "/openid/v1/jwks"),
        ("POST", "/version"),
    ],
)
def test_non_resource_requests(method: str, path: str) -> None:
    assert request_info(method, path, {}) == RequestInfo(
        verb=method.lower(), resource_request=False, path=path
    )


@pytest.mark.parametrize(
    ("accept", "ok"),
    [
        (None, True),
        ("*/*", True),
        ("application/*", True),
        ("application/jwk-set+json", True),
        ("application/json, application/jwk-set+json;q=0.9", True),
        ("application/json", False),
        ("text/plain", False),
    ],
)
def test_accept_negotiation(accept: str | None, ok: bool) -> None:
    assert accepts(accept, "application/jwk-set+json") is ok
