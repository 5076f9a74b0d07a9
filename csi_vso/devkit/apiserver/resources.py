"""The registry of API resources: what the server serves and how each kind behaves.

A :class:`ResourceType` is one (group, version, plural). Built-in kinds are a table here;
every served version of a registered CRD adds one more at runtime. All versions of a
group/plural share one storage (``storage_key``), as in the real server, and objects are
served with the requested version's ``apiVersion`` (CRDs here use conversion "None").
Discovery documents (``/api``, ``/apis``, ``/apis/<g>/<v>``) are built from this registry.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]

_META_FIELDS = frozenset({"metadata.name", "metadata.namespace"})


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()
    subresources: frozenset[str] = frozenset()  # "status", "token", "finalize"
    virtual: bool = False  # create-only review APIs: nothing is stored
    generation: bool = False  # spec changes bump metadata.generation
    unconditional_update: bool = True  # PUT without resourceVersion allowed
    return_deleted_object: bool = False  # DELETE answers with the object, else a Status
    strategic_merge: bool = True  # built-in kinds accept strategic merge patches
    field_selectors: frozenset[str] = _META_FIELDS
    name_rule: str = "subdomain"  # "subdomain", "label" or "path"
    crd_schema: Obj | None = None  # openAPIV3Schema of a custom resource version
    crd_name: str = ""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def storage_key(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources

    def verbs(self) -> list[str]:
        if self.virtual:
            return ["create"]
        return ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


def _t(group: str, version: str, plural: str, kind: str, namespaced: bool = True, **kw: Any) -> ResourceType:
    kw.setdefault("singular", kind.lower())
    return ResourceType(group, version, plural, kind, namespaced, **kw)


_STATUS = frozenset({"status"})

BUILTINS: tuple[ResourceType, ...] = (
    _t(
        "",
        "v1",
        "namespaces",
        "Namespace",
        False,
        short_names=("ns",),
        subresources=frozenset({"status", "finalize"}),
        name_rule="label",
        field_selectors=_META_FIELDS | {"status.phase"},
    ),
    _t("", "v1", "secrets", "Secret", field_selectors=_META_FIELDS | {"type"}),
    _t("", "v1", "configmaps", "ConfigMap", short_names=("cm",)),
    _t("", "v1", "serviceaccounts", "ServiceAccount", short_names=("sa",), subresources=frozenset({"token"})),
    _t(
        "",
        "v1",
        "pods",
        "Pod",
        short_names=("po",),
        subresources=_STATUS,
        return_deleted_object=True,
        field_selectors=_META_FIELDS | {"spec.nodeName", "spec.serviceAccountName", "status.phase"},
    ),
    _t(
        "",
        "v1",
        "events",
        "Event",
        short_names=("ev",),
        field_selectors=_META_FIELDS
        | {
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "reason",
            "type",
        },
    ),
    _t("", "v1", "services", "Service", short_names=("svc",), subresources=_STATUS, name_rule="label"),
    _t("", "v1", "nodes", "Node", False, short_names=("no",), subresources=_STATUS),
    _t(
        "apps",
        "v1",
        "deployments",
        "Deployment",
        short_names=("deploy",),
        subresources=frozenset({"status", "scale"}),
        generation=True,
    ),
    _t(
        "apps",
        "v1",
        "statefulsets",
        "StatefulSet",
        short_names=("sts",),
        subresources=_STATUS,
        generation=True,
    ),
    _t("apps", "v1", "daemonsets", "DaemonSet", short_names=("ds",), subresources=_STATUS, generation=True),
    _t("apps", "v1", "replicasets", "ReplicaSet", short_names=("rs",), subresources=_STATUS, generation=True),
    _t("coordination.k8s.io", "v1", "leases", "Lease"),
    _t(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        False,
        short_names=("crd", "crds"),
        subresources=_STATUS,
        generation=True,
    ),
    _t("rbac.authorization.k8s.io", "v1", "roles", "Role", name_rule="path"),
    _t("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", name_rule="path"),
    _t("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False, name_rule="path"),
    _t(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        "ClusterRoleBinding",
        False,
        name_rule="path",
    ),
    _t("storage.k8s.io", "v1", "csidrivers", "CSIDriver", False),
    _t("authentication.k8s.io", "v1", "tokenreviews", "TokenReview", False, virtual=True),
    _t("authentication.k8s.io", "v1", "selfsubjectreviews", "SelfSubjectReview", False, virtual=True),
    _t(
        "authorization.k8s.io",
        "v1",
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
        False,
        virtual=True,
    ),
    _t("authorization.k8s.io", "v1", "subjectaccessreviews", "SubjectAccessReview", False, virtual=True),
    _t(
        "authorization.k8s.io", "v1", "selfsubjectrulesreviews", "SelfSubjectRulesReview", False, virtual=True
    ),
)

# Preferred order of groups in discovery, like the real server lists them.
_GROUP_ORDER = [
    "",
    "apps",
    "events.k8s.io",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "rbac.authorization.k8s.io",
    "coordination.k8s.io",
    "storage.k8s.io",
    "apiextensions.k8s.io",
]


def types_for_crd(crd: Obj) -> list[ResourceType]:
    """The resource types one CustomResourceDefinition serves (one per served version)."""
    spec = crd.get("spec", {})
    names = spec.get("names", {})
    out: list[ResourceType] = []
    for version in spec.get("versions", []):
        if not version.get("served", True):
            continue
        subresources = version.get("subresources") or {}
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        out.append(
            ResourceType(
                group=spec["group"],
                version=version["name"],
                plural=names["plural"],
                kind=names["kind"],
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                singular=names.get("singular") or names["kind"].lower(),
                short_names=tuple(names.get("shortNames") or ()),
                subresources=frozenset(k for k in ("status",) if k in subresources),
                generation=True,
                unconditional_update=False,
                return_deleted_object=True,
                strategic_merge=False,
                name_rule="path",
                crd_schema=schema,
                crd_name=crd["metadata"]["name"],
            )
        )
    return out


@dataclass
class Registry:
    """Thread-safe lookup of resource types by (group, version, plural)."""

    _types: dict[tuple[str, str, str], ResourceType] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def with_builtins(cls) -> Registry:
        reg = cls()
        for t in BUILTINS:
            reg._types[(t.group, t.version, t.plural)] = t
        return reg

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._types.get((group, version, plural))

    def by_storage(self, storage_key: str) -> list[ResourceType]:
        with self._lock:
            return [t for t in self._types.values() if t.storage_key == storage_key]

    def set_crd(self, crd_name: str, types: list[ResourceType]) -> None:
        """Replace the types served for one CRD (empty list: the CRD is gone)."""
        with self._lock:
            for key in [k for k, t in self._types.items() if t.crd_name == crd_name]:
                del self._types[key]
            for t in types:
                self._types[(t.group, t.version, t.plural)] = t

    def all(self) -> list[ResourceType]:
        with self._lock:
            return list(self._types.values())

    def group_versions(self) -> dict[str, list[str]]:
        """group -> served versions (preferred first), core group excluded."""
        out: dict[str, list[str]] = {}
        for t in self.all():
            if t.group and t.version not in out.setdefault(t.group, []):
                out[t.group].append(t.version)
        for versions in out.values():
            versions.sort(key=_version_priority)
        return out

    def api_versions(self) -> Obj:
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
        }

    def api_group(self, group: str) -> Obj | None:
        versions = self.group_versions().get(group)
        if not versions:
            return None
        gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {"name": group, "versions": gvs, "preferredVersion": gvs[0]}

    def api_group_list(self) -> Obj:
        groups = self.group_versions()
        order = {g: i for i, g in enumerate(_GROUP_ORDER)}
        names = sorted(groups, key=lambda g: (order.get(g, len(order)), g))
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [self.api_group(g) for g in names]}

    def resource_list(self, group: str, version: str) -> Obj | None:
        types = [t for t in self.all() if t.group == group and t.version == version]
        if not types:
            return None
        resources: list[Obj] = []
        for t in sorted(types, key=lambda t: t.plural):
            entry: Obj = {
                "name": t.plural,
                "singularName": t.singular,
                "namespaced": t.namespaced,
                "kind": t.kind,
                "verbs": t.verbs(),
            }
            if t.short_names:
                entry["shortNames"] = list(t.short_names)
            resources.append(entry)
            for sub in sorted(t.subresources):
                sub_kind = {"token": "TokenRequest", "scale": "Scale"}.get(sub, t.kind)
                sub_group = {"token": "authentication.k8s.io", "scale": "autoscaling"}.get(sub)
                sub_entry: Obj = {
                    "name": f"{t.plural}/{sub}",
                    "singularName": "",
                    "namespaced": t.namespaced,
                    "kind": sub_kind,
                    "verbs": ["create"] if sub == "token" else ["get", "patch", "update"],
                }
                if sub_group:
                    sub_entry["group"] = sub_group
                    sub_entry["version"] = "v1"
                resources.append(sub_entry)
        gv = f"{group}/{version}" if group else version
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}


def _version_priority(version: str) -> tuple[int, int, int]:
    """Kubernetes version order: GA > beta > alpha, higher numbers first."""
    import re

    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if not m:
        return (3, 0, 0)
    major = int(m.group(1))
    stage = {"alpha": 2, "beta": 1}.get(m.group(2) or "", 0)
    minor = int(m.group(3) or 0)
    return (stage, -major, -minor)
