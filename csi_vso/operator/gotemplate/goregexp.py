"""Go's regexp package semantics on Google's RE2 (the engine Go's syntax comes from).

Tenant patterns must run in linear time: Python's ``re`` backtracks and one pattern such as
``(a+)+$`` can pin a CPU, so patterns are compiled with RE2 (``google-re2``). What Go adds on
top of the engine is written here from its documentation: how successive matches are found
(an empty match right after a match is skipped), ``Split``, ``ReplaceAllString`` and the
``$1``/``${name}`` expansion of replacement templates, ``QuoteMeta``, and Go's error texts.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

import re2  # type: ignore[import-untyped]

from .errors import CURRENT_LIMITS

_MAX_PATTERN = 4096

# RE2's C++ error prefixes and Go's regexp/syntax wording for the same problem.
_GO_ERRORS = (
    ("missing ): ", "missing closing )"),
    ("unexpected ): ", "unexpected )"),
    ("missing ]: ", "missing closing ]"),
    ("bad repetition operator: ", "invalid nested repetition operator"),
    ("no argument for repetition operator: ", "missing argument to repetition operator"),
    ("invalid escape sequence: ", "invalid escape sequence"),
    ("invalid character class range: ", "invalid character class range"),
    ("invalid character class: ", "invalid character class"),
    ("invalid named capture group: ", "invalid named capture"),
    ("invalid perl operator: ", "invalid or unsupported Perl syntax"),
    ("bad repetition operator", "invalid repeat count"),
    ("trailing \\", "trailing backslash at end of expression"),
)


class RegexpError(ValueError):
    """A pattern does not compile; ``str()`` is Go's ``error parsing regexp: ...``."""


def _go_error(message: str) -> str:
    for prefix, go_text in _GO_ERRORS:
        if message.startswith(prefix):
            rest = message[len(prefix) :]
            return (
                f"error parsing regexp: {go_text}: `{rest}`" if rest else f"error parsing regexp: {go_text}"
            )
    return f"error parsing regexp: {message}"


@functools.lru_cache(maxsize=256)
def compile_go(pattern: str) -> Any:
    """A compiled RE2 pattern; raises RegexpError with Go's wording."""
    if len(pattern) > _MAX_PATTERN:
        raise RegexpError(f"error parsing regexp: expression too large (over {_MAX_PATTERN} characters)")
    options = re2.Options()
    options.log_errors = False  # RE2 would print the pattern to stderr
    try:
        return re2.compile(pattern, options=options)
    except re2.error as err:
        raw = err.args[0] if err.args else str(err)
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        raise RegexpError(_go_error(text)) from None


def _matches(regexp: Any, text: str, limit: int) -> Iterator[Any]:
    """Go's allMatches: successive matches, an empty match abutting the previous one skipped."""
    pos, found, prev_end = 0, 0, -1
    while (limit < 0 or found < limit) and pos <= len(text):
        match = regexp.search(text, pos)
        if match is None:
            return
        start, end = match.span()
        accept = True
        if end == pos:
            if start == prev_end:
                accept = False
            pos += 1
        else:
            pos = end
        prev_end = end
        if accept:
            found += 1
            yield match


def match_string(pattern: str, text: str) -> bool:
    return compile_go(pattern).search(text) is not None


def find_string(pattern: str, text: str) -> str:
    match = compile_go(pattern).search(text)
    return "" if match is None else str(match.group(0))


def find_all_string(pattern: str, text: str, limit: int) -> list[str]:
    return [str(m.group(0)) for m in _matches(compile_go(pattern), text, limit)]


def split(pattern: str, text: str, limit: int) -> list[str]:
    """Go's Regexp.Split."""
    if limit == 0:
        return []
    if pattern and not text:
        return [""]
    parts: list[str] = []
    begin = end = 0
    for match in _matches(compile_go(pattern), text, limit):
        if limit > 0 and len(parts) == limit - 1:
            break
        end = match.start()
        if match.end() != 0:
            parts.append(text[begin:end])
        begin = match.end()
    if end != len(text):
        parts.append(text[begin:])
    return parts


def _replace_all(pattern: str, text: str, replacement: Callable[[Any], str]) -> str:
    """Go's replaceAll: no replacement for an empty match right after a match."""
    regexp = compile_go(pattern)
    out: list[str] = []
    size = 0
    limit = CURRENT_LIMITS.get().max_output
    last_end = 0
    search = 0
    while search <= len(text):
        match = regexp.search(text, search)
        if match is None:
            break
        start, end = match.span()
        out.append(text[last_end:start])
        if end > last_end or start == 0:
            out.append(replacement(match))
        size += len(out[-1]) + start - last_end
        if size > limit:
            raise RegexpError(f"result longer than the limit of {limit} bytes")
        last_end = end
        search = search + 1 if search + 1 > end else end
    out.append(text[last_end:])
    return "".join(out)


def _group(match: Any, name: str) -> str:
    if name.isdigit() and not (name.startswith("0") and len(name) > 1):
        index = int(name)
        if index > match.re.groups:
            return ""
    else:
        index = match.re.groupindex.get(name, -1)
        if index < 0:
            return ""
    value = match.group(index)
    return "" if value is None else str(value)


def expand(template: str, match: Any) -> str:
    """Go's Regexp.Expand: ``$1``, ``${1}``, ``$name``, ``${name}``, ``$$``."""
    out: list[str] = []
    i = 0
    while i < len(template):
        dollar = template.find("$", i)
        if dollar < 0:
            out.append(template[i:])
            break
        out.append(template[i:dollar])
        rest = template[dollar:]
        if rest.startswith("$$"):
            out.append("$")
            i = dollar + 2
            continue
        brace = rest.startswith("${")
        j = 2 if brace else 1
        k = j
        while k < len(rest) and (rest[k].isalnum() or rest[k] == "_"):
            k += 1
        name = rest[j:k]
        if not name or (brace and (k >= len(rest) or rest[k] != "}")):
            out.append("$")  # malformed: the dollar is literal
            i = dollar + 1
            continue
        out.append(_group(match, name))
        i = dollar + k + (1 if brace else 0)
    return "".join(out)


def replace_all_string(pattern: str, text: str, template: str) -> str:
    return _replace_all(pattern, text, lambda m: expand(template, m))


def replace_all_literal_string(pattern: str, text: str, literal: str) -> str:
    return _replace_all(pattern, text, lambda m: literal)


_SPECIAL = set("\\.+*?()|[]{}^$")


def quote_meta(text: str) -> str:
    return "".join("\\" + c if c in _SPECIAL else c for c in text)
