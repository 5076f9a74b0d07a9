"""What a request asks for, in the authorizer's terms (pure): verb, resource, namespace, name.

This mirrors the real server's request-info parsing, which runs *before* routing and so
does not depend on what the server serves: a path under ``/api/<v>/`` or
``/apis/<g>/<v>/`` with at least a resource is a resource request, anything else (discovery
documents, ``/version``, ``/healthz``, ``/openid/v1/jwks``) is a non-resource request whose
verb is the lower-case HTTP method. For resource requests:

- the verb comes from the method (POST create, GET get, PUT update, PATCH patch, DELETE
  delete); a GET without a name is ``list`` or, with ``watch=true``, ``watch``; a DELETE
  without a name is ``deletecollection``;
- ``namespaces/<ns>/<resource>/...`` sets the namespace; a request on a Namespace object
  itself (``namespaces/<ns>``, ``namespaces/<ns>/status``) is *in* that namespace too;
- a ``list``/``watch`` whose field selector pins ``metadata.name`` carries that name, so
  RBAC ``resourceNames`` can grant a single-object list/watch (kubelet's per-Secret
  watches rely on it); ``create`` and ``deletecollection`` never carry a name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

_METHOD_VERBS = {
    "POST": "create",
    "GET": "get",
    "HEAD": "get",
    "PUT": "update",
    "PATCH": "patch",
    "DELETE": "delete",
}
_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})


@dataclass(frozen=True)
class RequestInfo:
    """The request's attributes as the authorizer sees them (``path`` only for non-resource)."""

    verb: str
    resource_request: bool
    path: str = ""
    api_group: str = ""
    api_version: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""


def _selected_name(field_selector: str) -> str:
    """The name a ``metadata.name=<n>`` (or ``==``) term pins, or ''."""
    for term in field_selector.split(","):
        key, op, value = term.partition("==") if "==" in term else term.partition("=")
        if op and not key.endswith("!") and key.strip() == "metadata.name":
            name = value.strip()
            valid = name not in (".", "..") and "/" not in name and "%" not in name
            return name if valid else ""
    return ""


def request_info(method: str, path: str, query: Mapping[str, str]) -> RequestInfo:
    parts = [p for p in path.strip("/").split("/")]
    verb = method.lower()
    nonresource = RequestInfo(verb=verb, resource_request=False, path=path)
    if len(parts) < 3 or parts[0] not in ("api", "apis"):
        return nonresource
    prefix, parts = parts[0], parts[1:]
    group = ""
    if prefix == "apis":
        if len(parts) < 3:
            return nonresource
        group, parts = parts[0], parts[1:]
    version, parts = parts[0], parts[1:]
    verb = _METHOD_VERBS.get(method, "")
    namespace = ""
    if parts[0] == "namespaces" and len(parts) > 1:
        namespace = parts[1]
        if len(parts) > 2 and parts[2] not in _NAMESPACE_SUBRESOURCES:
            parts = parts[2:]
    resource = parts[0]
    name = parts[1] if len(parts) >= 2 else ""
    subresource = parts[2] if len(parts) >= 3 else ""
    if not name and verb == "get":
        verb = "watch" if query.get("watch") in _TRUE else "list"
        name = _selected_name(query.get("fieldSelector") or "")
    if not name and verb == "delete":
        verb = "deletecollection"
    return RequestInfo(
        verb=verb,
        resource_request=True,
        api_group=group,
        api_version=version,
        namespace=namespace,
        resource=resource,
        subresource=subresource,
        name=name,
    )


def accepts(accept: str | None, media_type: str) -> bool:
    """Whether an ``Accept`` header admits ``media_type`` (no header admits anything)."""
    if not accept or not accept.strip():
        return True
    major = media_type.split("/", 1)[0]
    for item in accept.split(","):
        wanted = item.split(";", 1)[0].strip().lower()
        if wanted in ("*/*", f"{major}/*", media_type):
            return True
    return False
