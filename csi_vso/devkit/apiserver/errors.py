"""API errors as the real API server reports them: ``Status`` objects with reason and code.

Clients branch on ``reason`` and ``code`` (the kubernetes client raises ``ApiException``
with ``status`` = code and the Status JSON as body), so every failure path in the server
raises :class:`ApiError` built by one of the helpers here, and the HTTP layer turns it
into a ``Status`` body in one place. Field errors follow the wording of the real server's
``field.Error`` ("Required value", "Invalid value: ...", "Unsupported value: ...").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]


@dataclass(frozen=True)
class FieldError:
    """One validation problem at a field path (``spec.type``, ``data[bad key]``)."""

    reason: str  # FieldValueRequired, FieldValueInvalid, FieldValueNotSupported, FieldValueForbidden, ...
    field: str
    detail: str = ""
    value: Any = None
    has_value: bool = False

    def body(self) -> str:
        if self.reason == "FieldValueRequired":
            return "Required value" + (f": {self.detail}" if self.detail else "")
        if self.reason == "FieldValueForbidden":
            return "Forbidden" + (f": {self.detail}" if self.detail else "")
        if self.reason == "FieldValueTooLong":
            return "Too long" + (f": {self.detail}" if self.detail else "")
        if self.reason == "FieldValueTooMany":
            return "Too many" + (f": {self.detail}" if self.detail else "")
        if self.reason == "FieldValueDuplicate":
            return f"Duplicate value: {_show(self.value)}"
        if self.reason == "FieldValueNotSupported":
            return f"Unsupported value: {_show(self.value)}" + (f": {self.detail}" if self.detail else "")
        shown = f": {_show(self.value)}" if self.has_value else ""
        return f"Invalid value{shown}" + (f": {self.detail}" if self.detail else "")

    def message(self) -> str:
        return f"{self.field}: {self.body()}" if self.field else self.body()


def required(field: str, detail: str = "") -> FieldError:
    return FieldError("FieldValueRequired", field, detail)


def invalid_value(field: str, value: Any, detail: str) -> FieldError:
    return FieldError("FieldValueInvalid", field, detail, value, True)


def not_supported(field: str, value: Any, supported: list[Any]) -> FieldError:
    detail = "supported values: " + ", ".join(_show(v) for v in supported)
    return FieldError("FieldValueNotSupported", field, detail, value, True)


def forbidden(field: str, detail: str) -> FieldError:
    return FieldError("FieldValueForbidden", field, detail)


def _show(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool | int | float) or value is None:
        return json.dumps(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"))[:200]


class ApiError(Exception):
    """A failed request; :meth:`status` is the body the real server would send."""

    def __init__(
        self, code: int, reason: str, message: str, details: Obj | None = None, *, plain_text: bool = False
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.plain_text = plain_text  # sent as text/plain, not as a Status (e.g. "404 page not found")

    def status(self) -> Obj:
        out: Obj = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            out["details"] = self.details
        return out


def _qualified(plural: str, group: str) -> str:
    return f"{plural}.{group}" if group else plural


def _details(name: str, group: str, kind: str) -> Obj:
    details: Obj = {"name": name} if name else {}
    if group:
        details["group"] = group
    details["kind"] = kind
    return details


def not_found(plural: str, group: str, name: str) -> ApiError:
    return ApiError(
        404, "NotFound", f'{_qualified(plural, group)} "{name}" not found', _details(name, group, plural)
    )


def already_exists(plural: str, group: str, name: str) -> ApiError:
    return ApiError(
        409,
        "AlreadyExists",
        f'{_qualified(plural, group)} "{name}" already exists',
        _details(name, group, plural),
    )


def conflict(plural: str, group: str, name: str, why: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {_qualified(plural, group)} "{name}": {why}',
        _details(name, group, plural),
    )


STALE = "the object has been modified; please apply your changes to the latest version and try again"


def invalid(kind: str, group: str, name: str, errors: list[FieldError]) -> ApiError:
    messages = [e.message() for e in errors]
    joined = messages[0] if len(messages) == 1 else "[" + ", ".join(messages) + "]"
    details = _details(name, group, kind)
    details["causes"] = [{"reason": e.reason, "message": e.body(), "field": e.field} for e in errors]
    qualified = f"{kind}.{group}" if group else kind
    return ApiError(422, "Invalid", f'{qualified} "{name}" is invalid: {joined}', details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def forbidden_request(plural: str, group: str, name: str, why: str) -> ApiError:
    target = f'{_qualified(plural, group)} "{name}"' if name else _qualified(plural, group)
    return ApiError(403, "Forbidden", f"{target} is forbidden: {why}", _details(name, group, plural))


def forbidden_by_authorizer(group: str, resource: str, name: str, why: str) -> ApiError:
    """403 for a request the authorizer refused; an empty ``resource`` is a non-resource path."""
    if not resource:
        return ApiError(403, "Forbidden", f"forbidden: {why}", {})
    return forbidden_request(resource, group, name, why)


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def method_not_allowed(verb: str) -> ApiError:
    """A verb the resource does not serve: the real server's router answers with empty details."""
    del verb  # the real message does not name it
    return ApiError(
        405, "MethodNotAllowed", "the server does not allow this method on the requested resource", {}
    )


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(
        415, "UnsupportedMediaType", f"the body of the request was in an unknown format: {content_type}"
    )


def path_not_found(path: str, served: bool = True) -> ApiError:
    """A path nothing serves.

    Under a served API group version (``/api/v1/nonsense``) the real server's router answers
    with a Status and empty details; anywhere else (``/apis/unknown.group``, ``/foo``) its
    last-resort handler answers in plain text.
    """
    if not served:
        return ApiError(404, "NotFound", "404 page not found", plain_text=True)
    del path
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})
