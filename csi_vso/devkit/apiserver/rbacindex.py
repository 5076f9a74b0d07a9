"""The authorizer's view of the store: bindings indexed by subject, roles by name.

Every request of a non-admin caller is authorized, and a cluster may hold tens of
thousands of RoleBindings (csi-vso's operator writes one per protected Secret), so the
bindings are not scanned: a store listener keeps, per namespace ('' for
ClusterRoleBindings), which bindings name which principal — ``u:<user name>`` for User
and ServiceAccount subjects (a ServiceAccount subject is the user
``system:serviceaccount:<ns>:<name>``) and ``g:<group>`` for Group subjects. A request
then looks up its user's name and groups only. Roles are read from the store directly.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from csi_vso.devkit.apiserver.rbac import SERVICE_ACCOUNT_PREFIX, User
from csi_vso.devkit.apiserver.store import DELETED, Event, Store, Stored

Obj = dict[str, Any]

GROUP = "rbac.authorization.k8s.io"
ROLES = f"roles.{GROUP}"
CLUSTER_ROLES = f"clusterroles.{GROUP}"
ROLE_BINDINGS = f"rolebindings.{GROUP}"
CLUSTER_ROLE_BINDINGS = f"clusterrolebindings.{GROUP}"

Key = tuple[str, str]  # (namespace or '', principal)


def _principal(subject: Any, binding_namespace: str) -> str | None:
    if not isinstance(subject, dict):
        return None
    kind, name = subject.get("kind"), subject.get("name") or ""
    if kind == "User":
        return f"u:{name}"
    if kind == "Group":
        return f"g:{name}"
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return f"u:{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}" if namespace else None
    return None


class StorePolicy:
    """:class:`csi_vso.devkit.apiserver.rbac.Policy` over the server's store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        # (namespace, principal) -> {binding name: (binding, subject)}
        self._index: dict[Key, dict[str, tuple[Obj, Obj]]] = {}
        store.add_listener(self._on_event)

    def _entries(self, stored: Stored, namespace: str) -> list[tuple[Key, Obj]]:
        out: list[tuple[Key, Obj]] = []
        for subject in stored.obj.get("subjects") or ():
            principal = _principal(subject, namespace)
            if principal is not None:
                out.append(((namespace, principal), subject))
        return out

    def _on_event(self, event: Event) -> None:
        if event.storage not in (ROLE_BINDINGS, CLUSTER_ROLE_BINDINGS):
            return
        if event.old is not None:
            name = event.old.meta.get("name", "")
            for key, _ in self._entries(event.old, event.namespace):
                bucket = self._index.get(key)
                if bucket is not None:
                    bucket.pop(name, None)
                    if not bucket:
                        del self._index[key]
        if event.type != DELETED:
            name = event.new.meta.get("name", "")
            for key, subject in self._entries(event.new, event.namespace):
                self._index.setdefault(key, {})[name] = (event.new.obj, subject)

    def bindings_for(self, user: User, namespace: str) -> Iterable[tuple[Obj, Obj]]:
        principals = [f"u:{user.name}", *(f"g:{g}" for g in user.groups)]
        with self.store.lock:
            found: list[tuple[str, tuple[Obj, Obj]]] = []
            for principal in principals:
                found.extend(self._index.get((namespace, principal), {}).items())
        return [pair for _, pair in sorted(found, key=lambda item: item[0])]

    def role(self, namespace: str, name: str) -> Obj | None:
        stored = self.store.get(ROLES if namespace else CLUSTER_ROLES, namespace, name)
        return stored.obj if stored is not None else None
