"""Runs the conformance table (cases.py) against the engine."""

from __future__ import annotations

import pytest

from csi_vso.operator.gotemplate import TemplateError, TemplateSet

from .cases import ALL, Case


def render(case: Case) -> tuple[str, bool]:
    """(output, False) or (error text, True)."""
    ts = TemplateSet()
    try:
        for extra_name, extra_text in case.extra.items():
            ts.parse(extra_name, extra_text)
        ts.parse(case.name, case.template)
        target = "other" if case.id == "no such template at the top" else case.name
        return ts.execute(target, case.data), False
    except TemplateError as err:
        return str(err), True


def test_table_is_large_and_ids_unique() -> None:
    ids = [c.id for c in ALL]
    assert len(ids) >= 150
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("case", [c for c in ALL if not c.unclear], ids=lambda c: c.id)
def test_case(case: Case) -> None:
    got, failed = render(case)
    if case.part:
        assert failed == case.error and case.want in got, got
    else:
        assert (got, failed) == (case.want, case.error)


@pytest.mark.parametrize("case", [c for c in ALL if c.unclear], ids=lambda c: c.id)
def test_unclear_case_answers(case: Case) -> None:
    """Go's exact answer is not established: the engine must still answer (output or error)."""
    got, _ = render(case)
    assert isinstance(got, str)
