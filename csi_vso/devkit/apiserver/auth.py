"""Who is calling, and the authentication APIs: TokenRequest, TokenReview, SelfSubjectReview.

Authentication: a bearer token is either in the server's static token list (user name +
groups, so tests can act as different users) or a service-account JWT this server minted
that is still valid (signature, time window, service account — and bound pod — still
present with the same uid) and carries the API server's own audience, as on a real server
(a token minted for "vault" authenticates nothing here; it can only be reviewed).
A request without a bearer token is made by ``system:anonymous`` (group
``system:unauthenticated``), as on a real server with anonymous authentication on; what
any caller may do is then up to RBAC (``rbac``). A bound token's pod and node become the
user extras ``authentication.kubernetes.io/pod-name``/``pod-uid``/``node-name``/``node-uid``
beside ``credential-id`` (``JTI=<jti>``), in TokenReview, SelfSubjectReview and RBAC alike.

TokenReview validates exactly the tokens TokenRequest mints, as the real server does for
bound tokens: the token's audiences must intersect the requested ones (default: the API
server's own audience), it must not be expired, and the service account and bound pod
must still exist with the uids recorded in the token.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from csi_vso.devkit.apiserver import errors
from csi_vso.devkit.apiserver.errors import ApiError
from csi_vso.devkit.apiserver.operations import now_rfc3339
from csi_vso.devkit.apiserver.rbac import ANONYMOUS, User
from csi_vso.devkit.apiserver.store import Store
from csi_vso.devkit.apiserver.tokens import BoundObject, Claims, TokenInvalid, TokenIssuer

Obj = dict[str, Any]

#: boundObjectRef kinds a TokenRequest accepts, and where each is stored.
_BINDABLE = {"Pod": "pods", "Secret": "secrets", "Node": "nodes"}

MIN_EXPIRATION_SECONDS = 600
DEFAULT_EXPIRATION_SECONDS = 3600


def _add_extras(extra: dict[str, tuple[str, ...]], kind: str, bound: Obj) -> None:
    """The user extras a real server derives from a bound token's pod and node claims."""
    if kind in ("pod", "node"):
        extra[f"authentication.kubernetes.io/{kind}-name"] = (str(bound.get("name", "")),)
        extra[f"authentication.kubernetes.io/{kind}-uid"] = (str(bound.get("uid", "")),)


def _audiences(claims: Claims) -> list[str]:
    aud = claims.get("aud")
    return [aud] if isinstance(aud, str) else list(aud or [])


ADMIN = User("admin", ("system:masters", "system:authenticated"))


