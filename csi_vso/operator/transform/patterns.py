"""Key filters (``includes`` / ``excludes``): Go's ``regexp`` on RE2, via the template engine's own.

The patterns come from tenants. Python's ``re`` backtracks: ``(a+)+$`` against a 40-character
key name takes minutes, enough for one custom resource to stall a reconcile worker. The engine's
:mod:`csi_vso.operator.gotemplate.goregexp` compiles with RE2 (linear time, the syntax Go's
``regexp`` accepts, Go's error wording, cached), so a filter that works in VSO works here, and
one Go rejects (look-behind, back-references) is rejected here too, with Go's reason.
"""

from __future__ import annotations

from csi_vso.operator.gotemplate.goregexp import compile_go


def check_pattern(pattern: str) -> None:
    """ValueError (Go's ``error parsing regexp: ...``) when ``pattern`` is not a valid expression."""
    compile_go(pattern)


def matches_any(patterns: tuple[str, ...], key: str) -> bool:
    """Whether any pattern matches anywhere in ``key`` (Go's ``MatchString``: unanchored)."""
    return any(compile_go(p).search(key) is not None for p in patterns)
