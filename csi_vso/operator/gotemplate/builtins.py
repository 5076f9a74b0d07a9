"""Go's predefined template functions (text/template's funcs.go), with Go's error messages.

``and``/``or`` short-circuit in the executor (Go >= 1.18); ``call`` has nothing to call since
template data holds no functions. ``slice`` is Sprig's (VSO's function map replaces Go's).
"""

from __future__ import annotations

import urllib.parse

from .funcs import ANY, STRING, VALUE, Func, FuncError, func
from .gofmt import sprint, sprintf, sprintln
from .values import MISSING, go_bytes, kind, truth, type_name, zero_of_elem

BAD_COMPARISON_TYPE = "invalid type for comparison"
BAD_COMPARISON = "incompatible types for comparison"
NO_COMPARISON = "missing argument for comparison"


def _basic_kind(value: object) -> str:
    k = kind(value)
    return k if k in ("bool", "int", "float", "string") else "invalid"


@func(VALUE, variadic=VALUE)
def _and(*args: object) -> object:  # evaluated lazily by the executor; kept for arity
    for arg in args:
        if not truth(arg):
            return arg
    return args[-1]


@func(VALUE, variadic=VALUE)
def _or(*args: object) -> object:
    for arg in args:
        if truth(arg):
            return arg
    return args[-1]


@func(VALUE)
def _not(arg: object) -> bool:
    return not truth(arg)


def _indirect_type(item: object) -> str:
    """The type after Go's indirect(): a pointer to a struct is reported as the struct."""
    return type_name(item).removeprefix("*")


@func(VALUE)
def _len(item: object) -> int:
    if item is None:
        raise FuncError("len of nil pointer")
    if item is MISSING:  # Go's len asks the zero reflect.Value for its type and panics
        raise FuncError("reflect: call of reflect.Value.Type on zero Value")
    if isinstance(item, str):
        return len(go_bytes(item))
    if isinstance(item, list | tuple | dict | bytes | bytearray):
        return len(item)
    raise FuncError(f"len of type {_indirect_type(item)}")


def _index_arg(index: object, size: int) -> int:
    if index is None or index is MISSING:
        raise FuncError("cannot index slice/array with nil")
    if isinstance(index, bool) or not isinstance(index, int):
        raise FuncError(f"cannot index slice/array with type {type_name(index)}")
    if index < 0 or index > size:
        raise FuncError(f"index out of range: {index}")
    return index


@func(VALUE, variadic=VALUE)
def _index(item: object, *indexes: object) -> object:
    if item is MISSING or item is None:
        raise FuncError("index of untyped nil")
    for index in indexes:
        if item is None:
            raise FuncError("index of nil pointer")
        if isinstance(item, str):
            data = go_bytes(item)
            x = _index_arg(index, len(data))
            if x == len(data):
                raise FuncError(f"index out of range: {x}")
            item = data[x]
        elif isinstance(item, list | tuple | bytes | bytearray):
            x = _index_arg(index, len(item))
            if x == len(item):
                raise FuncError(f"index out of range: {x}")
            item = item[x]
        elif isinstance(item, dict):
            if index is None or index is MISSING:
                raise FuncError("value is nil; should be of type string")
            if not isinstance(index, str):
                raise FuncError(f"value has type {type_name(index)}; should be string")
            item = item[index] if index in item else zero_of_elem(item)
        else:
            raise FuncError(f"can't index item of type {_indirect_type(item)}")
    return item


def _compare_eq(a: object, b: object) -> bool:
    ka, kb = _basic_kind(a), _basic_kind(b)
    if ka != kb:
        if ka != "invalid" and kb != "invalid":
            raise FuncError(BAD_COMPARISON)
        if (a is None or a is MISSING) != (b is None or b is MISSING):
            return False
    if ka == "invalid":
        if (a is None or a is MISSING) or (b is None or b is MISSING):
            return (a is None or a is MISSING) and (b is None or b is MISSING)
        raise FuncError("non-comparable types <redacted>")
    return a == b


