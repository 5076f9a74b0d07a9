"""Defaulting and validation of RBAC objects (pure), as the real server does before storing them.

Now that RBAC is enforced, a malformed rule or binding would silently grant nothing here
and be refused with 422 on a cluster, so the server refuses it too: every rule needs verbs;
a resource rule needs apiGroups and resources; ``nonResourceURLs`` only in ClusterRoles and
never mixed with resources; a binding's ``roleRef`` is in ``rbac.authorization.k8s.io``,
names a Role or ClusterRole (a ClusterRoleBinding only a ClusterRole) and never changes;
subjects are ServiceAccount (namespace required in a ClusterRoleBinding), User or Group.
User and Group subjects default their ``apiGroup``, as the v1 API's defaulting does.
"""

from __future__ import annotations

from typing import Any

from csi_vso.devkit.apiserver import errors
from csi_vso.devkit.apiserver.errors import FieldError

Obj = dict[str, Any]

GROUP = "rbac.authorization.k8s.io"
_SUBJECT_KINDS = ["ServiceAccount", "User", "Group"]


def default(plural: str, obj: Obj) -> None:
    """Fill what the v1 API defaults: ``apiGroup`` of User and Group subjects."""
    if plural not in ("rolebindings", "clusterrolebindings"):
        return
    for subject in obj.get("subjects") or ():
        if (
            isinstance(subject, dict)
            and not subject.get("apiGroup")
            and subject.get("kind") in ("User", "Group")
        ):
            subject["apiGroup"] = GROUP


def _rule_problems(rule: Any, namespaced: bool, path: str) -> list[FieldError]:
    if not isinstance(rule, dict):
        return [errors.invalid_value(path, rule, "must be an object")]
    out: list[FieldError] = []
    if not rule.get("verbs"):
        out.append(errors.required(f"{path}.verbs", "verbs must contain at least one value"))
    urls = rule.get("nonResourceURLs")
    if urls:
        if namespaced:
            out.append(
                errors.invalid_value(
                    f"{path}.nonResourceURLs", urls, "namespaced rules cannot apply to non-resource URLs"
                )
            )
        if rule.get("apiGroups") or rule.get("resources") or rule.get("resourceNames"):
            out.append(
                errors.invalid_value(
                    f"{path}.nonResourceURLs",
                    urls,
                    "rules cannot apply to both regular resources and non-resource URLs",
                )
            )
        return out
    if not rule.get("apiGroups"):
        out.append(errors.required(f"{path}.apiGroups", "resource rules must supply at least one api group"))
    if not rule.get("resources"):
        out.append(errors.required(f"{path}.resources", "resource rules must supply at least one resource"))
    return out


def _subject_problems(subject: Any, namespaced: bool, path: str) -> list[FieldError]:
    if not isinstance(subject, dict):
        return [errors.invalid_value(path, subject, "must be an object")]
    out: list[FieldError] = []
    if not subject.get("name"):
        out.append(errors.required(f"{path}.name"))
    kind = subject.get("kind")
    group = subject.get("apiGroup") or ""
    if kind == "ServiceAccount":
        if group:
            out.append(errors.not_supported(f"{path}.apiGroup", group, [""]))
        if not namespaced and not subject.get("namespace"):
            out.append(errors.required(f"{path}.namespace"))
    elif kind in ("User", "Group"):
        if group != GROUP:
            out.append(errors.not_supported(f"{path}.apiGroup", group, [GROUP]))
    else:
        out.append(errors.not_supported(f"{path}.kind", kind, list(_SUBJECT_KINDS)))
    return out


def _binding_problems(plural: str, obj: Obj, old: Obj | None) -> list[FieldError]:
    out: list[FieldError] = []
    ref = obj.get("roleRef")
    ref = ref if isinstance(ref, dict) else {}
    if ref.get("apiGroup") != GROUP:
        out.append(errors.not_supported("roleRef.apiGroup", ref.get("apiGroup") or "", [GROUP]))
    kinds = ["ClusterRole"] if plural == "clusterrolebindings" else ["Role", "ClusterRole"]
    if ref.get("kind") not in kinds:
        out.append(errors.not_supported("roleRef.kind", ref.get("kind") or "", kinds))
    if not ref.get("name"):
        out.append(errors.required("roleRef.name"))
    namespaced = plural == "rolebindings"
    for i, subject in enumerate(obj.get("subjects") or ()):
        out.extend(_subject_problems(subject, namespaced, f"subjects[{i}]"))
    if old is not None and (old.get("roleRef") or {}) != ref:
        out.append(errors.invalid_value("roleRef", ref, "cannot change roleRef"))
    return out


def problems(plural: str, obj: Obj, old: Obj | None) -> list[FieldError]:
    """Why the real server would refuse to store this Role/ClusterRole/(Cluster)RoleBinding."""
    if plural in ("roles", "clusterroles"):
        namespaced = plural == "roles"
        rules = obj.get("rules") or []
        return [p for i, rule in enumerate(rules) for p in _rule_problems(rule, namespaced, f"rules[{i}]")]
    if plural in ("rolebindings", "clusterrolebindings"):
        return _binding_problems(plural, obj, old)
    return []
