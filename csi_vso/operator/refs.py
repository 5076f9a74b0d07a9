"""Resolve ``vaultAuthRef`` / ``vaultConnectionRef`` the way DESIGN.md section 5 says.

A reference with a namespace (``ops/static-auth``) means exactly that object. A bare name is
looked up in the referrer's namespace first, then in the operator's namespace: that is how the
seed article's ``vaultConnectionRef: default`` (in namespace ``default``) finds the
VaultConnection the platform team put in ``vault-secrets-operator``.

Pure: the caller passes a getter over its watch cache.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from csi_vso.operator.api import ObjectRef
from csi_vso.operator.conditions import ReasonedError

Getter = Callable[[str, str], dict[str, Any] | None]


class RefError(ReasonedError, LookupError):
    """A referenced object does not exist (or may not be used); the message names what was tried."""


def candidates(ref: ObjectRef, referrer_namespace: str, operator_namespace: str) -> list[tuple[str, str]]:
    """(namespace, name) pairs to try, in order, without duplicates."""
    if ref.namespace:
        return [(ref.namespace, ref.name)]
    found = [(referrer_namespace, ref.name)]
    if operator_namespace != referrer_namespace:
        found.append((operator_namespace, ref.name))
    return found


def resolve(
    kind: str, ref: ObjectRef, referrer_namespace: str, operator_namespace: str, get: Getter
) -> dict[str, Any]:
    """The referenced object, or RefError naming every place looked."""
    tried = candidates(ref, referrer_namespace, operator_namespace)
    for namespace, name in tried:
        obj = get(namespace, name)
        if obj is not None and not (obj.get("metadata") or {}).get("deletionTimestamp"):
            return obj
    where = " or ".join(f"{ns}/{name}" for ns, name in tried)
    raise RefError(f"{kind}NotFound", f"{kind} {where} not found")
