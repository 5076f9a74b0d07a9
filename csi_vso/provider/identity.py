"""Confirm that the pod a Mount claims to be for exists, as that pod, before anything is served.

The attributes carrying the pod's identity are written by kubelet, but the request as a
whole passes through components (and a socket) we do not control, and the SPC parameters
beside them are pod-controlled. So the identity is checked against the API:

- When the attributes hold the pod's service-account token for our audience (the
  CSIDriver's ``tokenRequests``), a TokenReview for that audience must accept it, for
  ``system:serviceaccount:<namespace>:<serviceAccount>``; when the review names the pod
  it is bound to (real API servers do, in ``user.extra``), its name and UID must match too.
- Otherwise, or when the review names no pod, the pod is read from the API: it must exist
  with the claimed UID and service account.
- With ``require_token`` (``--require-pod-token``) a Mount without that token is refused.
  Without a token the claim rests on the attribute keys alone, which only kubelet sets when
  the CSIDriver has ``podInfoOnMount``; without it a pod's own ``volumeAttributes`` could
  name another pod, and a UID is no secret. A token is minted by kubelet for the pod itself
  and bound to it, so requiring one makes the identity independent of that configuration.

Kubelet republishes every volume every minute or two, so results are cached: a pod's
namespace, name and service account can never change for one UID, so a confirmed UID is
remembered (bounded LRU); a reviewed token is remembered by its SHA-256 (never the token
itself) for a few minutes. Failures are not cached. Tokens never reach a log line, an
exception message or a cache key in the clear.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from csi_vso.provider.authz import VerifiedPod
from csi_vso.provider.errors import PermissionDenied, Unavailable
from csi_vso.provider.params import PodClaim

_POD_NAME_EXTRA = "authentication.kubernetes.io/pod-name"
_POD_UID_EXTRA = "authentication.kubernetes.io/pod-uid"


@dataclass(frozen=True)
class PodFacts:
    """What the API says about a pod: enough to confirm a claim."""

    uid: str
    service_account: str


@dataclass(frozen=True)
class TokenFacts:
    """A TokenReview's verdict, without the token."""

    authenticated: bool
    username: str
    audiences: tuple[str, ...]
    pod_name: str | None
    pod_uid: str | None


class IdentityAPI(Protocol):
    """The two API calls identity needs; :class:`KubeIdentityAPI` is the real one."""

    def get_pod(self, namespace: str, name: str) -> PodFacts | None: ...
    def review_token(self, token: str, audience: str) -> TokenFacts: ...


class KubeIdentityAPI:
    """:class:`IdentityAPI` over the kubernetes client. Errors become Unavailable, content-free.

    ``str(ApiException)`` includes the response body, and a TokenReview's body echoes the
    token, so exceptions are reduced to their HTTP status here.
    """

    def __init__(self, api: client.ApiClient, *, timeout: float = 10.0) -> None:
        self._core = client.CoreV1Api(api)
        self._auth = client.AuthenticationV1Api(api)
        self._timeout = timeout

    def get_pod(self, namespace: str, name: str) -> PodFacts | None:
        try:
            pod = self._core.read_namespaced_pod(name, namespace, _request_timeout=self._timeout)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise Unavailable(f"reading pod {namespace}/{name} failed: HTTP {exc.status}") from None
        except Exception as exc:
            raise Unavailable(f"reading pod {namespace}/{name} failed: {type(exc).__name__}") from None
        return PodFacts(
            uid=pod.metadata.uid or "", service_account=pod.spec.service_account_name or "default"
        )

    def review_token(self, token: str, audience: str) -> TokenFacts:
        review = client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token, audiences=[audience]))
        try:
            result: Any = self._auth.create_token_review(review, _request_timeout=self._timeout)
        except ApiException as exc:
            raise Unavailable(f"TokenReview failed: HTTP {exc.status}") from None
        except Exception as exc:
            raise Unavailable(f"TokenReview failed: {type(exc).__name__}") from None
        status = result.status
        user = status.user if status is not None else None
        extra = (user.extra if user is not None else None) or {}
        return TokenFacts(
            authenticated=bool(status is not None and status.authenticated),
            username=(user.username if user is not None else None) or "",
            audiences=tuple((status.audiences if status is not None else None) or ()),
            pod_name=_first(extra.get(_POD_NAME_EXTRA)),
            pod_uid=_first(extra.get(_POD_UID_EXTRA)),
        )


