"""The OpenAPI v3 structural-schema validator for custom resources (pure; tables)."""

from __future__ import annotations

from typing import Any

import pytest

from csi_vso.devkit.apiserver.schema import apply_schema

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["path"],
            "properties": {
                "path": {"type": "string", "pattern": "^[a-z/]+$"},
                "type": {"type": "string", "enum": ["kv-v1", "kv-v2"]},
                "refreshAfter": {"type": "string", "default": "60s"},
                "renewalPercent": {"type": "integer", "minimum": 0, "maximum": 90, "default": 67},
                "port": {"x-kubernetes-int-or-string": True},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "params": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "targets": {
                    "type": "array",
                    "maxItems": 2,
                    "items": {
                        "type": "object",
                        "required": ["kind"],
                        "properties": {"kind": {"type": "string"}},
                    },
                },
                "optional": {"type": "string", "nullable": True},
            },
        },
        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    },
}


def _cr(spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "x.example.com/v1", "kind": "Thing", "metadata": {"name": "t"}, "spec": spec}


def test_defaults_are_applied_and_unknown_fields_pruned() -> None:
    obj, problems = apply_schema(SCHEMA, _cr({"path": "a/b", "bogus": 1, "params": {"free": {"x": 1}}}))
    assert problems == []
    assert obj["spec"] == {
        "path": "a/b",
        "refreshAfter": "60s",
        "renewalPercent": 67,
        "params": {"free": {"x": 1}},
    }
    assert obj["metadata"] == {"name": "t"} and obj["kind"] == "Thing"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({}, "spec.path: Required value"),
        ({"path": "A!"}, "spec.path: Invalid value: \"A!\": spec.path in body should match '^[a-z/]+$'"),
        (
            {"path": "a", "type": "kv-v3"},
            'spec.type: Unsupported value: "kv-v3": supported values: "kv-v1", "kv-v2"',
        ),
        (
            {"path": "a", "renewalPercent": "ten"},
            'spec.renewalPercent: Invalid value: "string": spec.renewalPercent in body must be of type',
        ),
        (
            {"path": "a", "renewalPercent": 95},
            "spec.renewalPercent: Invalid value: 95: spec.renewalPercent in body should be less than",
        ),
        (
            {"path": "a", "port": 1.5},
            'spec.port: Invalid value: "number": spec.port in body must be of type integer or string',
        ),
        (
            {"path": "a", "labels": {"k": 1}},
            'spec.labels.k: Invalid value: "integer": spec.labels.k in body must be of type string',
        ),
        ({"path": "a", "targets": [{}]}, "spec.targets[0].kind: Required value"),
        ({"path": "a", "targets": [{"kind": "a"}] * 3}, "spec.targets: Too many: must have at most 2 items"),
        (
            {"path": "a", "targets": [None]},
            'spec.targets[0]: Invalid value: "null": spec.targets[0] in body must be of type object',
        ),
    ],
)
def test_violations_are_reported_like_the_real_server(spec: dict[str, Any], message: str) -> None:
    _, problems = apply_schema(SCHEMA, _cr(spec))
    assert any(p.message().startswith(message) for p in problems), [p.message() for p in problems]


def test_every_problem_is_reported_at_once() -> None:
    _, problems = apply_schema(SCHEMA, _cr({"type": "nope", "renewalPercent": -1}))
    assert sorted(p.field for p in problems) == ["spec.path", "spec.renewalPercent", "spec.type"]


def test_nullable_and_int_or_string_accept_their_values() -> None:
    _, problems = apply_schema(SCHEMA, _cr({"path": "a", "optional": None, "port": "http"}))
    assert problems == []
    _, problems = apply_schema(SCHEMA, _cr({"path": "a", "port": 8080}))
    assert problems == []


def test_nulls_of_non_nullable_fields_are_defaulted_or_dropped() -> None:
    """Not an error on a real server: a null with a default gets the default, else it is pruned."""
    obj, problems = apply_schema(
        SCHEMA, _cr({"path": "a", "refreshAfter": None, "type": None, "labels": {"k": None}})
    )
    assert problems == []
    assert obj["spec"] == {"path": "a", "refreshAfter": "60s", "renewalPercent": 67, "labels": {}}
    _, problems = apply_schema(SCHEMA, _cr({"path": None}))
    assert [p.message() for p in problems] == ["spec.path: Required value"]
