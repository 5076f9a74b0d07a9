"""A small structural OpenAPI v3 checker for CRD schemas (tests only).

It checks what the API server's structural-schema validation would reject or silently prune:
unknown fields (pruned on a real cluster, i.e. the user's setting would vanish), wrong types,
enums, minimum/maximum, patterns and required fields. Enough to prove a manifest fits a CRD.
"""

from __future__ import annotations

import re
from typing import Any

_TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "integer": int,
}


def problems(schema: dict[str, Any], value: Any, path: str = "") -> list[str]:
    found: list[str] = []
    expected = schema.get("type")
    if expected:
        python_type = _TYPES[expected]
        if not isinstance(value, python_type) or (expected == "integer" and isinstance(value, bool)):
            return [f"{path or '.'}: expected {expected}, got {type(value).__name__}"]
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{path}: {value!r} not in {schema['enum']}")
    if "pattern" in schema and isinstance(value, str) and not re.search(schema["pattern"], value):
        found.append(f"{path}: {value!r} does not match {schema['pattern']}")
    if "minimum" in schema and isinstance(value, int) and value < schema["minimum"]:
        found.append(f"{path}: {value} < {schema['minimum']}")
    if "maximum" in schema and isinstance(value, int) and value > schema["maximum"]:
        found.append(f"{path}: {value} > {schema['maximum']}")
    if "minLength" in schema and isinstance(value, str) and len(value) < schema["minLength"]:
        found.append(f"{path}: shorter than {schema['minLength']}")
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                found.append(f"{path}.{key}: required")
        properties = schema.get("properties")
        additional = schema.get("additionalProperties")
        preserve = schema.get("x-kubernetes-preserve-unknown-fields", False)
        for key, item in value.items():
            if properties is not None and key in properties:
                found += problems(properties[key], item, f"{path}.{key}")
            elif isinstance(additional, dict):
                found += problems(additional, item, f"{path}.{key}")
            elif properties is not None and not preserve and path != ".metadata":
                found.append(f"{path}.{key}: unknown field (would be pruned)")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            found += problems(schema["items"], item, f"{path}[{index}]")
    return found
