"""Sprig's list and dict functions.

Go's ``keys``/``values`` return map order, which Go randomizes; here they return keys in sorted
order (one of Go's possible outputs, and the same every time), so ``keys $d | sortAlpha`` and
``keys $d`` agree. Dicts built by ``dict``/``set`` are the same dict objects Go would mutate
(``set`` changes its argument and returns it, as in Sprig).
"""

from __future__ import annotations

import copy
from typing import Any

from .funcs import ANY, INT, MAP, STRING, Func, FuncError, func
from .sprig_strings import strval
from .values import MISSING, IntList, StrList, kind, sorted_keys, truth

LIST_KINDS = (list, tuple)


def _kind_name(value: object) -> str:
    k = kind(value)
    return {"float": "float64", "func": "func"}.get(k, k) if k != "int" else _int_kind(value)


def _int_kind(value: object) -> str:
    from .values import Int64

    return "int64" if isinstance(value, Int64) else "int"


def _need_list(value: object, what: str) -> list[Any]:
    if isinstance(value, list | tuple):
        return list(value)
    if value is None or value is MISSING:
        raise FuncError("runtime error: invalid memory address or nil pointer dereference")
    raise FuncError(f"Cannot {what} on type {_kind_name(value)}")


def _same_type(template: object, items: list[Any]) -> list[Any]:
    if isinstance(template, StrList):
        return StrList(items)
    if isinstance(template, IntList):
        return IntList(items)
    return items


@func(variadic=ANY)
def _list(*values: object) -> list[Any]:
    return list(values)


@func(variadic=ANY)
def _dict(*values: object) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i in range(0, len(values), 2):
        key = strval(values[i])
        out[key] = values[i + 1] if i + 1 < len(values) else ""
    return out


@func(MAP, STRING)
def _get(d: dict[str, Any] | None, key: str) -> object:
    if d is not None and key in d:
        return d[key]
    return ""


@func(MAP, STRING, ANY)
def _set(d: dict[str, Any] | None, key: str, value: object) -> object:
    if d is None:
        raise FuncError("assignment to entry in nil map")
    d[key] = value
    return d


@func(MAP, STRING)
def _unset(d: dict[str, Any] | None, key: str) -> object:
    if d is not None:
        d.pop(key, None)
    return d


@func(MAP, STRING)
def _has_key(d: dict[str, Any] | None, key: str) -> bool:
    return d is not None and key in d


@func(STRING, variadic=MAP)
def _pluck(key: str, *dicts: dict[str, Any] | None) -> list[Any]:
    return [d[key] for d in dicts if d is not None and key in d]


@func(variadic=MAP)
def _keys(*dicts: dict[str, Any] | None) -> StrList:
    out = StrList()
    for d in dicts:
        if d is not None:
            out.extend(str(k) for k in sorted_keys(d))
    return out


@func(MAP)
def _values(d: dict[str, Any] | None) -> list[Any]:
    return [] if d is None else [d[k] for k in sorted_keys(d)]


@func(MAP, variadic=STRING)
def _pick(d: dict[str, Any] | None, *keys: str) -> dict[str, Any]:
    return {k: d[k] for k in keys if d is not None and k in d}


@func(MAP, variadic=STRING)
def _omit(d: dict[str, Any] | None, *keys: str) -> dict[str, Any]:
    return {k: v for k, v in (d or {}).items() if k not in keys}


def _merge_into(dst: dict[str, Any], src: dict[str, Any], overwrite: bool) -> None:
    for key, value in src.items():
        if key in dst and isinstance(dst[key], dict) and isinstance(value, dict):
            _merge_into(dst[key], value, overwrite)
        elif key not in dst or not truth(dst[key]) or (overwrite and truth(value)):
            dst[key] = value


@func(MAP, variadic=MAP)
def _merge(dst: dict[str, Any] | None, *srcs: dict[str, Any] | None) -> object:
    if dst is None:
        dst = {}
    for src in srcs:
        _merge_into(dst, src or {}, overwrite=False)
    return dst


@func(MAP, variadic=MAP)
def _merge_overwrite(dst: dict[str, Any] | None, *srcs: dict[str, Any] | None) -> object:
    if dst is None:
        dst = {}
    for src in srcs:
        _merge_into(dst, src or {}, overwrite=True)
    return dst