class Authenticator:
    def __init__(self, store: Store, issuer: TokenIssuer, static: Mapping[str, User]) -> None:
        self.store = store
        self.issuer = issuer
        self.static = dict(static)
        self.api_audiences = [issuer.issuer]

    def authenticate(self, authorization: str | None) -> User | None:
        """The caller: ``ANONYMOUS`` when no bearer token is presented (the real server's
        anonymous authentication), None when one is presented and not valid (401)."""
        if not authorization or not authorization.startswith("Bearer "):
            return ANONYMOUS
        token = authorization[len("Bearer ") :].strip()
        if not token:
            return ANONYMOUS
        user = self.static.get(token)
        if user is not None:
            return user
        try:
            claims = self.issuer.verify(token)
            # As a real server: a token for another audience (e.g. "vault") is not a credential
            # for this API; it only ever reaches it as the subject of a TokenReview.
            if not set(_audiences(claims)) & set(self.api_audiences):
                return None
            return self._service_account_user(claims)
        except TokenInvalid:
            return None

    def _service_account_user(self, claims: Claims) -> User:
        k8s = claims["kubernetes.io"]
        namespace = k8s.get("namespace", "")
        sa = k8s["serviceaccount"]
        stored = self.store.get("serviceaccounts", namespace, sa.get("name", ""))
        if stored is None:
            raise TokenInvalid(f"service account {namespace}/{sa.get('name')} has been deleted")
        if stored.meta.get("uid") != sa.get("uid"):
            raise TokenInvalid(
                f"service account UID ({sa.get('uid')}) does not match "
                f"service account {namespace}/{sa.get('name')}"
            )
        extra: dict[str, tuple[str, ...]] = {
            "authentication.kubernetes.io/credential-id": (f"JTI={claims.get('jti')}",)
        }
        for kind, storage in (("pod", "pods"), ("secret", "secrets"), ("node", "nodes")):
            bound = k8s.get(kind)
            if not isinstance(bound, dict):
                continue
            if kind == "node" and isinstance(k8s.get("pod"), dict):
                # A pod-bound token names its pod's node for information only; the real server
                # checks the node only when the token is bound to the Node itself.
                _add_extras(extra, kind, bound)
                continue
            where = "" if kind == "node" else namespace
            obj = self.store.get(storage, where, bound.get("name", ""))
            shown = f"{kind} {where}/{bound.get('name')}" if where else f"{kind} {bound.get('name')}"
            if obj is None:
                raise TokenInvalid(f"{shown} has been deleted")
            if obj.meta.get("uid") != bound.get("uid"):
                raise TokenInvalid(f"{kind} UID ({bound.get('uid')}) does not match {shown}")
            _add_extras(extra, kind, bound)
        return User(
            claims["sub"],
            ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"),
            sa.get("uid", ""),
            extra,
        )

    # ----------------------------------------------------------- TokenRequest

    def token_request(self, namespace: str, name: str, body: Any) -> Obj:
        """POST serviceaccounts/{name}/token."""
        if not isinstance(body, dict):
            raise errors.bad_request("TokenRequest body must be a JSON object")
        sa = self.store.get("serviceaccounts", namespace, name)
        if sa is None:
            raise errors.not_found("serviceaccounts", "", name)
        spec = body.get("spec") or {}
        audiences = list(spec.get("audiences") or self.api_audiences)
        seconds = spec.get("expirationSeconds")
        seconds = DEFAULT_EXPIRATION_SECONDS if seconds is None else seconds
        problems = []
        if not isinstance(seconds, int) or seconds < MIN_EXPIRATION_SECONDS:
            problems.append(
                errors.invalid_value(
                    "spec.expirationSeconds", seconds, "may not specify a duration less than 10 minutes"
                )
            )
        elif seconds > 2**32:
            problems.append(
                errors.invalid_value(
                    "spec.expirationSeconds", seconds, "may not specify a duration larger than 2^32 seconds"
                )
            )
        bound = node = None
        ref = spec.get("boundObjectRef")
        if ref:
            kind = ref.get("kind")
            api_version = ref.get("apiVersion") or "v1"
            if kind not in _BINDABLE or api_version != "v1":
                group_version = api_version if "/" in api_version else f"/{api_version}"
                raise errors.bad_request(f"cannot bind token to object of type {group_version}, Kind={kind}")
            if not ref.get("name"):
                problems.append(errors.required("spec.boundObjectRef.name"))
            else:
                bound = self._bind_target(namespace, name, kind, ref)
                node = self._scheduled_node(namespace, bound)
        if problems:
            raise errors.invalid("TokenRequest", "authentication.k8s.io", name, problems)
        token, exp = self.issuer.issue(
            namespace=namespace,
            service_account=name,
            service_account_uid=sa.meta["uid"],
            audiences=audiences,
            expiration_seconds=seconds,
            bound=bound,
            node=node,
        )
        out_spec: Obj = {"audiences": audiences, "expirationSeconds": seconds, "boundObjectRef": None}
        if bound is not None:
            out_spec["boundObjectRef"] = {
                "kind": bound.kind,
                "apiVersion": "v1",
                "name": bound.name,
                "uid": bound.uid,
            }
        return {
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "creationTimestamp": now_rfc3339(self.issuer.clock),
            },
            "spec": out_spec,
            "status": {"token": token, "expirationTimestamp": now_rfc3339(lambda: float(exp))},
        }

    def _bind_target(self, namespace: str, service_account: str, kind: str, ref: Obj) -> BoundObject:
        """The object a TokenRequest binds to, checked as the real server checks it."""
        storage = _BINDABLE[kind]
        where = "" if kind == "Node" else namespace
        target = self.store.get(storage, where, ref["name"])
        if target is None:
            raise errors.not_found(storage, "", ref["name"])
        if kind == "Pod" and (target.obj.get("spec") or {}).get("serviceAccountName") != service_account:
            raise errors.bad_request(
                f'cannot bind token for serviceaccount "{service_account}" '
                "to pod running with different serviceaccount name."
            )
        if ref.get("uid") and ref["uid"] != target.meta["uid"]:
            # The real server names the bound object's kind and name here, not the SA.
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {kind} "{ref["name"]}": the UID in the bound '
                f"object reference ({ref['uid']}) does not match the UID in record. "
                "The object might have been deleted and then recreated",
                {"name": ref["name"], "kind": kind},
            )
        return BoundObject(kind, ref["name"], target.meta["uid"])

    def _scheduled_node(self, namespace: str, bound: BoundObject) -> BoundObject | None:
        """The Node a bound pod is scheduled to, when that Node exists (else no node claim,
        and no error: the real server does not fail the TokenRequest for it)."""
        if bound.kind != "Pod":
            return None
        pod = self.store.get("pods", namespace, bound.name)
        node_name = ((pod.obj.get("spec") or {}).get("nodeName") if pod is not None else "") or ""
        node = self.store.get("nodes", "", node_name) if node_name else None
        return BoundObject("Node", node_name, node.meta["uid"]) if node is not None else None

    # ------------------------------------------------------------ TokenReview

    def token_review(self, body: Any) -> Obj:
        if not isinstance(body, dict):
            raise errors.bad_request("TokenReview body must be a JSON object")
        spec = body.get("spec") or {}
        token = spec.get("token") or ""
        wanted = list(spec.get("audiences") or self.api_audiences)
        status: Obj
        static_user = self.static.get(token)
        if static_user is not None and set(wanted) & set(self.api_audiences):
            status = {
                "authenticated": True,
                "user": static_user.info(),
                "audiences": [a for a in wanted if a in self.api_audiences],
            }
        else:
            status = self._review_jwt(token, wanted)
        return {
            "kind": "TokenReview",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": None},
            "spec": {"token": token, "audiences": list(spec.get("audiences") or [])}
            if spec.get("audiences")
            else {"token": token},
            "status": status,
        }

    def _review_jwt(self, token: str, wanted: list[str]) -> Obj:
        try:
            claims = self.issuer.verify(token)
            token_aud = _audiences(claims)
            matched = [a for a in wanted if a in token_aud]
            if not matched:
                raise TokenInvalid(
                    f"token audiences {token_aud!r} is invalid for the target audiences {wanted!r}"
                )
            user = self._service_account_user(claims)
        except TokenInvalid as exc:
            return {"user": {}, "error": f"[invalid bearer token, {exc}]"}
        return {"authenticated": True, "user": user.info(), "audiences": matched}

    # ------------------------------------------------------ SelfSubjectReview

    @staticmethod
    def self_subject_review(user: User) -> Obj:
        return {
            "kind": "SelfSubjectReview",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": now_rfc3339(time.time)},
            "status": {"userInfo": user.info()},
        }
