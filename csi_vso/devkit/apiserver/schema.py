"""A small OpenAPI v3 (structural schema) validator for custom resources (pure).

What the real server does with a CRD version's ``openAPIV3Schema`` on every write of a
custom resource, in the same order: drop ``null`` values of non-nullable fields (or
default them), apply ``default`` values, prune fields the schema does not declare
(unless ``x-kubernetes-preserve-unknown-fields`` or ``additionalProperties`` keeps them),
then validate ``type``, ``required``, ``enum``, ``pattern``, length/size/range bounds,
``nullable``, ``x-kubernetes-int-or-string`` and ``anyOf``/``oneOf``/``allOf``/``not``.
``apiVersion``, ``kind`` and ``metadata`` at the root are never pruned. Errors read like
the real server's ("spec.type: Unsupported value ...").
"""

from __future__ import annotations

import copy
import re
from functools import lru_cache
from typing import Any

from csi_vso.devkit.apiserver import errors
from csi_vso.devkit.apiserver.errors import FieldError

Schema = dict[str, Any]

_ROOT_IMPLICIT = ("apiVersion", "kind", "metadata")


@lru_cache(maxsize=512)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_ok(expected: str, value: Any) -> bool:
    actual = _type_name(value)
    if expected == "number":
        return actual in ("integer", "number")
    if expected == "integer" and isinstance(value, float) and value.is_integer():
        return True
    return actual == expected


def apply_schema(schema: Schema | None, obj: dict[str, Any]) -> tuple[dict[str, Any], list[FieldError]]:
    """Default, prune and validate a whole custom resource; returns the new object and errors."""
    if not schema:
        return obj, []
    out: list[FieldError] = []
    root = {k: v for k, v in obj.items() if k not in _ROOT_IMPLICIT}
    processed = _walk(schema, root, "", out, root=True)
    result = {k: obj[k] for k in _ROOT_IMPLICIT if k in obj}
    if isinstance(processed, dict):
        result.update(processed)
    return result, out


def _type_invalid(field: str, actual: str, detail: str) -> FieldError:
    """A wrong JSON type: the real server reports it as FieldValueTypeInvalid."""
    return FieldError("FieldValueTypeInvalid", field, detail, actual, True)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _walk(schema: Schema, value: Any, path: str, out: list[FieldError], root: bool = False) -> Any:
    shown = path or "<root>"
    if value is None:
        if schema.get("nullable"):
            return None
        if schema.get("type"):
            out.append(
                _type_invalid(shown, "null", f'{shown} in body must be of type {schema["type"]}: "null"')
            )
        return None
    int_or_string = schema.get("x-kubernetes-int-or-string")
    expected = schema.get("type")
    if int_or_string:
        if not isinstance(value, int | str) or isinstance(value, bool):
            out.append(
                _type_invalid(
                    shown,
                    _type_name(value),
                    f'{shown} in body must be of type integer or string: "{_type_name(value)}"',
                )
            )
            return value
    elif expected and not _type_ok(expected, value):
        actual = _type_name(value)
        out.append(_type_invalid(shown, actual, f'{shown} in body must be of type {expected}: "{actual}"'))
        return value

    if isinstance(value, dict):
        value = _walk_object(schema, value, path, out, root)
    elif isinstance(value, list):
        value = _walk_array(schema, value, path, out)
    _check_scalar(schema, value, shown, out)
    _check_combinators(schema, value, path, out)
    return value


def _walk_object(
    schema: Schema, value: dict[str, Any], path: str, out: list[FieldError], root: bool
) -> dict[str, Any]:
    props: dict[str, Schema] = schema.get("properties") or {}
    additional = schema.get("additionalProperties")
    preserve = schema.get("x-kubernetes-preserve-unknown-fields") is True
    embedded = schema.get("x-kubernetes-embedded-resource") is True
    result: dict[str, Any] = {}
    for key, sub in props.items():
        if key not in value and "default" in sub:
            result[key] = copy.deepcopy(sub["default"])
    for key, item in value.items():
        field_schema = props.get(key, additional if isinstance(additional, dict) else None)
        if item is None and field_schema is not None and not field_schema.get("nullable"):
            # A null the schema does not allow is defaulted when it can be, else dropped
            # (never an error), as the real server does before validating.
            if "default" in field_schema:
                default = copy.deepcopy(field_schema["default"])
                result[key] = _walk(field_schema, default, _join(path, key), out)
            continue
        if key in props:
            result[key] = _walk(props[key], item, _join(path, key), out)
        elif isinstance(additional, dict):
            result[key] = _walk(additional, item, _join(path, key), out)
        elif _keeps_unknown(schema, props, additional, key, preserve, embedded):
            result[key] = item
        # else: pruned, as the real server drops unknown fields
    for key in list(result):
        if key in props and key not in value and "default" in props[key]:
            result[key] = _walk(props[key], result[key], _join(path, key), out)
    for key in schema.get("required") or []:
        if key not in result:
            out.append(errors.required(_join(path, key)))
    n = len(result)
    if "maxProperties" in schema and n > schema["maxProperties"]:
        out.append(
            FieldError("FieldValueTooMany", path, f"must have at most {schema['maxProperties']} items")
        )
    if "minProperties" in schema and n < schema["minProperties"]:
        out.append(
            errors.invalid_value(
                path, n, f"{path} in body should have at least {schema['minProperties']} properties"
            )
        )
    return result


