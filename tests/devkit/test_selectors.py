"""Label and field selector parsing and matching (pure; tables)."""

from __future__ import annotations

import pytest

from csi_vso.devkit.apiserver.selectors import (
    SelectorError,
    field_value,
    parse_field_selector,
    parse_label_selector,
)

LABELS = {"app": "web", "tier": "front", "csi-vso.io/protected": "true"}


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        ("", True),
        ("app=web", True),
        ("app==web", True),
        ("app=db", False),
        ("app!=db", True),
        ("app!=web", False),
        ("missing!=x", True),
        ("app in (web,db)", True),
        ("app in (db, cache)", False),
        ("app notin (db)", True),
        ("app notin (web)", False),
        ("missing notin (x)", True),
        ("app", True),
        ("missing", False),
        ("!missing", True),
        ("!app", False),
        ("csi-vso.io/protected=true", True),
        ("app=web,tier in (front,back),!missing", True),
        ("app=web,tier=back", False),
        (" app = web , tier in ( front ) ", True),
    ],
)
def test_label_selector_matching(selector: str, matches: bool) -> None:
    assert parse_label_selector(selector).matches(LABELS) is matches


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        ("app in ()", "values set can't be empty"),
        ("app in (a", "unbalanced '('"),
        ("app=web,", "found ','"),
        ("-bad=x", "unable to parse requirement: key"),
        ("app=-bad-", "unable to parse requirement: values[0]"),
        ("app>1", "unable to parse requirement"),
    ],
)
def test_label_selector_errors(selector: str, message: str) -> None:
    with pytest.raises(SelectorError) as err:
        parse_label_selector(selector)
    assert message in str(err.value)


SUPPORTED = frozenset({"metadata.name", "metadata.namespace", "type"})
SECRET = {"metadata": {"name": "s", "namespace": "ns"}, "type": "Opaque"}


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        ("metadata.name=s", True),
        ("metadata.name==s", True),
        ("metadata.name!=s", False),
        ("metadata.namespace=ns,type=Opaque", True),
        ("metadata.namespace=other", False),
    ],
)
def test_field_selector_matching(selector: str, matches: bool) -> None:
    parsed = parse_field_selector(selector, SUPPORTED)
    assert parsed.matches(lambda path: field_value(SECRET, path)) is matches


def test_unsupported_field_is_rejected() -> None:
    with pytest.raises(SelectorError, match=r"field label not supported: spec\.foo"):
        parse_field_selector("spec.foo=x", SUPPORTED)
