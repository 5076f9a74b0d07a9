"""Validation and normalization of objects on their way into storage (pure).

What the real server rejects with 422 Invalid (bad names, label keys/values, Secret keys,
missing required fields of the kinds this project uses) or 400 BadRequest (undecodable
``data`` base64), and what it normalizes (Secret ``stringData`` folded into ``data``,
defaults such as Secret ``type: Opaque``). Functions return field errors; the caller turns
them into one Invalid Status, so a client sees every problem at once.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from csi_vso.devkit.apiserver import deployments, errors, rbacvalidation
from csi_vso.devkit.apiserver.errors import FieldError
from csi_vso.devkit.apiserver.resources import ResourceType
from csi_vso.devkit.apiserver.selectors import label_key_problems, label_value_problems

Obj = dict[str, Any]

_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_CONFIG_KEY_RE = re.compile(r"^[-._a-zA-Z0-9]+$")
_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation "
    "is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
    "and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
MAX_SECRET_BYTES = 1024 * 1024


def name_problems(rule: str, name: str) -> list[str]:
    """Why ``name`` is not a valid object name under ``rule`` (subdomain, label, path)."""
    if rule == "path":
        if name in (".", ".."):
            return [f"may not be '{name}'"]
        return [f"may not contain '{c}'" for c in "/%" if c in name]
    if rule == "label":
        problems = [] if _LABEL_RE.match(name) else [_LABEL_MSG]
        if len(name) > 63:
            problems.insert(0, "must be no more than 63 characters")
        return problems
    problems = [] if _SUBDOMAIN_RE.match(name) else [_SUBDOMAIN_MSG]
    if len(name) > 253:
        problems.insert(0, "must be no more than 253 characters")
    return problems


def validate_metadata(rt: ResourceType, obj: Obj) -> list[FieldError]:
    meta = obj.get("metadata") or {}
    out: list[FieldError] = []
    name = meta.get("name", "")
    if not name:
        out.append(errors.required("metadata.name", "name or generateName is required"))
    else:
        for problem in name_problems(rt.name_rule, name):
            out.append(errors.invalid_value("metadata.name", name, problem))
    for key, value in (meta.get("labels") or {}).items():
        for problem in label_key_problems(key):
            out.append(errors.invalid_value("metadata.labels", key, problem))
        if not isinstance(value, str):
            out.append(errors.invalid_value(f"metadata.labels[{key}]", value, "must be a string"))
            continue
        for problem in label_value_problems(value):
            out.append(errors.invalid_value("metadata.labels", value, problem))
    total = 0
    for key, value in (meta.get("annotations") or {}).items():
        for problem in label_key_problems(key):
            out.append(errors.invalid_value("metadata.annotations", key, problem))
        if not isinstance(value, str):
            out.append(errors.invalid_value(f"metadata.annotations[{key}]", value, "must be a string"))
            continue
        total += len(key) + len(value)
    if total > 256 * 1024:
        out.append(FieldError("FieldValueTooLong", "metadata.annotations", "must have at most 262144 bytes"))
    for i, ref in enumerate(meta.get("ownerReferences") or []):
        for field in ("apiVersion", "kind", "name", "uid"):
            if not ref.get(field):
                out.append(errors.required(f"metadata.ownerReferences[{i}].{field}"))
    for i, fin in enumerate(meta.get("finalizers") or []):
        if not isinstance(fin, str) or ("/" not in fin and fin not in _STANDARD_FINALIZERS):
            out.append(
                errors.invalid_value(
                    f"metadata.finalizers[{i}]",
                    fin,
                    "name is neither a standard finalizer name nor is it fully qualified",
                )
            )
    return out


_STANDARD_FINALIZERS = frozenset(
    {"kubernetes", "orphan", "foregroundDeletion", "customresourcecleanup.apiextensions.k8s.io"}
)


def decode_base64_map(kind: str, data: Any) -> None:
    """Raise 400 BadRequest if a ``data``-style map holds something that is not base64."""
    if data is None:
        return
    if not isinstance(data, dict):
        raise errors.bad_request(f'{kind} in version "v1" cannot be handled as a {kind}: data must be a map')
    for value in data.values():
        try:
            if not isinstance(value, str):
                raise binascii.Error("not a string")
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise errors.bad_request(
                f'{kind} in version "v1" cannot be handled as a {kind}: illegal base64 data ({exc})'
            ) from None


def normalize_secret(obj: Obj) -> None:
    """Fold ``stringData`` into ``data`` (it wins on conflicts) and default ``type``."""
    decode_base64_map("Secret", obj.get("data"))
    string_data = obj.pop("stringData", None)
    if string_data:
        data = dict(obj.get("data") or {})
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()
        obj["data"] = data
    obj.setdefault("type", "Opaque")


def _config_keys(field: str, data: Obj | None) -> list[FieldError]:
    out: list[FieldError] = []
    for key in data or {}:
        if not _CONFIG_KEY_RE.match(key) or key in (".", ".."):
            out.append(
                errors.invalid_value(
                    f"{field}[{key}]",
                    key,
                    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' "
                    "(e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is "
                    "'[-._a-zA-Z0-9]+')",
                )
            )
    return out


def _immutable_problems(obj: Obj, old: Obj | None, fields: tuple[str, ...]) -> list[FieldError]:
    """Update checks of an object with ``immutable: true``, in the real server's order."""
    if old is None or not old.get("immutable"):
        return []
    out: list[FieldError] = []
    if not obj.get("immutable"):
        out.append(errors.forbidden("immutable", "field is immutable when `immutable` is set"))
    for field in fields:
        if (old.get(field) or None) != (obj.get(field) or None):
            out.append(errors.forbidden(field, "field is immutable when `immutable` is set"))
    return out


