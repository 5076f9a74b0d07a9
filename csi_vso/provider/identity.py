"""Confirm that the pod a Mount claims to be for exists, as that pod, before anything is served.

The attributes carrying the pod's identity are written by kubelet, but the request as a
whole passes through components (and a socket) we do not control, and the SPC parameters
beside them are pod-controlled. So the identity is checked against the API, in this order:

1. The pod's own token for the API server's audiences (``tokenRequests`` entry with
   ``audience: ""``, key ``""``): a ``SelfSubjectReview`` made *with* that token must answer
   ``system:serviceaccount:<namespace>:<serviceAccount>`` with the extras naming the claimed
   pod (name and UID). Needs no RBAC at all; this is what pod-token mode uses.
2. The token for ``--token-audience`` (``csi-vso``): a TokenReview for that audience, as the
   provider itself (needs ``tokenreviews`` create, which deploy/ no longer grants: for
   clusters that configure it); when the review names no pod, the pod is read from the API.
3. No token: refused (PERMISSION_DENIED) unless ``--insecure-allow-unverified-pods``; then
   the claim rests on the attribute keys alone, checked against the pod in the API. Only
   kubelet sets those keys when the CSIDriver has ``podInfoOnMount``; without it a pod's own
   ``volumeAttributes`` could name another pod, and a UID is no secret.

Kubelet republishes every volume every minute or two, so verdicts are cached, but never past
what backs them: a token's verdict (keyed by its SHA-256, never the token) until the token's
``exp`` or ``token_ttl``, whichever comes first; a pod confirmed without a token for
``pod_ttl``. :meth:`IdentityVerifier.forget_pod` drops every verdict about a pod as soon as the
provider sees it gone (its token refused by the API server, or the pod not found).
Failures are not cached. Tokens never reach a log line, an exception message or a cache key
in the clear.
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
from csi_vso.provider.pod_api import POD_NAME_EXTRA, POD_UID_EXTRA, SelfFacts, TokenRefused, token_expiry


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


class SelfReviewer(Protocol):
    """SelfSubjectReview with a pod's token (:class:`~csi_vso.provider.pod_api.PodAPI`)."""

    def review_self(self, token: str) -> SelfFacts: ...


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
            pod_name=_first(extra.get(POD_NAME_EXTRA)),
            pod_uid=_first(extra.get(POD_UID_EXTRA)),
        )


def _first(values: Sequence[str] | None) -> str | None:
    return values[0] if values else None