def _first(values: Sequence[str] | None) -> str | None:
    return values[0] if values else None


class _Lru:
    """A small thread-safe LRU map with optional per-entry expiry."""

    def __init__(self, max_entries: int, clock: Callable[[], float]) -> None:
        self._entries: OrderedDict[str, tuple[float, object]] = OrderedDict()
        self._max = max_entries
        self._clock = clock
        self._lock = threading.Lock()

    def get(self, key: str) -> object | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            expires, value = entry
            if expires < self._clock():
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return value

    def put(self, key: str, value: object, ttl: float = float("inf")) -> None:
        with self._lock:
            self._entries[key] = (self._clock() + ttl, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)


class IdentityVerifier:
    """Turns a :class:`PodClaim` into a :class:`VerifiedPod`, or raises PermissionDenied/Unavailable."""

    def __init__(
        self,
        api: IdentityAPI,
        *,
        audience: str,
        require_token: bool = False,
        token_ttl: float = 300.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._api = api
        self._audience = audience
        self.require_token = require_token
        self._token_ttl = token_ttl
        self._pods = _Lru(max_entries, clock)
        self._tokens = _Lru(max_entries, clock)

    def verify(self, claim: PodClaim) -> VerifiedPod:
        pod = VerifiedPod(
            namespace=claim.namespace, name=claim.name, uid=claim.uid, service_account=claim.service_account
        )
        token = claim.tokens.get(self._audience)
        if token is None and self.require_token:
            raise PermissionDenied(
                f"pod {claim.namespace}/{claim.name}: the Mount carries no service-account token for "
                f"audience {self._audience!r}, which this provider requires (--require-pod-token); "
                "the CSIDriver needs tokenRequests with that audience"
            )
        if token is not None and self._token_binds_pod(claim, token):
            return pod
        self._check_pod(claim)
        return pod

    def _token_binds_pod(self, claim: PodClaim, token: str) -> bool:
        """Check the token; True when the review also proved which pod it belongs to."""
        who = f"pod {claim.namespace}/{claim.name}"
        key = hashlib.sha256(token.encode()).hexdigest()
        facts = self._tokens.get(key)
        if not isinstance(facts, TokenFacts):
            facts = self._api.review_token(token, self._audience)
            if not facts.authenticated or (facts.audiences and self._audience not in facts.audiences):
                raise PermissionDenied(
                    f"{who}: its service-account token for audience {self._audience!r} "
                    "was not accepted by a TokenReview"
                )
            self._tokens.put(key, facts, self._token_ttl)
        expected = f"system:serviceaccount:{claim.namespace}:{claim.service_account}"
        if facts.username != expected:
            raise PermissionDenied(
                f"{who}: its token belongs to another identity than service account {claim.service_account!r}"
            )
        if facts.pod_uid is None:
            return False
        if facts.pod_uid != claim.uid or (facts.pod_name is not None and facts.pod_name != claim.name):
            raise PermissionDenied(f"{who}: its token is bound to a different pod")
        return True

    def _check_pod(self, claim: PodClaim) -> None:
        who = f"pod {claim.namespace}/{claim.name}"
        confirmed = (claim.namespace, claim.name, claim.service_account)
        if self._pods.get(claim.uid) == confirmed:
            return
        facts = self._api.get_pod(claim.namespace, claim.name)
        if facts is None:
            raise PermissionDenied(f"{who} does not exist in the API")
        if facts.uid != claim.uid:
            raise PermissionDenied(f"{who} has a different UID in the API than the mount claims")
        if facts.service_account != claim.service_account:
            raise PermissionDenied(
                f"{who} runs as service account {facts.service_account!r} in the API, "
                f"not {claim.service_account!r} as the mount claims"
            )
        self._pods.put(claim.uid, confirmed)
