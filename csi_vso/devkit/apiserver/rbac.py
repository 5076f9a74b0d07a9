"""RBAC authorization (pure): does any binding of this user grant this request?

Follows the real server's RBAC authorizer rule for rule:

- members of ``system:masters`` are allowed everything before RBAC is consulted (the real
  server's privileged-group authorizer; its decision carries no reason);
- ClusterRoleBindings are visited first, then — for namespaced requests — the
  RoleBindings of the request's namespace (a RoleBinding may reference a Role of its
  namespace or a ClusterRole, whose rules then apply in that namespace only); the first
  rule that allows wins, and its binding is named in the reason
  (``RBAC: allowed by RoleBinding "b/ns" of ClusterRole "view" to Group "g"``);
- a subject applies when it is the user (``User``), one of the user's groups (``Group``),
  or the service account whose user name is ``system:serviceaccount:<ns>:<name>``
  (``ServiceAccount``; its namespace defaults to the binding's);
- a rule allows a resource request when verb, API group, resource (``*``,
  ``<resource>/<subresource>`` or ``*/<subresource>``) and, when it lists
  ``resourceNames``, the request's name all match — a request without a name (``create``,
  ``list`` without a ``metadata.name`` field selector) never matches ``resourceNames``;
  a non-resource request (``/version``, ``/openid/v1/jwks``) matches ``nonResourceURLs``
  exactly or by a trailing ``*`` prefix;
- a binding whose role does not exist contributes an error, which a denial reports as
  ``RBAC: <error>``, as the real server does.

Nothing here touches the store: :class:`Policy` supplies the bindings and roles.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from csi_vso.devkit.apiserver.requestinfo import RequestInfo

Obj = dict[str, Any]

MASTERS = "system:masters"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def info(self) -> Obj:
        out: Obj = {"username": self.name, "groups": list(self.groups)}
        if self.uid:
            out["uid"] = self.uid
        if self.extra:
            out["extra"] = {k: list(self.extra[k]) for k in sorted(self.extra)}
        return out


ANONYMOUS = User("system:anonymous", ("system:unauthenticated",))


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""


class Policy(Protocol):
    """Where bindings and roles come from (the store, in the server)."""

    def bindings_for(self, user: User, namespace: str) -> Iterable[tuple[Obj, Obj]]:
        """(binding, subject) pairs that may apply to ``user``: ClusterRoleBindings when
        ``namespace`` is '', else the RoleBindings of that namespace. Extra pairs are fine."""
        ...

    def role(self, namespace: str, name: str) -> Obj | None:
        """A Role (namespace set) or ClusterRole (namespace '')."""
        ...


def _q(text: str) -> str:
    """Go's %q for the names that appear in messages."""
    return json.dumps(text)


# ------------------------------------------------------------------ matching


def subject_applies(subject: Obj, user: User, binding_namespace: str) -> bool:
    kind = subject.get("kind")
    name = subject.get("name", "")
    if kind == "User":
        return bool(user.name == name)
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return bool(namespace) and user.name == f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}"
    return False


def _resource_matches(rule: Obj, combined: str, subresource: str) -> bool:
    for wanted in rule.get("resources") or ():
        if wanted in ("*", combined):
            return True
        if subresource and wanted == "*/" + subresource:
            return True
    return False


def _url_matches(rule: Obj, path: str) -> bool:
    for url in rule.get("nonResourceURLs") or ():
        if url in ("*", path) or (url.endswith("*") and path.startswith(url[:-1])):
            return True
    return False


def rule_allows(info: RequestInfo, rule: Obj) -> bool:
    verbs = rule.get("verbs") or ()
    if "*" not in verbs and info.verb not in verbs:
        return False
    if not info.resource_request:
        return _url_matches(rule, info.path)
    groups = rule.get("apiGroups") or ()
    if "*" not in groups and info.api_group not in groups:
        return False
    combined = f"{info.resource}/{info.subresource}" if info.subresource else info.resource
    if not _resource_matches(rule, combined, info.subresource):
        return False
    names = rule.get("resourceNames") or ()
    return not names or (bool(info.name) and info.name in names)


# ----------------------------------------------------------------- visiting


def _describe_subject(subject: Obj, binding_namespace: str) -> str:
    kind = subject.get("kind", "")
    name = subject.get("name", "")
    if kind == "ServiceAccount":
        return f"{kind} {_q(name + '/' + (subject.get('namespace') or binding_namespace))}"
    return f"{kind} {_q(name)}"