class _Lru:
    """A small thread-safe LRU map with per-entry expiry (seconds of ``clock``)."""

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
            if expires <= self._clock():
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return value

    def put(self, key: str, value: object, until: float) -> None:
        with self._lock:
            self._entries[key] = (until, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def drop(self, matches: Callable[[str, object], bool]) -> int:
        with self._lock:
            doomed = [k for k, (_, v) in self._entries.items() if matches(k, v)]
            for key in doomed:
                del self._entries[key]
            return len(doomed)


#: The key of the API-audience token in ``csi.storage.k8s.io/serviceAccount.tokens``.
API_AUDIENCE = ""


class IdentityVerifier:
    """Turns a :class:`PodClaim` into a :class:`VerifiedPod`, or raises PermissionDenied/Unavailable.

    ``require_api_token``: pod-token mode, where the ``""`` token is needed anyway to read the
    Secrets, so a Mount without it is refused up front with a message saying how to fix it.
    ``allow_unverified``: ``--insecure-allow-unverified-pods``.
    """

    def __init__(
        self,
        api: IdentityAPI,
        *,
        audience: str,
        pods: SelfReviewer | None = None,
        require_api_token: bool = False,
        allow_unverified: bool = False,
        token_ttl: float = 300.0,
        pod_ttl: float = 60.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._api = api
        self._pods_api = pods
        self._audience = audience
        self.require_api_token = require_api_token
        self.allow_unverified = allow_unverified
        self._token_ttl = token_ttl
        self._pod_ttl = pod_ttl
        self._clock = clock
        self._pods = _Lru(max_entries, clock)
        self._tokens = _Lru(max_entries, clock)

    def verify(self, claim: PodClaim) -> VerifiedPod:
        pod = VerifiedPod(
            namespace=claim.namespace, name=claim.name, uid=claim.uid, service_account=claim.service_account
        )
        who = f"pod {claim.namespace}/{claim.name}"
        api_token = claim.tokens.get(API_AUDIENCE)
        if api_token is not None and self._pods_api is not None:
            self._self_review(claim, api_token)
            return pod
        if self.require_api_token:
            raise PermissionDenied(
                f"{who}: the Mount carries no service-account token for the API server's audiences "
                '(key ""), which --secret-access=pod-token needs to read Secrets as the pod; the '
                'CSIDriver needs a tokenRequests entry with audience ""'
            )
        token = claim.tokens.get(self._audience)
        if token is None and not self.allow_unverified:
            raise PermissionDenied(
                f'{who}: the Mount carries no service-account token (audience "" or '
                f"{self._audience!r}), so its identity cannot be verified; the CSIDriver needs "
                "tokenRequests (or start the provider with --insecure-allow-unverified-pods)"
            )
        if token is not None and self._token_binds_pod(claim, token):
            return pod
        self._check_pod(claim)
        return pod

    def forget_pod(self, uid: str) -> int:
        """Drop every cached verdict about the pod ``uid`` (it is gone); returns how many."""
        dropped = self._pods.drop(lambda key, _: key == uid)
        dropped += self._tokens.drop(lambda _, facts: getattr(facts, "pod_uid", None) == uid)
        return dropped

    def _until(self, token: str, ttl: float) -> float:
        """How long a verdict on ``token`` may be trusted: never past its ``exp``."""
        now = self._clock()
        exp = token_expiry(token)
        return min(now + ttl, exp if exp is not None else now)

    def _self_review(self, claim: PodClaim, token: str) -> None:
        who = f"pod {claim.namespace}/{claim.name}"
        key = "ssr:" + hashlib.sha256(token.encode()).hexdigest()
        facts = self._tokens.get(key)
        if not isinstance(facts, SelfFacts):
            assert self._pods_api is not None
            try:
                facts = self._pods_api.review_self(token)
            except TokenRefused:
                self.forget_pod(claim.uid)
                raise PermissionDenied(
                    f"{who}: its service-account token was refused by the API server "
                    "(expired, or the pod no longer exists)"
                ) from None
            self._check_self_facts(claim, facts)
            self._tokens.put(key, facts, self._until(token, self._token_ttl))
            return
        self._check_self_facts(claim, facts)

    @staticmethod
    def _check_self_facts(claim: PodClaim, facts: SelfFacts) -> None:
        who = f"pod {claim.namespace}/{claim.name}"
        expected = f"system:serviceaccount:{claim.namespace}:{claim.service_account}"
        if facts.username != expected:
            raise PermissionDenied(
                f"{who}: its token belongs to another identity than service account {claim.service_account!r}"
            )
        if facts.pod_uid is None:
            raise PermissionDenied(
                f"{who}: its token is not bound to a pod (the API server's SelfSubjectReview names "
                "none); kubelet's tokenRequests tokens are"
            )
        if facts.pod_uid != claim.uid or (facts.pod_name is not None and facts.pod_name != claim.name):
            raise PermissionDenied(f"{who}: its token is bound to a different pod")

    def _token_binds_pod(self, claim: PodClaim, token: str) -> bool:
        """Check the token; True when the review also proved which pod it belongs to."""
        who = f"pod {claim.namespace}/{claim.name}"
        key = hashlib.sha256(token.encode()).hexdigest()
        facts = self._tokens.get(key)
        if not isinstance(facts, TokenFacts):
            facts = self._api.review_token(token, self._audience)
            if not facts.authenticated or (facts.audiences and self._audience not in facts.audiences):
                if facts.pod_uid is not None:
                    self.forget_pod(facts.pod_uid)
                raise PermissionDenied(
                    f"{who}: its service-account token for audience {self._audience!r} "
                    "was not accepted by a TokenReview"
                )
            self._tokens.put(key, facts, self._until(token, self._token_ttl))
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
            self.forget_pod(claim.uid)
            raise PermissionDenied(f"{who} does not exist in the API")
        if facts.uid != claim.uid:
            raise PermissionDenied(f"{who} has a different UID in the API than the mount claims")
        if facts.service_account != claim.service_account:
            raise PermissionDenied(
                f"{who} runs as service account {facts.service_account!r} in the API, "
                f"not {claim.service_account!r} as the mount claims"
            )
        self._pods.put(claim.uid, confirmed, self._clock() + self._pod_ttl)