def validate_secret(obj: Obj, old: Obj | None) -> list[FieldError]:
    # Update checks first, then the checks of any Secret (ValidateSecretUpdate's order).
    kind = obj.get("type", "Opaque")
    out: list[FieldError] = []
    if old is not None and old.get("type", "Opaque") != kind:
        out.append(errors.invalid_value("type", kind, "field is immutable"))
    out += _immutable_problems(obj, old, ("data",))
    data = obj.get("data") or {}
    out += _config_keys("data", data)
    size = sum(len(base64.b64decode(v)) for v in data.values())
    if size > MAX_SECRET_BYTES:
        out.append(FieldError("FieldValueTooLong", "data", f"must have at most {MAX_SECRET_BYTES} bytes"))
    if kind == "kubernetes.io/tls":
        out += [errors.required(f"data[{k}]") for k in ("tls.crt", "tls.key") if k not in data]
    elif kind == "kubernetes.io/dockerconfigjson" and ".dockerconfigjson" not in data:
        out.append(errors.required("data[.dockerconfigjson]"))
    elif kind == "kubernetes.io/basic-auth" and "username" not in data and "password" not in data:
        # Either key may be empty, but one of them must be present.
        out += [errors.required("data[username]"), errors.required("data[password]")]
    return out


def validate_configmap(obj: Obj, old: Obj | None) -> list[FieldError]:
    decode_base64_map("ConfigMap", obj.get("binaryData"))
    out = _immutable_problems(obj, old, ("data", "binaryData"))
    return out + _config_keys("data", obj.get("data")) + _config_keys("binaryData", obj.get("binaryData"))


# Pod spec fields an update may change (everything else is immutable once created).
_POD_MUTABLE = ("activeDeadlineSeconds", "terminationGracePeriodSeconds", "tolerations", "schedulingGates")


def _pod_spec_shape(spec: Obj) -> Obj:
    shape = {k: v for k, v in spec.items() if k not in _POD_MUTABLE}
    for key in ("containers", "initContainers"):
        if key in shape:
            shape[key] = [{k: v for k, v in c.items() if k != "image"} for c in shape[key]]
    return shape