@func(VALUE, variadic=VALUE)
def _eq(arg1: object, *args: object) -> bool:
    if not args:
        raise FuncError(NO_COMPARISON)
    return any(_compare_eq(arg1, arg) for arg in args)


@func(VALUE, VALUE)
def _ne(a: object, b: object) -> bool:
    return not _compare_eq(a, b)


def _less(a: object, b: object) -> bool:
    ka, kb = _basic_kind(a), _basic_kind(b)
    if ka == "invalid" or kb == "invalid":
        raise FuncError(BAD_COMPARISON_TYPE)
    if ka != kb:
        raise FuncError(BAD_COMPARISON)
    if ka == "bool":
        raise FuncError(BAD_COMPARISON_TYPE)
    if ka == "string":
        return go_bytes(str(a)) < go_bytes(str(b))
    return bool(a < b)  # type: ignore[operator]


@func(VALUE, VALUE)
def _lt(a: object, b: object) -> bool:
    return _less(a, b)


@func(VALUE, VALUE)
def _le(a: object, b: object) -> bool:
    return _less(a, b) or _compare_eq(a, b)


@func(VALUE, VALUE)
def _gt(a: object, b: object) -> bool:
    return not (_less(a, b) or _compare_eq(a, b))


@func(VALUE, VALUE)
def _ge(a: object, b: object) -> bool:
    return not _less(a, b)


def _nil_to_none(args: tuple[object, ...]) -> list[object]:
    return [None if a is MISSING else a for a in args]


@func(variadic=ANY)
def _print(*args: object) -> str:
    return sprint(_nil_to_none(args))


@func(STRING, variadic=ANY)
def _printf(fmt: str, *args: object) -> str:
    try:
        return sprintf(fmt, _nil_to_none(args))
    except ValueError as err:
        raise FuncError(str(err)) from None


@func(variadic=ANY)
def _println(*args: object) -> str:
    return sprintln(_nil_to_none(args))


def eval_args(args: tuple[object, ...]) -> str:
    """text/template's evalArgs: one string as is, else Sprint (nil prints as <no value>)."""
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    parts: list[object] = ["<no value>" if a is None or a is MISSING else a for a in args]
    return sprint(parts)


_HTML = {'"': "&#34;", "'": "&#39;", "&": "&amp;", "<": "&lt;", ">": "&gt;", "\x00": "\ufffd"}


def html_escape(text: str) -> str:
    return "".join(_HTML.get(c, c) for c in text)


@func(variadic=ANY)
def _html(*args: object) -> str:
    return html_escape(eval_args(args))


_JS = {"\\": "\\\\", "'": "\\'", '"': '\\"', "<": "\\u003C", ">": "\\u003E", "&": "\\u0026", "=": "\\u003D"}


def js_escape(text: str) -> str:
    out = []
    for c in text:
        if c in _JS:
            out.append(_JS[c])
        elif ord(c) < 0x20 or (ord(c) >= 0x80 and not c.isprintable()):
            out.append(f"\\u{ord(c):04X}")
        else:
            out.append(c)
    return "".join(out)


@func(variadic=ANY)
def _js(*args: object) -> str:
    return js_escape(eval_args(args))


@func(variadic=ANY)
def _urlquery(*args: object) -> str:
    return urllib.parse.quote_plus(eval_args(args), safe="-_.~")


@func(VALUE, variadic=VALUE)
def _call(fn: object, *args: object) -> object:  # data never holds functions
    if fn is None or fn is MISSING:
        raise FuncError("call of nil")
    raise FuncError(f"non-function of type {type_name(fn)}")


BUILTINS: dict[str, Func] = {
    "and": _and,
    "or": _or,
    "not": _not,
    "len": _len,
    "index": _index,
    "print": _print,
    "printf": _printf,
    "println": _println,
    "html": _html,
    "js": _js,
    "urlquery": _urlquery,
    "call": _call,
    "eq": _eq,
    "ne": _ne,
    "lt": _lt,
    "le": _le,
    "gt": _gt,
    "ge": _ge,
}
