"""Go's strconv.Unquote for the string, raw string and character literals of templates."""

from __future__ import annotations

_SIMPLE = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}


def _unescape(body: str, quote: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == quote or ch == "\n":
            raise ValueError("invalid syntax")
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        if i + 1 >= len(body):
            raise ValueError("invalid syntax")
        esc = body[i + 1]
        i += 2
        if esc in _SIMPLE:
            out.append(_SIMPLE[esc])
        elif esc == quote:
            out.append(esc)
        elif esc in "xuU":
            size = {"x": 2, "u": 4, "U": 8}[esc]
            digits = body[i : i + size]
            if len(digits) != size or any(c not in "0123456789abcdefABCDEF" for c in digits):
                raise ValueError("invalid syntax")
            code = int(digits, 16)
            if esc != "x" and (code > 0x10FFFF or 0xD800 <= code < 0xE000):
                raise ValueError("invalid syntax")
            out.append(chr(code))
            i += size
        elif esc in "01234567":
            digits = body[i - 1 : i + 2]
            if len(digits) != 3 or any(c not in "01234567" for c in digits) or int(digits, 8) > 255:
                raise ValueError("invalid syntax")
            out.append(chr(int(digits, 8)))
            i += 2
        else:
            raise ValueError("invalid syntax")
    return "".join(out)


def unquote(literal: str) -> str:
    """The value of a Go string literal ``"..."`` or raw string literal."""
    if len(literal) >= 2 and literal[0] == literal[-1] == "`":
        return literal[1:-1].replace("\r", "")
    if len(literal) >= 2 and literal[0] == literal[-1] == '"':
        return _unescape(literal[1:-1], '"')
    raise ValueError("invalid syntax")


def unquote_char(literal: str) -> int:
    """The code point of a Go rune literal ``'x'``."""
    if len(literal) < 3 or literal[0] != "'" or literal[-1] != "'":
        raise ValueError("malformed character constant: " + literal)
    try:
        value = _unescape(literal[1:-1], "'")
    except ValueError:
        raise ValueError("malformed character constant: " + literal) from None
    if len(value) != 1:
        raise ValueError("malformed character constant: " + literal)
    return ord(value)
