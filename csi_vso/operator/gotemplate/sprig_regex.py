"""Sprig's regular-expression functions, on :mod:`.goregexp` (RE2: linear time on any pattern).

The plain forms (``regexMatch``...) compile with Go's ``regexp.MustCompile``, whose panic
becomes ``error calling regexMatch: regexp: Compile(`PATTERN`): error parsing regexp: ...``;
the ``must`` forms return the compile error itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import goregexp
from .funcs import INT, STRING, Func, FuncError
from .lexer import go_quote
from .values import StrList


def _go_backquote(pattern: str) -> str:
    """Go's strconv.Quote, or backquotes when the text can be backquoted."""
    if "`" not in pattern and all(c == "\t" or (c.isprintable() and c != "\ufeff") for c in pattern):
        return "`" + pattern + "`"
    return go_quote(pattern)


def _plain(fn: Callable[..., Any]) -> Callable[..., Any]:
    def call(pattern: str, *args: Any) -> Any:
        try:
            return fn(pattern, *args)
        except goregexp.RegexpError as err:
            raise FuncError(f"regexp: Compile({_go_backquote(pattern)}): {err}") from None

    return call


def _must(fn: Callable[..., Any]) -> Callable[..., Any]:
    def call(pattern: str, *args: Any) -> Any:
        try:
            return fn(pattern, *args)
        except goregexp.RegexpError as err:
            raise FuncError(str(err)) from None

    return call


def _find_all(pattern: str, text: str, limit: int) -> StrList:
    return StrList(goregexp.find_all_string(pattern, text, limit))


def _split(pattern: str, text: str, limit: int) -> StrList:
    return StrList(goregexp.split(pattern, text, limit))


_SIGNATURES: dict[str, tuple[Callable[..., Any], tuple[str, ...]]] = {
    "regexMatch": (goregexp.match_string, (STRING, STRING)),
    "regexFind": (goregexp.find_string, (STRING, STRING)),
    "regexFindAll": (_find_all, (STRING, STRING, INT)),
    "regexReplaceAll": (goregexp.replace_all_string, (STRING, STRING, STRING)),
    "regexReplaceAllLiteral": (goregexp.replace_all_literal_string, (STRING, STRING, STRING)),
    "regexSplit": (_split, (STRING, STRING, INT)),
}

REGEX_FUNCS: dict[str, Func] = {
    **{name: Func(_plain(fn), params) for name, (fn, params) in _SIGNATURES.items()},
    **{
        "must" + name[0].upper() + name[1:]: Func(_must(fn), params)
        for name, (fn, params) in _SIGNATURES.items()
    },
    "regexQuoteMeta": Func(goregexp.quote_meta, (STRING,)),
}
