"""Transformation specs, references and filters (VSO's rules), as tables over pure functions."""

from __future__ import annotations

from typing import Any

import pytest

from csi_vso.operator import api
from csi_vso.operator.transform import gather
from csi_vso.operator.transform.index import ReferenceIndex
from csi_vso.operator.transform.render import filter_keys, go_json, redact
from csi_vso.operator.transform.spec import (
    TransformSpecError,
    parse_secret_transformation,
    parse_transformation,
)


def _secret(transformation: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    return {
        "kind": "VaultStaticSecret",
        "metadata": {"name": "app", "namespace": "apps", **metadata},
        "spec": {"mount": "kv", "path": "p", "destination": {"name": "d", "transformation": transformation}},
    }


def _st(name: str, spec: dict[str, Any], namespace: str = "apps") -> dict[str, Any]:
    return {"kind": "SecretTransformation", "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def _plan(transformation: dict[str, Any], *sts: dict[str, Any], **metadata: Any) -> gather.Plan:
    obj = _secret(transformation, **metadata)
    spec = api.parse_static_secret(obj)
    table = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in sts}
    plan = gather.plan_for(obj, spec.destination.transformation, lambda ns, n: table.get((ns, n)))
    assert plan is not None
    return plan


SHARED = _st(
    "shared",
    {
        "templates": {"url": {"text": "U"}, "props": {"text": "P"}},
        "sourceTemplates": [{"name": "helpers", "text": '{{define "x"}}x{{end}}'}, {"text": "anon"}],
        "excludes": ["password"],
        "includes": ["^user"],
    },
)


def test_no_transformation_means_no_plan() -> None:
    obj = _secret({})
    obj["spec"]["destination"].pop("transformation")
    spec = api.parse_static_secret(obj)
    assert gather.plan_for(obj, spec.destination.transformation, lambda ns, n: None) is None


def test_inline_templates_are_named_after_the_custom_resource() -> None:
    plan = _plan({"templates": {"b": {"text": "B"}, "a": {"name": "mine", "text": "A"}}})
    assert [(t.key, t.name) for t in plan.templates] == [("a", "mine"), ("b", "apps/app/b")]
    assert plan.exclude_raw is False


def test_a_reference_brings_all_templates_sources_and_filters() -> None:
    plan = _plan({"transformationRefs": [{"name": "shared"}]}, SHARED)
    # source templates first (no key), then by key
    assert [(t.key, t.name) for t in plan.templates] == [
        ("", "apps/shared/1"),
        ("", "helpers"),
        ("props", "apps/shared/props"),
        ("url", "apps/shared/url"),
    ]
    assert (plan.excludes, plan.includes) == (("password",), ("^user",))


def test_template_refs_pick_and_rename_and_ignore_flags_drop_filters() -> None:
    ref = {
        "name": "shared",
        "templateRefs": [{"name": "url", "keyOverride": "dsn"}],
        "ignoreExcludes": True,
        "ignoreIncludes": True,
    }
    plan = _plan({"transformationRefs": [ref], "excludes": ["^x$"]}, SHARED)
    assert [t.key for t in plan.templates if t.key] == ["dsn"]
    assert (plan.excludes, plan.includes) == (("^x$",), ())


def test_inline_templates_take_precedence_over_referenced_keys() -> None:
    plan = _plan({"templates": {"url": {"text": "mine"}}, "transformationRefs": [{"name": "shared"}]}, SHARED)
    assert {t.key: t.text for t in plan.templates if t.key} == {"url": "mine", "props": "P"}


def test_reference_namespace_defaults_to_the_secret_namespace() -> None:
    other = _st("shared", {"templates": {"k": {"text": "T"}}}, namespace="platform")
    with pytest.raises(gather.TransformError, match="SecretTransformation apps/shared not found"):
        _plan({"transformationRefs": [{"name": "shared"}]}, other)
    plan = _plan({"transformationRefs": [{"name": "shared", "namespace": "platform"}]}, other)
    assert [t.name for t in plan.templates] == ["platform/shared/k"]
    assert gather.ref_keys(
        api.parse_static_secret(
            _secret({"transformationRefs": [{"name": "a"}, {"name": "b", "namespace": "x"}]})
        ).destination.transformation,
        "apps",
    ) == [("apps", "a"), ("x", "b")]


@pytest.mark.parametrize(
    ("transformation", "sts", "message"),
    [
        (
            {"transformationRefs": [{"name": "shared"}, {"name": "shared"}]},
            [SHARED],
            "duplicate SecretTransformation reference apps/shared",
        ),
        (
            {"transformationRefs": [{"name": "shared", "templateRefs": [{"name": "nope"}]}]},
            [SHARED],
            "template 'nope' not found in SecretTransformation apps/shared",
        ),
        (
            {
                "templates": {"a": {"name": "helpers", "text": "x"}},
                "transformationRefs": [{"name": "shared"}],
            },
            [SHARED],
            "duplicate template name 'helpers'",
        ),
        (
            {"transformationRefs": [{"name": "bad"}]},
            [_st("bad", {"includes": ["("]})],
            "SecretTransformation apps/bad is invalid",
        ),
    ],
)
def test_bad_references_are_reported_together(
    transformation: dict[str, Any], sts: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(gather.TransformError, match=message):
        _plan(transformation, *sts)


def test_spec_problems_are_all_reported() -> None:
    problems: list[str] = []
    parse_transformation(
        {
            "templates": {"bad/key": {"text": "x"}, "ok": {}},
            "excludes": ["("],
            "transformationRefs": [{"templateRefs": "x"}],
            "excludeRaw": "yes",
        },
        "t",
        problems,
    )
    assert len(problems) == 6, problems
    with pytest.raises(TransformSpecError) as caught:
        parse_secret_transformation(
            _st("x", {"sourceTemplates": [{"name": "n"}], "templates": {"k": {"text": "x" * 70000}}})
        )
    assert len(caught.value.problems) == 2


def test_digest_follows_templates_filters_annotations_and_labels() -> None:
    base = _plan({"templates": {"a": {"text": "A"}}})
    assert base.digest() == _plan({"templates": {"a": {"text": "A"}}}).digest()
    assert base.digest() != _plan({"templates": {"a": {"text": "B"}}}).digest()
    assert base.digest() != _plan({"templates": {"a": {"text": "A"}}, "excludes": ["x"]}).digest()
    assert base.digest() != _plan({"templates": {"a": {"text": "A"}}}, annotations={"k": "v"}).digest()
    assert base.digest() != _plan({"templates": {"a": {"text": "A"}}}, labels={"k": "v"}).digest()
    assert (
        base.template_digest()
        == _plan({"templates": {"a": {"text": "A"}}}, labels={"k": "v"}).template_digest()
    )


@pytest.mark.parametrize(
    ("excludes", "includes", "want"),
    [
        ([], [], ["password", "user", "username"]),
        (["password|username"], [], ["user"]),
        ([".*"], [], []),
        ([], ["^user"], ["user", "username"]),
        (["name"], ["^user"], ["user"]),  # excludes first, then includes
        (["^user$"], ["user"], ["username"]),  # unanchored search, as Go's MatchString
    ],
)
def test_filters(excludes: list[str], includes: list[str], want: list[str]) -> None:
    plan = gather.Plan(templates=(), includes=tuple(includes), excludes=tuple(excludes), exclude_raw=False)
    assert sorted(filter_keys(plan, {"user": 1, "username": 2, "password": 3})) == want


def test_go_json_matches_encoding_json() -> None:
    assert (
        go_json({"b": [1, "<&>"], "a": {"z": None, "y": True}})
        == b'{"a":{"y":true,"z":null},"b":[1,"\\u003c\\u0026\\u003e"]}'
    )
    assert go_json({"k": "é"}) == '{"k":"é"}'.encode()


def test_redact_removes_secret_values_from_messages() -> None:
    assert (
        redact("bad value hunter2 at x", {"p": "hunter2", "n": {"deep": "x"}}) == "bad value <redacted> at x"
    )


def test_reference_index_tracks_current_references_only() -> None:
    index: ReferenceIndex[str, tuple[str, str]] = ReferenceIndex()
    index.set("s1", [("apps", "a"), ("apps", "b")])
    index.set("s2", [("apps", "a")])
    assert index.referrers(("apps", "a")) == {"s1", "s2"}
    index.set("s1", [("apps", "b")])
    assert index.referrers(("apps", "a")) == {"s2"}
    index.remove("s2")
    assert index.referrers(("apps", "a")) == set()
    assert index.referrers(("apps", "b")) == {"s1"}


def test_filters_run_in_linear_time_and_reject_what_go_rejects() -> None:
    key = "a" * 64 + "!"
    plan = gather.Plan(templates=(), includes=(), excludes=("(a+)+$",), exclude_raw=False)
    assert filter_keys(plan, {key: 1}) == {key: 1}  # catastrophic for a backtracking engine
    problems: list[str] = []
    parse_transformation({"includes": ["(?<=x)y", r"\1"]}, "t", problems)
    assert len(problems) == 2 and "invalid or unsupported Perl syntax" in problems[0], problems