def _keeps_unknown(
    schema: Schema, props: dict[str, Schema], additional: Any, key: str, preserve: bool, embedded: bool
) -> bool:
    """Whether an undeclared field survives pruning.

    It does under ``additionalProperties: true`` or ``x-kubernetes-preserve-unknown-fields``,
    in a schema with no type and no properties (e.g. inside anyOf), and for apiVersion/kind/
    metadata of an ``x-kubernetes-embedded-resource``.
    """
    if additional is True or preserve:
        return True
    if not props and additional is None and not schema.get("type"):
        return True
    return embedded and key in _ROOT_IMPLICIT


def _walk_array(schema: Schema, value: list[Any], path: str, out: list[FieldError]) -> list[Any]:
    items = schema.get("items")
    result = (
        [_walk(items, v, f"{path}[{i}]", out) for i, v in enumerate(value)]
        if isinstance(items, dict)
        else list(value)
    )
    shown = path or "<root>"
    if "maxItems" in schema and len(result) > schema["maxItems"]:
        out.append(FieldError("FieldValueTooMany", shown, f"must have at most {schema['maxItems']} items"))
    if "minItems" in schema and len(result) < schema["minItems"]:
        out.append(
            errors.invalid_value(
                shown, len(result), f"{shown} in body should have at least {schema['minItems']} items"
            )
        )
    if schema.get("x-kubernetes-list-type") == "set" or schema.get("uniqueItems"):
        seen: list[Any] = []
        for i, v in enumerate(result):
            if v in seen:
                out.append(FieldError("FieldValueDuplicate", f"{shown}[{i}]", "", v, True))
            seen.append(v)
    return result


def _check_scalar(schema: Schema, value: Any, shown: str, out: list[FieldError]) -> None:
    enum = schema.get("enum")
    if enum is not None and value not in enum:
        out.append(errors.not_supported(shown, value, enum))
    if isinstance(value, str):
        pattern = schema.get("pattern")
        if pattern and not _compiled(pattern).search(value):
            out.append(errors.invalid_value(shown, value, f"{shown} in body should match '{pattern}'"))
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            out.append(
                FieldError(
                    "FieldValueTooLong",
                    shown,
                    f"may not be more than {schema['maxLength']} bytes",
                    value,
                    True,
                )
            )
        if "minLength" in schema and len(value) < schema["minLength"]:
            out.append(
                errors.invalid_value(
                    shown, value, f"{shown} in body should be at least {schema['minLength']} chars long"
                )
            )
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema:
            low = schema["minimum"]
            if value < low or (schema.get("exclusiveMinimum") is True and value == low):
                op = "greater than" if schema.get("exclusiveMinimum") is True else "greater than or equal to"
                out.append(errors.invalid_value(shown, value, f"{shown} in body should be {op} {low}"))
        if "maximum" in schema:
            high = schema["maximum"]
            if value > high or (schema.get("exclusiveMaximum") is True and value == high):
                op = "less than" if schema.get("exclusiveMaximum") is True else "less than or equal to"
                out.append(errors.invalid_value(shown, value, f"{shown} in body should be {op} {high}"))


def _passes(schema: Schema, value: Any, path: str) -> bool:
    scratch: list[FieldError] = []
    _walk(schema, copy.deepcopy(value), path, scratch)
    return not scratch


def _check_combinators(schema: Schema, value: Any, path: str, out: list[FieldError]) -> None:
    shown = path or "<root>"
    for sub in schema.get("allOf") or []:
        _walk(sub, copy.deepcopy(value), path, out)
    any_of = schema.get("anyOf")
    if any_of and not any(_passes(s, value, path) for s in any_of):
        out.append(
            errors.invalid_value(
                shown, _type_name(value), f"{shown} in body must match at least one schema in anyOf"
            )
        )
    one_of = schema.get("oneOf")
    if one_of and sum(1 for s in one_of if _passes(s, value, path)) != 1:
        out.append(
            errors.invalid_value(
                shown, _type_name(value), f"{shown} in body must match exactly one schema in oneOf"
            )
        )
    if "not" in schema and _passes(schema["not"], value, path):
        out.append(
            errors.invalid_value(
                shown, _type_name(value), f"{shown} in body should not match the schema in not"
            )
        )
