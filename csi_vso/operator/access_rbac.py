"""The Role and RoleBinding that let exactly the pods a protected Secret's policy allows read it.

In pod-token mode the node's provider reads each mounted Secret with the mounting pod's own
service-account token, so the API server (not only the provider) decides who may read what,
as the Node authorizer does for kubelet. The operator therefore keeps, next to every protected
Secret it writes, in the Secret's namespace:

- a Role ``csi-vso-read-<secret>`` granting ``get``, ``list`` and ``watch`` on ``secrets`` with
  ``resourceNames: [<secret>]`` (a ``list``/``watch`` narrowed by ``fieldSelector
  metadata.name=<secret>`` is authorized against it, as kubelet's own per-Secret watches are);
- a RoleBinding of the same name to exactly the subjects the access policy allows
  (:func:`subjects`).

Both carry the managed-by and owner-uid labels and a controller ownerReference to the custom
resource, so the garbage collector removes them with it. The policy annotations on the Secret
stay authoritative for the provider's own check (defense in depth); the RBAC objects mirror
them. Pure: the builders return wire dicts; :mod:`csi_vso.operator.runtime` applies them.
"""

from __future__ import annotations

import hashlib
from typing import Any

from csi_vso import protected
from csi_vso.operator.api import AccessPolicy
from csi_vso.operator.destination import Owner, owner_reference

RBAC_GROUP = "rbac.authorization.k8s.io"
RBAC_API_VERSION = f"{RBAC_GROUP}/v1"
NAME_PREFIX = "csi-vso-read-"
#: Every service account of the cluster (the policy's ``"*"`` namespace).
ALL_SERVICE_ACCOUNTS = "system:serviceaccounts"
#: Reads the provider makes with a pod's token: one list, then a watch, both narrowed by name.
READ_VERBS = ("get", "list", "watch")
_MAX_NAME = 253


def object_name(secret_name: str) -> str:
    """The Role's and RoleBinding's name for a Secret (hashed when the prefix would overflow)."""
    name = NAME_PREFIX + secret_name
    if len(name) <= _MAX_NAME:
        return name
    return NAME_PREFIX + hashlib.sha256(secret_name.encode()).hexdigest()


def _group(name: str) -> dict[str, str]:
    return {"kind": "Group", "apiGroup": RBAC_GROUP, "name": name}


def _service_account(namespace: str, name: str) -> dict[str, str]:
    return {"kind": "ServiceAccount", "name": name, "namespace": namespace}


def subjects(secret_namespace: str, access: AccessPolicy) -> list[dict[str, str]]:
    """Who the policy lets mount the Secret, as RoleBinding subjects (sorted, no duplicates).

    - no ``allowedServiceAccounts`` (or ``"*"`` in it): the group of every allowed namespace,
      the Secret's own included; ``system:serviceaccounts`` when namespaces are ``"*"``;
    - ``"namespace/name"`` entries: that ServiceAccount, when its namespace is allowed;
    - bare ``"name"`` entries: that ServiceAccount in every allowed namespace. With namespaces
      ``"*"`` RBAC cannot name "this service account in any namespace", so the binding falls
      back to ``system:serviceaccounts`` and the provider's policy check does the narrowing.

    An empty result means nobody: the caller removes the binding.
    """
    any_namespace = protected.WILDCARD in access.namespaces
    namespaces = sorted({secret_namespace, *(n for n in access.namespaces if n != protected.WILDCARD)})
    accounts = access.service_accounts
    if not accounts or protected.WILDCARD in accounts:
        if any_namespace:
            return [_group(ALL_SERVICE_ACCOUNTS)]
        return [_group(f"{ALL_SERVICE_ACCOUNTS}:{ns}") for ns in namespaces]
    found: set[tuple[str, str]] = set()
    for entry in accounts:
        namespace, slash, name = entry.partition("/")
        if slash:
            if name and (any_namespace or namespace in namespaces):
                found.add((namespace, name))
        elif any_namespace:
            return [_group(ALL_SERVICE_ACCOUNTS)]
        else:
            found.update((ns, entry) for ns in namespaces)
    return [_service_account(ns, name) for ns, name in sorted(found)]


def _metadata(name: str, namespace: str, owner: Owner) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": namespace,
        "labels": {
            protected.MANAGED_BY_LABEL: protected.MANAGED_BY_VALUE,
            protected.OWNER_UID_LABEL: owner.uid,
        },
        "ownerReferences": [owner_reference(owner)],
    }


def role(owner: Owner, secret_name: str) -> dict[str, Any]:
    """The Role: read exactly this Secret."""
    return {
        "apiVersion": RBAC_API_VERSION,
        "kind": "Role",
        "metadata": _metadata(object_name(secret_name), owner.namespace, owner),
        "rules": [
            {
                "apiGroups": [""],
                "resources": ["secrets"],
                "resourceNames": [secret_name],
                "verbs": list(READ_VERBS),
            }
        ],
    }


def role_binding(owner: Owner, secret_name: str, bound: list[dict[str, str]]) -> dict[str, Any]:
    """The RoleBinding of :func:`role` to ``bound`` (from :func:`subjects`)."""
    name = object_name(secret_name)
    return {
        "apiVersion": RBAC_API_VERSION,
        "kind": "RoleBinding",
        "metadata": _metadata(name, owner.namespace, owner),
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "Role", "name": name},
        "subjects": bound,
    }


def differs(existing: dict[str, Any], desired: dict[str, Any]) -> bool:
    """True when ``existing`` lacks what ``desired`` says (rules, subjects, our labels, owner)."""
    for field in ("rules", "subjects", "roleRef"):
        if field in desired and existing.get(field) != desired[field]:
            return True
    have = existing.get("metadata") or {}
    want = desired["metadata"]
    labels = have.get("labels") or {}
    if any(labels.get(k) != v for k, v in want["labels"].items()):
        return True
    refs = {r.get("uid") for r in have.get("ownerReferences") or []}
    return not all(r["uid"] in refs for r in want["ownerReferences"])


def owned_by(existing: dict[str, Any], owner_uid: str) -> bool:
    """Whether an existing Role/RoleBinding is ours to change (owner-uid label or ownerReference)."""
    metadata = existing.get("metadata") or {}
    if (metadata.get("labels") or {}).get(protected.OWNER_UID_LABEL) == owner_uid:
        return True
    return any(ref.get("uid") == owner_uid for ref in metadata.get("ownerReferences") or [])
