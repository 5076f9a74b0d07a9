"""Sprig's string functions (Masterminds/sprig v3 semantics, as VSO's function map has them).

Sprig puts the subject last (``trimPrefix "x" $s``) so that it can be piped: ``$s | trimPrefix "x"``.
"""

from __future__ import annotations

import random

from .errors import CURRENT_LIMITS
from .funcs import ANY, INT, STRING, Func, FuncError, func
from .gofmt import go_sprint_value, sprintf
from .lexer import go_quote
from .values import MISSING, StrList, StrMap, from_go_bytes, go_bytes

# Go's unicode.IsSpace (Python's str.isspace also counts \x1c-\x1f, which Go does not).
_GO_SPACE = (
    " \t\n\v\f\r\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)


def strval(value: object) -> str:
    """Sprig's strval: strings as is, []byte as text, anything else as ``%v``."""
    if isinstance(value, str):
        return str(value)  # a json.Number becomes a plain string (its String method)
    if isinstance(value, bytes | bytearray):
        return from_go_bytes(bytes(value))
    if value is MISSING:
        return "<nil>"
    return go_sprint_value(value)


def strslice(value: object) -> list[str]:
    """Sprig's strslice: a list's non-nil elements as strings; a scalar as a one-element list."""
    if isinstance(value, list | tuple):
        return [strval(v) for v in value if v is not None and v is not MISSING]
    if value is None or value is MISSING:
        return []
    return [strval(value)]


def go_trim_space(text: str) -> str:
    """strings.TrimSpace."""
    return text.strip(_GO_SPACE)


def _is_separator(ch: str) -> bool:
    if ord(ch) <= 0x7F:
        return not (ch.isalnum() or ch == "_")
    if ch.isalpha() or ch.isdigit():
        return False
    return ch.isspace()


def go_title(text: str) -> str:
    """strings.Title: upper-case the first letter of each word."""
    out = []
    prev = " "
    for ch in text:
        out.append(ch.upper() if _is_separator(prev) and len(ch.upper()) == 1 else ch)
        prev = ch
    return "".join(out)


def go_untitle(text: str) -> str:
    out = []
    prev = " "
    for ch in text:
        out.append(ch.lower() if _is_separator(prev) else ch)
        prev = ch
    return "".join(out)


def go_split(text: str, sep: str, limit: int = -1) -> list[str]:
    """strings.SplitN: an empty separator splits into characters."""
    if limit == 0:
        return []
    if sep == "":
        chars = list(text)
        if limit > 0 and len(chars) > limit:
            chars = [*chars[: limit - 1], "".join(chars[limit - 1 :])]
        return chars
    return text.split(sep, limit - 1 if limit > 0 else -1)


def _trim_cutset(text: str, cutset: str) -> str:
    return text.strip(cutset) if cutset else text


def _byte_slice(text: str, start: int, end: int) -> str:
    data = go_bytes(text)
    if not 0 <= start <= end <= len(data):
        raise FuncError(f"runtime error: slice bounds out of range [{start}:{end}]")
    return from_go_bytes(data[start:end])


@func(INT, INT, STRING)
def _substr(start: int, end: int, text: str) -> str:
    size = len(go_bytes(text))
    if start < 0:
        return _byte_slice(text, 0, end)
    if end < 0 or end > size:
        return _byte_slice(text, start, size)
    return _byte_slice(text, start, end)


@func(INT, STRING)
def _trunc(count: int, text: str) -> str:
    data = go_bytes(text)
    if count < 0 and len(data) + count > 0:
        return from_go_bytes(data[len(data) + count :])
    if count >= 0 and len(data) > count:
        return from_go_bytes(data[:count])
    return text


def _abbreviate_full(text: str, offset: int, width: int) -> str:
    """goutils.AbbreviateFull (byte offsets, as Go's)."""
    data = go_bytes(text)
    size = len(data)
    if not data or size <= width:
        return text
    offset = min(offset, size)
    if size - offset < width - 3:
        offset = size - (width - 3)
    if offset <= 4:
        return from_go_bytes(data[: width - 3]) + "..."
    if offset + width - 3 < size:
        return "..." + _abbreviate_full(from_go_bytes(data[offset:]), 0, width - 3)
    return "..." + from_go_bytes(data[size - (width - 3) :])


@func(INT, STRING)
def _abbrev(width: int, text: str) -> str:
    return text if width < 4 else _abbreviate_full(text, 0, width)


@func(INT, INT, STRING)
def _abbrevboth(left: int, right: int, text: str) -> str:
    if right < 4 or (left > 0 and right < 7):
        return text
    return _abbreviate_full(text, left, right)


def _wrap_custom(text: str, width: int, newline: str, wrap_long_words: bool) -> str:
    """goutils.WrapCustom (Apache Commons' WordUtils.wrap), on bytes as Go's strings are."""
    data = go_bytes(text)
    if not data:
        return ""
    sep = go_bytes(newline or "\n")
    width = max(width, 1)
    size = len(data)
    offset = 0
    out = bytearray()
    while size - offset > width:
        if data[offset] == ord(" "):
            offset += 1
            continue
        end = width + offset + 1
        space = data.rfind(b" ", offset, end)
        if space >= offset:
            out += data[offset:space] + sep
            offset = space + 1
        elif wrap_long_words:
            out += data[offset : offset + width] + sep
            offset += width
        else:
            index = data.find(b" ", width + offset)
            if index < 0:
                out += data[offset:]
                offset = size
            else:
                out += data[offset:index] + sep
                offset = index + 1
        _check_size(len(out))
    out += data[offset:]
    return from_go_bytes(bytes(out))


@func(INT, STRING)
def _wrap(width: int, text: str) -> str:
    return _wrap_custom(text, width, "", False)


@func(INT, STRING, STRING)
def _wrap_with(width: int, sep: str, text: str) -> str:
    return _wrap_custom(text, width, sep, True)


def _check_size(size: int) -> None:
    limit = CURRENT_LIMITS.get().max_output
    if size > limit:
        raise FuncError(f"result longer than the limit of {limit} bytes")


@func(INT, STRING)
def _repeat(count: int, text: str) -> str:
    if count < 0:
        raise FuncError("strings: negative Repeat count")
    _check_size(count * len(text))
    return text * count


def _indent(spaces: int, text: str) -> str:
    if spaces < 0:
        raise FuncError("strings: negative Repeat count")
    _check_size(spaces * (text.count("\n") + 1) + len(text))
    pad = " " * spaces
    return pad + text.replace("\n", "\n" + pad)


@func(INT, STRING)
def _indent_f(spaces: int, text: str) -> str:
    return _indent(spaces, text)


@func(INT, STRING)
def _nindent(spaces: int, text: str) -> str:
    return "\n" + _indent(spaces, text)


@func(variadic=ANY)
def _quote(*values: object) -> str:
    return " ".join(go_quote(strval(v)) for v in values if v is not None and v is not MISSING)


@func(variadic=ANY)
def _squote(*values: object) -> str:
    return " ".join(f"'{strval(v)}'" for v in values if v is not None and v is not MISSING)


@func(variadic=ANY)
def _cat(*values: object) -> str:
    kept = [v for v in values if v is not None and v is not MISSING]
    return sprintf(" ".join(["%v"] * len(kept)), kept)


@func(STRING, STRING)
def _split(sep: str, text: str) -> StrMap:
    return StrMap((f"_{i}", part) for i, part in enumerate(go_split(text, sep)))


@func(STRING, INT, STRING)
def _splitn(sep: str, count: int, text: str) -> StrMap:
    return StrMap((f"_{i}", part) for i, part in enumerate(go_split(text, sep, count)))


@func(STRING, STRING)
def _split_list(sep: str, text: str) -> StrList:
    return StrList(go_split(text, sep))


@func(STRING, ANY)
def _join(sep: str, values: object) -> str:
    return sep.join(strslice(values))


@func(ANY)
def _sort_alpha(values: object) -> StrList:
    if isinstance(values, list | tuple):
        return StrList(sorted(strslice(values), key=go_bytes))
    return StrList([strval(values)])


@func(STRING, STRING, INT)
def _plural(one: str, many: str, count: int) -> str:
    return one if count == 1 else many


def _replace(old: str, new: str, text: str) -> str:
    """strings.Replace(text, old, new, -1); the result's size is checked before building it."""
    count = text.count(old) if old else len(text) + 1
    _check_size(len(text) + count * (len(new) - len(old)))
    return text.replace(old, new)


def _nospace(text: str) -> str:
    return "".join(c for c in text if c not in _GO_SPACE)


def _initials(text: str) -> str:
    return "".join(word[0] for word in text.split() if word)


def _shuffle(text: str) -> str:
    chars = list(text)
    random.SystemRandom().shuffle(chars)
    return "".join(chars)


def _swapcase(text: str) -> str:
    return "".join(c.lower() if c.isupper() else c.upper() if c.islower() else c for c in text)


def _string_func(fn: object, arity: int = 1) -> Func:
    return Func(fn, (STRING,) * arity)  # type: ignore[arg-type]


STRING_FUNCS: dict[str, Func] = {
    "upper": _string_func(str.upper),
    "lower": _string_func(str.lower),
    "title": _string_func(go_title),
    "untitle": _string_func(go_untitle),
    "trim": _string_func(go_trim_space),
    "nospace": _string_func(_nospace),
    "initials": _string_func(_initials),
    "swapcase": _string_func(_swapcase),
    "shuffle": _string_func(_shuffle),
    "trimAll": _string_func(lambda cutset, s: _trim_cutset(s, cutset), 2),
    "trimall": _string_func(lambda cutset, s: _trim_cutset(s, cutset), 2),
    "trimPrefix": _string_func(lambda prefix, s: s.removeprefix(prefix), 2),
    "trimSuffix": _string_func(lambda suffix, s: s.removesuffix(suffix), 2),
    "contains": _string_func(lambda sub, s: sub in s, 2),
    "hasPrefix": _string_func(lambda prefix, s: s.startswith(prefix), 2),
    "hasSuffix": _string_func(lambda suffix, s: s.endswith(suffix), 2),
    "replace": Func(_replace, (STRING, STRING, STRING)),
    "substr": _substr,
    "abbrev": _abbrev,
    "abbrevboth": _abbrevboth,
    "wrap": _wrap,
    "wrapWith": _wrap_with,
    "trunc": _trunc,
    "repeat": _repeat,
    "indent": _indent_f,
    "nindent": _nindent,
    "quote": _quote,
    "squote": _squote,
    "cat": _cat,
    "split": _split,
    "splitn": _splitn,
    "splitList": _split_list,
    "join": _join,
    "sortAlpha": _sort_alpha,
    "plural": _plural,
    "toString": Func(strval, (ANY,)),
    "toStrings": Func(lambda v: StrList(strslice(v)), (ANY,)),
}
