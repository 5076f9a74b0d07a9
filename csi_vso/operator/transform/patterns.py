"""Key filters (``includes`` / ``excludes``) compiled with RE2, as Go's ``regexp`` does.

The patterns come from tenants. Python's ``re`` backtracks: ``(a+)+$`` against a 40-character
key name takes minutes, enough for one custom resource to stall a reconcile worker. RE2 (the
``google-re2`` binding of the library Go's ``regexp`` mirrors) matches in linear time and
accepts the same syntax VSO documents, so a pattern that works in VSO works here, and one
Go rejects (look-behind, back-references) is rejected here too, with RE2's own reason.
Compiled patterns are cached (bounded): 1,000 secrets sharing one filter compile it once.
"""

from __future__ import annotations

import functools
from typing import Protocol

import re2  # type: ignore[import-untyped]


class Pattern(Protocol):
    def search(self, text: str) -> object: ...


@functools.lru_cache(maxsize=512)
def compile_pattern(pattern: str) -> Pattern:
    """The compiled pattern; ValueError with RE2's reason when it is not a valid expression."""
    try:
        compiled: Pattern = re2.compile(pattern)
    except re2.error as exc:
        reason = (
            exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        )
        raise ValueError(reason) from None
    return compiled


def matches_any(patterns: tuple[str, ...], key: str) -> bool:
    """Whether any pattern matches anywhere in ``key`` (Go's ``MatchString``: unanchored)."""
    return any(compile_pattern(p).search(key) is not None for p in patterns)