@func(variadic=ANY)
def _dig(*args: object) -> object:
    if len(args) < 3:
        raise FuncError("dig needs at least three arguments")
    d = args[-1]
    default = args[-2]
    for key in args[:-2]:
        if not isinstance(d, dict):
            raise FuncError("interface conversion: interface {} is not map[string]interface {}")
        k = strval(key)
        if k not in d:
            return default
        d = d[k]
    return d


@func(ANY)
def _first(values: object) -> object:
    items = _need_list(values, "find first")
    return items[0] if items else None


@func(ANY)
def _last(values: object) -> object:
    items = _need_list(values, "find last")
    return items[-1] if items else None


@func(ANY)
def _rest(values: object) -> object:
    items = _need_list(values, "find rest")
    return items[1:] if items else None


@func(ANY)
def _initial(values: object) -> object:
    items = _need_list(values, "find initial")
    return items[:-1] if items else None


@func(ANY)
def _reverse(values: object) -> object:
    return _need_list(values, "find reverse")[::-1]


@func(ANY)
def _uniq(values: object) -> object:
    out: list[Any] = []
    for item in _need_list(values, "find uniq"):
        if item not in out:
            out.append(item)
    return out


@func(ANY)
def _compact(values: object) -> object:
    return [v for v in _need_list(values, "compact") if truth(v)]


@func(ANY, ANY)
def _append(values: object, value: object) -> object:
    return [*_need_list(values, "push"), value]


@func(ANY, ANY)
def _prepend(values: object, value: object) -> object:
    return [value, *_need_list(values, "prepend")]


@func(variadic=ANY)
def _concat(*lists: object) -> object:
    out: list[Any] = []
    for item in lists:
        out.extend(_need_list(item, "concat type"))
    return out


@func(ANY, ANY)
def _has(needle: object, haystack: object) -> bool:
    if haystack is None or haystack is MISSING:
        return False
    return needle in _need_list(haystack, "find has")


@func(ANY, variadic=ANY)
def _without(values: object, *omit: object) -> object:
    return [v for v in _need_list(values, "find without") if v not in omit]


def to_int(value: object) -> int:
    """spf13/cast ToInt as Sprig uses it: numbers truncate, numeric strings parse, else 0."""
    from .sprig_numbers import to_int64

    return int(to_int64(value))


@func(ANY, variadic=ANY)
def _slice(values: object, *indices: object) -> object:
    if not isinstance(values, list | tuple):
        if values is None or values is MISSING:
            raise FuncError("runtime error: invalid memory address or nil pointer dereference")
        raise FuncError(f"list should be type of slice or array but {_kind_name(values)}")
    if not values:
        return None
    start = to_int(indices[0]) if indices else 0
    end = to_int(indices[1]) if len(indices) > 1 else len(values)
    if not 0 <= start <= end <= len(values):
        raise FuncError("reflect: slice index out of range")
    return _same_type(values, list(values[start:end]))


@func(INT, ANY)
def _chunk(size: int, values: object) -> object:
    items = _need_list(values, "chunk")
    if size <= 0:
        raise FuncError("runtime error: integer divide by zero")
    return [items[i : i + size] for i in range(0, len(items), size)]


@func(ANY)
def _deep_copy(value: object) -> object:
    return copy.deepcopy(value)


@func(ANY, ANY)
def _deep_equal(a: object, b: object) -> bool:
    return type(a) is type(b) and a == b


COLLECTION_FUNCS: dict[str, Func] = {
    "list": _list,
    "tuple": _list,
    "dict": _dict,
    "get": _get,
    "set": _set,
    "unset": _unset,
    "hasKey": _has_key,
    "pluck": _pluck,
    "keys": _keys,
    "values": _values,
    "pick": _pick,
    "omit": _omit,
    "merge": _merge,
    "mergeOverwrite": _merge_overwrite,
    "dig": _dig,
    "first": _first,
    "last": _last,
    "rest": _rest,
    "initial": _initial,
    "reverse": _reverse,
    "uniq": _uniq,
    "compact": _compact,
    "append": _append,
    "push": _append,
    "prepend": _prepend,
    "concat": _concat,
    "has": _has,
    "without": _without,
    "slice": _slice,
    "chunk": _chunk,
    "deepCopy": _deep_copy,
    "deepEqual": _deep_equal,
}