def validate_pod_update(obj: Obj, old: Obj) -> list[FieldError]:
    if _pod_spec_shape(obj.get("spec") or {}) != _pod_spec_shape(old.get("spec") or {}):
        return [
            errors.forbidden(
                "spec",
                "pod updates may not change fields other than `spec.containers[*].image`, "
                "`spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, `spec.tolerations` "
                "(only additions to existing tolerations), `spec.terminationGracePeriodSeconds` "
                "(allow it to be set to 1 if it was previously negative)",
            )
        ]
    return []


def validate_pod(obj: Obj) -> list[FieldError]:
    spec = obj.get("spec") or {}
    out: list[FieldError] = []
    containers = spec.get("containers")
    if not containers:
        out.append(errors.required("spec.containers"))
    for i, c in enumerate(containers or []):
        if not c.get("name"):
            out.append(errors.required(f"spec.containers[{i}].name"))
        if not c.get("image"):
            out.append(errors.required(f"spec.containers[{i}].image"))
    return out


def validate_workload(obj: Obj, old: Obj | None) -> list[FieldError]:
    """apps/v1 Deployment/StatefulSet/DaemonSet: selector required, immutable, matching the template."""
    spec = obj.get("spec") or {}
    out: list[FieldError] = []
    selector = spec.get("selector")
    if not selector:
        return [errors.required("spec.selector")]
    if old is not None and (old.get("spec") or {}).get("selector") != selector:
        out.append(errors.invalid_value("spec.selector", selector, "field is immutable"))
    template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    wanted = selector.get("matchLabels") or {}
    if any(template_labels.get(k) != v for k, v in wanted.items()):
        out.append(
            errors.invalid_value(
                "spec.template.metadata.labels",
                template_labels,
                "`selector` does not match template `labels`",
            )
        )
    template_spec = (spec.get("template") or {}).get("spec") or {}
    if not template_spec.get("containers"):
        out.append(errors.required("spec.template.spec.containers"))
    return out


def validate_crd(obj: Obj) -> list[FieldError]:
    spec = obj.get("spec") or {}
    names = spec.get("names") or {}
    out: list[FieldError] = []
    group = spec.get("group", "")
    if not group:
        out.append(errors.required("spec.group"))
    elif "." not in group:
        out.append(errors.invalid_value("spec.group", group, "should be a domain with at least one dot"))
    for field in ("plural", "kind"):
        if not names.get(field):
            out.append(errors.required(f"spec.names.{field}"))
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        out.append(errors.not_supported("spec.scope", spec.get("scope"), ["Cluster", "Namespaced"]))
    versions = spec.get("versions") or []
    if not versions:
        out.append(errors.required("spec.versions"))
    elif sum(1 for v in versions if v.get("storage")) != 1:
        out.append(
            errors.invalid_value(
                "spec.versions", None, "must have exactly one version marked as storage version"
            )
        )
    for i, v in enumerate(versions):
        if not ((v.get("schema") or {}).get("openAPIV3Schema")):
            out.append(errors.required(f"spec.versions[{i}].schema.openAPIV3Schema", "schemas are required"))
    name = (obj.get("metadata") or {}).get("name", "")
    if names.get("plural") and group and name != f"{names['plural']}.{group}":
        out.append(errors.invalid_value("metadata.name", name, 'must be spec.names.plural+"."+spec.group'))
    return out


def validate_kind(rt: ResourceType, obj: Obj, old: Obj | None) -> list[FieldError]:
    """Kind-specific checks beyond metadata (CR schemas are checked in ``schema``)."""
    if rt.group == "" and rt.plural == "secrets":
        return validate_secret(obj, old)
    if rt.group == "" and rt.plural == "configmaps":
        return validate_configmap(obj, old)
    if rt.group == "" and rt.plural == "pods":
        return validate_pod(obj) + (validate_pod_update(obj, old) if old is not None else [])
    if rt.group == "apps":
        problems = validate_workload(obj, old)
        return problems + deployments.validate(obj) if rt.plural == "deployments" else problems
    if rt.group == "apiextensions.k8s.io":
        return validate_crd(obj)
    if rt.group == rbacvalidation.GROUP:
        return rbacvalidation.problems(rt.plural, obj, old)
    return []
