"""The authorization review APIs, answered by the same authorizer that guards every request.

- SubjectAccessReview: may ``spec.user``/``spec.groups`` do ``resourceAttributes`` (or
  ``nonResourceAttributes``)? Needs ``create subjectaccessreviews`` (``system:auth-delegator``).
- SelfSubjectAccessReview: the same question about the caller (``system:basic-user``).
- SelfSubjectRulesReview: every rule the caller holds in ``spec.namespace``.

The answer's ``status`` is what the real server's RBAC authorizer says: ``allowed`` and, when
a binding allowed it, the reason naming that binding (``RBAC: allowed by ...``).
"""

from __future__ import annotations

from typing import Any

from csi_vso.devkit.apiserver import errors, rbac
from csi_vso.devkit.apiserver.rbac import Policy, User
from csi_vso.devkit.apiserver.requestinfo import RequestInfo

Obj = dict[str, Any]

GROUP = "authorization.k8s.io"


def _spec(kind: str, body: Any) -> Obj:
    if not isinstance(body, dict):
        raise errors.bad_request(f"{kind} body must be a JSON object")
    spec = body.get("spec")
    return spec if isinstance(spec, dict) else {}


def _attributes(kind: str, spec: Obj, problems: list[errors.FieldError]) -> RequestInfo | None:
    resource = spec.get("resourceAttributes")
    nonresource = spec.get("nonResourceAttributes")
    if resource is not None and nonresource is not None:
        problems.append(
            errors.invalid_value(
                "spec.nonResourceAttributes",
                nonresource,
                "cannot be specified in combination with resourceAttributes",
            )
        )
        return None
    if isinstance(resource, dict):
        return RequestInfo(
            verb=str(resource.get("verb") or ""),
            resource_request=True,
            api_group=str(resource.get("group") or ""),
            api_version=str(resource.get("version") or ""),
            namespace=str(resource.get("namespace") or ""),
            resource=str(resource.get("resource") or ""),
            subresource=str(resource.get("subresource") or ""),
            name=str(resource.get("name") or ""),
        )
    if isinstance(nonresource, dict):
        return RequestInfo(
            verb=str(nonresource.get("verb") or ""),
            resource_request=False,
            path=str(nonresource.get("path") or ""),
        )
    problems.append(
        errors.invalid_value(
            "spec.resourceAttributes",
            None,
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        )
    )
    return None


def _answer(kind: str, spec: Obj, decision: rbac.Decision) -> Obj:
    status: Obj = {"allowed": decision.allowed}
    if decision.reason:
        status["reason"] = decision.reason
    return {
        "kind": kind,
        "apiVersion": f"{GROUP}/v1",
        "metadata": {"creationTimestamp": None},
        "spec": spec,
        "status": status,
    }


def subject_access_review(policy: Policy, body: Any) -> Obj:
    kind = "SubjectAccessReview"
    spec = _spec(kind, body)
    problems: list[errors.FieldError] = []
    info = _attributes(kind, spec, problems)
    user_name = str(spec.get("user") or "")
    groups = tuple(str(g) for g in spec.get("groups") or ())
    if not user_name and not groups:
        problems.append(
            errors.invalid_value("spec.user", user_name, "at least one of user or group must be specified")
        )
    if problems or info is None:
        raise errors.invalid(kind, GROUP, "", problems)
    extra = {str(k): tuple(str(x) for x in v or ()) for k, v in (spec.get("extra") or {}).items()}
    user = User(user_name, groups, str(spec.get("uid") or ""), extra)
    return _answer(kind, spec, rbac.authorize(policy, user, info))


def self_subject_access_review(policy: Policy, user: User, body: Any) -> Obj:
    kind = "SelfSubjectAccessReview"
    spec = _spec(kind, body)
    problems: list[errors.FieldError] = []
    info = _attributes(kind, spec, problems)
    if problems or info is None:
        raise errors.invalid(kind, GROUP, "", problems)
    return _answer(kind, spec, rbac.authorize(policy, user, info))


def self_subject_rules_review(policy: Policy, user: User, body: Any) -> Obj:
    spec = _spec("SelfSubjectRulesReview", body)
    namespace = str(spec.get("namespace") or "")
    if not namespace:
        raise errors.bad_request("no namespace on request")
    return {
        "kind": "SelfSubjectRulesReview",
        "apiVersion": f"{GROUP}/v1",
        "metadata": {"creationTimestamp": None},
        "spec": {"namespace": namespace},
        "status": rbac.rules_review(policy, user, namespace),
    }