def _describe(binding: Obj, subject: Obj) -> str:
    meta = binding.get("metadata") or {}
    ref = binding.get("roleRef") or {}
    namespace = meta.get("namespace") or ""
    what = (
        f"RoleBinding {_q(meta.get('name', '') + '/' + namespace)}"
        if namespace
        else (f"ClusterRoleBinding {_q(meta.get('name', ''))}")
    )
    # The real server describes a ClusterRoleBinding's ServiceAccount subject with an empty
    # binding namespace; a RoleBinding's with its own.
    role = f"{ref.get('kind', '')} {_q(ref.get('name', ''))}"
    return f"{what} of {role} to {_describe_subject(subject, namespace)}"


@dataclass
class _Visit:
    """Rules that apply to one user in one namespace, with the bindings that grant them."""

    rules: list[tuple[str, Obj]] = field(default_factory=list)  # (description, rule)
    errors: list[str] = field(default_factory=list)


def _role_rules(policy: Policy, binding: Obj) -> tuple[list[Obj], str]:
    ref = binding.get("roleRef") or {}
    namespace = (binding.get("metadata") or {}).get("namespace") or ""
    name = ref.get("name", "")
    if ref.get("kind") == "Role":
        role = policy.role(namespace, name) if namespace else None
        missing = f"role.rbac.authorization.k8s.io {_q(name)} not found"
    else:
        role = policy.role("", name)
        missing = f"clusterrole.rbac.authorization.k8s.io {_q(name)} not found"
    if role is None:
        return [], missing
    return [r for r in role.get("rules") or () if isinstance(r, dict)], ""


def visit_rules(policy: Policy, user: User, namespace: str) -> _Visit:
    """Every rule granted to ``user`` in ``namespace`` ('' = cluster-wide only), in visit order."""
    out = _Visit()
    scopes = ["", namespace] if namespace else [""]
    for scope in scopes:
        seen: set[tuple[str, str]] = set()
        for binding, subject in policy.bindings_for(user, scope):
            meta = binding.get("metadata") or {}
            key = (meta.get("namespace") or "", meta.get("name", ""))
            if key in seen or not subject_applies(subject, user, key[0]):
                continue
            seen.add(key)
            rules, error = _role_rules(policy, binding)
            if error:
                out.errors.append(error)
            source = _describe(binding, subject)
            out.rules.extend((source, rule) for rule in rules)
    return out


def _aggregate(errors: list[str]) -> str:
    return errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"


def authorize(policy: Policy, user: User, info: RequestInfo) -> Decision:
    if MASTERS in user.groups:
        return Decision(True)
    visit = visit_rules(policy, user, info.namespace if info.resource_request else "")
    for source, rule in visit.rules:
        if rule_allows(info, rule):
            return Decision(True, f"RBAC: allowed by {source}")
    return Decision(False, f"RBAC: {_aggregate(visit.errors)}" if visit.errors else "")


def rules_review(policy: Policy, user: User, namespace: str) -> Obj:
    """The ``status`` of a SelfSubjectRulesReview: what ``user`` may do in ``namespace``."""
    if MASTERS in user.groups:
        resource_rules: list[Obj] = [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]
        nonresource_rules: list[Obj] = [{"verbs": ["*"], "nonResourceURLs": ["*"]}]
    else:
        resource_rules, nonresource_rules = [], []
    visit = visit_rules(policy, user, namespace)
    for _, rule in visit.rules:
        if rule.get("nonResourceURLs"):
            nonresource_rules.append(
                {"verbs": rule.get("verbs") or [], "nonResourceURLs": rule["nonResourceURLs"]}
            )
        else:
            entry: Obj = {"verbs": rule.get("verbs") or []}
            for key in ("apiGroups", "resources", "resourceNames"):
                if rule.get(key):
                    entry[key] = rule[key]
            resource_rules.append(entry)
    status: Obj = {
        "resourceRules": resource_rules,
        "nonResourceRules": nonresource_rules,
        "incomplete": False,
    }
    if visit.errors:
        status["incomplete"] = True
        status["evaluationError"] = _aggregate(visit.errors)
    return status


def forbidden_message(user: User, info: RequestInfo) -> str:
    """The real server's wording of a refusal (before ``: <reason>``)."""
    who = f"User {_q(user.name)}"
    if not info.resource_request:
        return f"{who} cannot {info.verb} path {_q(info.path)}"
    resource = f"{info.resource}/{info.subresource}" if info.subresource else info.resource
    scope = f"in the namespace {_q(info.namespace)}" if info.namespace else "at the cluster scope"
    return f"{who} cannot {info.verb} resource {_q(resource)} in API group {_q(info.api_group)} {scope}"
