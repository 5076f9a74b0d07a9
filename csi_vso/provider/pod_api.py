"""The Kubernetes API as a pod sees it: every call made with that pod's own token.

In pod-token mode (``--secret-access=pod-token``) the provider never reads a Secret with its
own identity. Kubelet mints, for every Mount, a token of the pod's service account for the
API server's own audiences (the driver's ``tokenRequests`` entry with ``audience: ""``), and
the provider uses exactly that token:

- ``SelfSubjectReview``: who the token is (user, and the pod it is bound to in ``extra``);
- ``SelfSubjectAccessReview``: whether that pod may read one named Secret (RBAC);
- ``list``/``watch`` of one Secret, narrowed by ``fieldSelector=metadata.name=<name>``.

The calls go through an API client that carries *no* credential of its own (the host and CA
of the provider's configuration only): a client certificate would win over the bearer token
on a real server and the reads would silently run as the provider. The token travels in the
request's ``Authorization`` header and nowhere else; exceptions are reduced to their HTTP
status, because a response body may echo the request.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from csi_vso.provider.errors import Unavailable

POD_NAME_EXTRA = "authentication.kubernetes.io/pod-name"
POD_UID_EXTRA = "authentication.kubernetes.io/pod-uid"
NODE_NAME_EXTRA = "authentication.kubernetes.io/node-name"

#: Watches held open at once are one connection each: the pool must not discard them.
_POOL_SIZE = 512


class TokenRefused(Exception):
    """HTTP 401: the API server no longer accepts the token (expired, or its pod is gone)."""


class Forbidden(Exception):
    """HTTP 403: the token's identity may not do this (RBAC)."""


@dataclass(frozen=True)
class SelfFacts:
    """A SelfSubjectReview's answer: who the token is, without the token."""

    username: str
    pod_name: str | None
    pod_uid: str | None
    node_name: str | None


def token_expiry(token: str) -> float | None:
    """The token's ``exp`` claim (unix seconds), read without verifying it; None when unreadable.

    Only ever used to decide how long to *trust a verdict* the API server gave for this token
    (never to accept the token): the server checked the signature when it answered.
    """
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


def anonymous_client(base: client.ApiClient) -> client.ApiClient:
    """An API client for ``base``'s server (host, CA, TLS settings) with no credential at all."""
    source = base.configuration
    config = client.Configuration(host=source.host)
    config.ssl_ca_cert = source.ssl_ca_cert
    config.verify_ssl = source.verify_ssl
    config.assert_hostname = source.assert_hostname
    config.tls_server_name = getattr(source, "tls_server_name", None)
    config.proxy = source.proxy
    config.connection_pool_maxsize = _POOL_SIZE
    return client.ApiClient(config)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _first(values: Any) -> str | None:
    return str(values[0]) if isinstance(values, list | tuple) and values else None


class PodAPI:
    """The three kinds of call the provider makes as a pod. Thread-safe."""

    def __init__(self, base: client.ApiClient, *, timeout: float = 10.0) -> None:
        self.api = anonymous_client(base)
        self.core = client.CoreV1Api(self.api)
        self._authn = client.AuthenticationV1Api(self.api)
        self._authz = client.AuthorizationV1Api(self.api)
        self._timeout = timeout
        self._lock = threading.Lock()
        self.calls = 0  # API requests made (the scale bench reports it)

    def _count(self) -> None:
        with self._lock:
            self.calls += 1

    def review_self(self, token: str) -> SelfFacts:
        """SelfSubjectReview with ``token``; raises TokenRefused (401) or Unavailable."""
        self._count()
        try:
            result: Any = self._authn.create_self_subject_review(
                client.V1SelfSubjectReview(), _headers=_bearer(token), _request_timeout=self._timeout
            )
        except ApiException as exc:
            raise _classify(exc, "SelfSubjectReview") from None
        except Exception as exc:
            raise Unavailable(f"SelfSubjectReview failed: {type(exc).__name__}") from None
        info = result.status.user_info if result.status is not None else None
        extra = (info.extra if info is not None else None) or {}
        return SelfFacts(
            username=(info.username if info is not None else None) or "",
            pod_name=_first(extra.get(POD_NAME_EXTRA)),
            pod_uid=_first(extra.get(POD_UID_EXTRA)),
            node_name=_first(extra.get(NODE_NAME_EXTRA)),
        )

    def may_read(self, token: str, namespace: str, name: str) -> tuple[bool, str]:
        """SelfSubjectAccessReview: may the token's identity ``list`` exactly this Secret?

        ``list`` (with the name) is what the per-Secret watch starts with. Returns the verdict
        and the server's reason; raises TokenRefused (401) or Unavailable.
        """
        self._count()
        review = client.V1SelfSubjectAccessReview(
            spec=client.V1SelfSubjectAccessReviewSpec(
                resource_attributes=client.V1ResourceAttributes(
                    namespace=namespace, verb="list", group="", resource="secrets", name=name
                )
            )
        )
        try:
            result: Any = self._authz.create_self_subject_access_review(
                review, _headers=_bearer(token), _request_timeout=self._timeout
            )
        except ApiException as exc:
            raise _classify(exc, "SelfSubjectAccessReview") from None
        except Exception as exc:
            raise Unavailable(f"SelfSubjectAccessReview failed: {type(exc).__name__}") from None
        status = result.status
        allowed = bool(status is not None and status.allowed and not status.denied)
        return allowed, str((status.reason if status is not None else "") or "")

    def list_secrets(self, token: str, **kwargs: Any) -> Any:
        """``list_namespaced_secret`` (also called with ``watch=True``) as the token's identity.

        ApiExceptions 401/403 become TokenRefused/Forbidden; others pass through unchanged for
        the informer (410 Gone means re-list).
        """
        self._count()
        try:
            return self.core.list_namespaced_secret(_headers=_bearer(token), **kwargs)
        except ApiException as exc:
            if exc.status in (401, 403):
                raise _classify(exc, "reading the Secret") from None
            raise


def _classify(exc: ApiException, what: str) -> Exception:
    if exc.status == 401:
        return TokenRefused(f"{what}: the API server refused the pod's token (HTTP 401)")
    if exc.status == 403:
        return Forbidden(f"{what}: forbidden (HTTP 403)")
    return Unavailable(f"{what} failed: HTTP {exc.status}")
