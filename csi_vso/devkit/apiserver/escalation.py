"""RBAC escalation prevention (pure): nobody grants, through a role or a binding, more than they hold.

The real server refuses to store a Role/ClusterRole whose rules the writer does not hold
itself (unless the writer may ``escalate`` that role), and a RoleBinding/ClusterRoleBinding
whose referenced role's rules the writer does not hold (unless the writer may ``bind``
that role). "Holds" means every rule, broken down into single verb/group/resource/name
(or URL) rules, is covered by one of the writer's own rules in the object's namespace
(cluster-wide rules only, for cluster objects). An update that only changes what the
garbage collector needs (ownerReferences, finalizers) is not checked. The refusal is a 403
naming the rules that are not held, worded as the real server words it.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from csi_vso.devkit.apiserver import rbac
from csi_vso.devkit.apiserver.rbac import Policy, User
from csi_vso.devkit.apiserver.requestinfo import RequestInfo

Obj = dict[str, Any]

GROUP = "rbac.authorization.k8s.io"
ROLE_KINDS = {"roles": "Role", "clusterroles": "ClusterRole"}
BINDING_KINDS = {"rolebindings": "RoleBinding", "clusterrolebindings": "ClusterRoleBinding"}


def _go_strings(values: list[str]) -> str:
    """Go's %q of a []string: ["a" "b"]."""
    return "[" + " ".join(json.dumps(v) for v in values) + "]"


def _compact(rule: Obj) -> str:
    parts = []
    for key, label in (
        ("apiGroups", "APIGroups"),
        ("resources", "Resources"),
        ("nonResourceURLs", "NonResourceURLs"),
        ("resourceNames", "ResourceNames"),
        ("verbs", "Verbs"),
    ):
        if rule.get(key):
            parts.append(f"{label}:{_go_strings(list(rule[key]))}")
    return "{" + ", ".join(parts) + "}"


def breakdown(rule: Obj) -> list[Obj]:
    """One rule as single-verb, single-group, single-resource, single-name (or URL) rules."""
    out: list[Obj] = []
    verbs = list(rule.get("verbs") or ())
    for group in rule.get("apiGroups") or ():
        for resource in rule.get("resources") or ():
            for verb in verbs:
                names = list(rule.get("resourceNames") or ())
                for name in names or [None]:
                    simple: Obj = {"apiGroups": [group], "resources": [resource], "verbs": [verb]}
                    if name is not None:
                        simple["resourceNames"] = [name]
                    out.append(simple)
    for url in rule.get("nonResourceURLs") or ():
        out.extend({"nonResourceURLs": [url], "verbs": [verb]} for verb in verbs)
    return out


def _resource_covered(owned: list[str], wanted: list[str]) -> bool:
    if "*" in owned:
        return True
    for path in wanted:
        if path in owned:
            continue
        if "/" not in path or "*/" + path.split("/", 1)[1] not in owned:
            return False
    return True


def _url_covered(owned: list[str], wanted: list[str]) -> bool:
    return all(
        any(o == w or (o.endswith("*") and w.startswith(o.rstrip("*"))) for o in owned) for w in wanted
    )


def covers(owner: Obj, rule: Obj) -> bool:
    """Whether ``owner`` grants everything the (simple) ``rule`` grants."""
    owned_verbs = owner.get("verbs") or ()
    owned_groups = owner.get("apiGroups") or ()
    owned_names = owner.get("resourceNames") or ()
    names = rule.get("resourceNames") or ()
    return (
        ("*" in owned_verbs or all(v in owned_verbs for v in rule.get("verbs") or ()))
        and ("*" in owned_groups or all(g in owned_groups for g in rule.get("apiGroups") or ()))
        and _resource_covered(list(owner.get("resources") or ()), list(rule.get("resources") or ()))
        and _url_covered(list(owner.get("nonResourceURLs") or ()), list(rule.get("nonResourceURLs") or ()))
        and (not owned_names if not names else (not owned_names or all(n in owned_names for n in names)))
    )


def not_held(policy: Policy, user: User, namespace: str, rules: list[Obj]) -> tuple[list[Obj], list[str]]:
    """The simple rules of ``rules`` that ``user`` does not hold in ``namespace``, and the
    errors met resolving the user's own rules."""
    visit = rbac.visit_rules(policy, user, namespace)
    owned = [rule for _, rule in visit.rules]
    missing = [
        simple for rule in rules for simple in breakdown(rule) if not any(covers(o, simple) for o in owned)
    ]
    return missing, visit.errors


def _refusal(user: User, missing: list[Obj], errors: list[str]) -> str:
    described = "\n".join(sorted(_compact(rule) for rule in missing))
    message = (
        f"user {json.dumps(user.name)} (groups={_go_strings(list(user.groups))}) is attempting to grant "
        f"RBAC permissions not currently held:\n{described}"
    )
    if errors:
        message += f"; resolution errors: [{', '.join(errors)}]"
    return message


def _only_gc_fields_changed(new: Obj, old: Obj | None) -> bool:
    if old is None:
        return False
    candidate = copy.deepcopy(new)
    meta = candidate.setdefault("metadata", {})
    old_meta = old.get("metadata") or {}
    for key in ("ownerReferences", "finalizers", "resourceVersion", "managedFields", "generation"):
        meta.pop(key, None)
        if key in old_meta:
            meta[key] = old_meta[key]
    return bool(candidate == old)


def check(policy: Policy, user: User, plural: str, namespace: str, new: Obj, old: Obj | None) -> str | None:
    """Why storing ``new`` (replacing ``old``) would escalate ``user``'s privileges, or None.

    ``plural`` is one of roles/clusterroles/rolebindings/clusterrolebindings; ``namespace``
    is the object's ('' for cluster objects)."""
    if rbac.MASTERS in user.groups or _only_gc_fields_changed(new, old):
        return None
    name = str((new.get("metadata") or {}).get("name") or "")
    if plural in ROLE_KINDS:
        escalate = RequestInfo(
            "escalate", True, api_group=GROUP, namespace=namespace, resource=plural, name=name
        )
        if rbac.authorize(policy, user, escalate).allowed:
            return None
        rules = [r for r in new.get("rules") or () if isinstance(r, dict)]
    else:
        ref = new.get("roleRef") or {}
        role_plural = "roles" if ref.get("kind") == "Role" else "clusterroles"
        role_name = str(ref.get("name") or "")
        bind = RequestInfo(
            "bind", True, api_group=GROUP, namespace=namespace, resource=role_plural, name=role_name
        )
        if rbac.authorize(policy, user, bind).allowed:
            return None
        role = policy.role(namespace if role_plural == "roles" else "", role_name)
        if role is None:
            return f"{role_plural}.{GROUP} {json.dumps(role_name)} not found"
        rules = [r for r in role.get("rules") or () if isinstance(r, dict)]
    missing, errors = not_held(policy, user, namespace, rules)
    return _refusal(user, missing, errors) if missing else None
