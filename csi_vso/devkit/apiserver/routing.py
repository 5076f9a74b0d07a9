"""URL paths to API targets (pure): which resource, namespace, name and subresource.

Mirrors the real server's layout: ``/api/v1/...`` for the core group,
``/apis/<group>/<version>/...`` for the others, ``namespaces/<ns>/<plural>/<name>/<sub>``
for namespaced objects, and the discovery and well-known paths.
"""

from __future__ import annotations

from dataclasses import dataclass

from csi_vso.devkit.apiserver.resources import Registry, ResourceType


@dataclass(frozen=True)
class Route:
    kind: str  # "api", "apis", "group", "resources", "version", "health", "openid", "jwks", "object", "none"
    group: str = ""
    version: str = ""
    resource: ResourceType | None = None
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None


NONE = Route("none")


def route(path: str, registry: Registry) -> Route:
    parts = [p for p in path.split("/") if p]
    if not parts:
        return NONE
    if parts[0] in ("healthz", "livez", "readyz"):
        return Route("health")
    if parts == ["version"]:
        return Route("version")
    if parts == [".well-known", "openid-configuration"]:
        return Route("openid")
    if parts == ["openid", "v1", "jwks"]:
        return Route("jwks")
    if parts[0] == "api":
        if len(parts) == 1:
            return Route("api")
        group, version, rest = "", parts[1], parts[2:]
    elif parts[0] == "apis":
        if len(parts) == 1:
            return Route("apis")
        if len(parts) == 2:
            return Route("group", group=parts[1])
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return NONE
    if not rest:
        return Route("resources", group=group, version=version)
    namespace: str | None = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        ns_type = registry.lookup(group, version, "namespaces")
        if not (ns_type is not None and rest[2] in ns_type.subresources and len(rest) == 3):
            namespace, rest = rest[1], rest[2:]
    rt = registry.lookup(group, version, rest[0])
    if rt is None or len(rest) > 3:
        return NONE
    if namespace is not None and not rt.namespaced:
        return NONE
    name = rest[1] if len(rest) >= 2 else None
    sub = rest[2] if len(rest) == 3 else None
    if sub is not None and sub not in rt.subresources:
        return NONE
    return Route("object", group, version, rt, namespace, name, sub)


def under_served_version(path: str, registry: Registry) -> bool:
    """Whether ``path`` lies under a served group version (``/api/v1/...``, ``/apis/g/v/...``).

    The real server answers unknown paths there with a ``Status``; elsewhere in plain text.
    """
    parts = [p for p in path.split("?")[0].split("/") if p]
    if parts[:2] == ["api", "v1"]:
        return True
    if len(parts) >= 3 and parts[0] == "apis":
        return parts[2] in registry.group_versions().get(parts[1], [])
    return False
