"""Sprig's arithmetic and conversions: integers are int64 (``%T`` says so), as in Sprig.

Conversions follow spf13/cast as Sprig calls it: numbers truncate toward zero, strings parse
(``"42"``, ``"0x1f"``, ``"3.0"``), booleans are 1/0, anything else is 0 — never an error.
Integer division and modulo truncate toward zero like Go's; dividing by zero is Go's runtime
error. ``until``/``untilStep``/``seq`` are capped (a tenant could ask for a billion numbers).
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable
from decimal import Decimal, localcontext

from .errors import CURRENT_LIMITS
from .funcs import ANY, FLOAT, INT, STRING, Func, FuncError, func
from .gofmt import format_float_shortest
from .parser import parse_go_int
from .values import Int64, IntList, JSONNumber


def _parse_number_string(text: str) -> float | int:
    text = text.strip()
    value = parse_go_int(text)
    if value is not None:
        return value
    trimmed = text
    if "." in trimmed and trimmed.rstrip("0").endswith("."):  # cast's trimZeroDecimal
        trimmed = trimmed.rstrip("0").rstrip(".")
        value = parse_go_int(trimmed)
        if value is not None:
            return value
    return 0


def to_int64(value: object) -> Int64:
    if isinstance(value, bool):
        return Int64(1 if value else 0)
    if isinstance(value, int):
        return Int64(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return Int64(-(2**63))
        return Int64(int(value))
    if isinstance(value, JSONNumber):  # json.Number.Int64: base 10, no fraction
        return Int64(int(value)) if re.fullmatch(r"[+-]?[0-9]+", value) else Int64(0)
    if isinstance(value, str):
        return Int64(int(_parse_number_string(value)))
    return Int64(0)


def to_float64(value: object) -> float:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip()) if value.strip().lower() not in ("nan", "inf", "-inf") else 0.0
        except ValueError:
            return 0.0
    return 0.0


def _wrap64(value: int) -> Int64:
    """int64 overflow wraps around, as Go's arithmetic does."""
    value &= (1 << 64) - 1
    return Int64(value - (1 << 64) if value >= 1 << 63 else value)


def _go_div(a: int, b: int) -> int:
    if b == 0:
        raise FuncError("runtime error: integer divide by zero")
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _go_mod(a: int, b: int) -> int:
    if b == 0:
        raise FuncError("runtime error: integer divide by zero")
    return a - _go_div(a, b) * b


@func(variadic=ANY)
def _add(*values: object) -> Int64:
    return _wrap64(sum(to_int64(v) for v in values))


@func(ANY)
def _add1(value: object) -> Int64:
    return _wrap64(to_int64(value) + 1)


@func(ANY, ANY)
def _sub(a: object, b: object) -> Int64:
    return _wrap64(to_int64(a) - to_int64(b))


@func(ANY, variadic=ANY)
def _mul(a: object, *values: object) -> Int64:
    result = int(to_int64(a))
    for v in values:
        result = int(_wrap64(result * to_int64(v)))
    return Int64(result)


@func(ANY, ANY)
def _div(a: object, b: object) -> Int64:
    return _wrap64(_go_div(to_int64(a), to_int64(b)))


@func(ANY, ANY)
def _mod(a: object, b: object) -> Int64:
    return _wrap64(_go_mod(to_int64(a), to_int64(b)))


@func(ANY, variadic=ANY)
def _max(a: object, *values: object) -> Int64:
    return Int64(max([to_int64(a), *(to_int64(v) for v in values)]))


@func(ANY, variadic=ANY)
def _min(a: object, *values: object) -> Int64:
    return Int64(min([to_int64(a), *(to_int64(v) for v in values)]))


def _decimal(value: object) -> Decimal:
    """shopspring's NewFromFloat: the shortest decimal that reads back as the float."""
    number = to_float64(value)
    if math.isnan(number) or math.isinf(number):
        raise FuncError(f"Cannot create a Decimal from {format_float_shortest(number)}")
    return Decimal(repr(number))


def _decimal_op(first: object, rest: tuple[object, ...], op: Callable[[Decimal, Decimal], Decimal]) -> float:
    """Sprig's execDecimalOp: exact decimal arithmetic, then the nearest float64."""
    with localcontext() as ctx:
        ctx.prec = 34
        result = _decimal(first)
        for value in rest:
            result = op(result, _decimal(value))
        return float(result)


def _div_decimal(a: Decimal, b: Decimal) -> Decimal:
    if b == 0:
        raise FuncError("decimal division by 0")
    return a / b


@func(variadic=ANY)
def _addf(*values: object) -> float:
    return _decimal_op(0.0, values, lambda a, b: a + b)


@func(ANY, variadic=ANY)
def _subf(a: object, *values: object) -> float:
    return _decimal_op(a, values, lambda x, y: x - y)


@func(ANY, variadic=ANY)
def _mulf(a: object, *values: object) -> float:
    return _decimal_op(a, values, lambda x, y: x * y)


@func(ANY, variadic=ANY)
def _divf(a: object, *values: object) -> float:
    return _decimal_op(a, values, _div_decimal)


@func(ANY, variadic=ANY)
def _maxf(a: object, *values: object) -> float:
    return max([to_float64(a), *(to_float64(v) for v in values)])


@func(ANY, variadic=ANY)
def _minf(a: object, *values: object) -> float:
    return min([to_float64(a), *(to_float64(v) for v in values)])


@func(ANY)
def _floor(value: object) -> float:
    return float(math.floor(to_float64(value)))


@func(ANY)
def _ceil(value: object) -> float:
    return float(math.ceil(to_float64(value)))


@func(ANY, INT, variadic=FLOAT)
def _round(value: object, places: int, *round_on: float) -> float:
    """Sprig's round: ceil when the fraction (sign kept, as math.Modf) reaches round_on."""
    threshold = round_on[0] if round_on else 0.5
    power = math.pow(10, places)
    digit = power * to_float64(value)
    fraction = math.modf(digit)[0]
    rounded = math.ceil(digit) if fraction >= threshold else math.floor(digit)
    return rounded / power


def _until_step(start: int, stop: int, step: int) -> IntList:
    if step == 0 or (stop < start and step > 0) or (stop > start and step < 0):
        return IntList()
    count = max(0, (stop - start + step + (-1 if step > 0 else 1)) // step)
    limit = CURRENT_LIMITS.get().max_list
    if count > limit:
        raise FuncError(f"more than the limit of {limit} items")
    return IntList(range(start, stop, step))


@func(INT)
def _until(count: int) -> IntList:
    return _until_step(0, count, 1 if count >= 0 else -1)


@func(INT, INT, INT)
def _until_step_f(start: int, stop: int, step: int) -> IntList:
    return _until_step(start, stop, step)


@func(variadic=INT)
def _seq(*params: int) -> str:
    if len(params) == 1:
        start, end = 1, params[0]
        inc = -1 if end < start else 1
        values = _until_step(start, end + inc, inc)
    elif len(params) == 2:
        start, end = params
        step = -1 if end < start else 1
        values = _until_step(start, end + step, step)
    elif len(params) == 3:
        start, step, end = params
        inc = 1
        if end < start:
            inc = -1
            if step > 0:
                return ""
        values = _until_step(start, end + inc, step)
    else:
        return ""
    return " ".join(str(v) for v in values)


_DECIMAL = re.compile(r"[+-]?[0-9]+")


@func(STRING)
def _atoi(text: str) -> int:
    """strconv.Atoi, its error ignored as Sprig does: decimal only, out of range clamps."""
    if not _DECIMAL.fullmatch(text):
        return 0
    return max(-(2**63), min(2**63 - 1, int(text, 10)))


@func(ANY)
def _to_decimal(value: object) -> Int64:
    text = format_float_shortest(value) if isinstance(value, float) else str(value)
    try:
        return Int64(int(text, 8))
    except ValueError:
        return Int64(0)


@func(INT, INT)
def _rand_int(low: int, high: int) -> int:
    if high <= low:
        raise FuncError("invalid argument to Intn")
    return random.SystemRandom().randrange(low, high)


NUMBER_FUNCS: dict[str, Func] = {
    "add": _add,
    "add1": _add1,
    "sub": _sub,
    "mul": _mul,
    "div": _div,
    "mod": _mod,
    "max": _max,
    "biggest": _max,
    "min": _min,
    "addf": _addf,
    "add1f": Func(lambda v: to_float64(v) + 1, (ANY,)),
    "subf": _subf,
    "mulf": _mulf,
    "divf": _divf,
    "maxf": _maxf,
    "minf": _minf,
    "floor": _floor,
    "ceil": _ceil,
    "round": _round,
    "until": _until,
    "untilStep": _until_step_f,
    "seq": _seq,
    "atoi": _atoi,
    "int": Func(lambda v: int(to_int64(v)), (ANY,)),
    "int64": Func(to_int64, (ANY,)),
    "float64": Func(to_float64, (ANY,)),
    "toDecimal": _to_decimal,
    "randInt": _rand_int,
}
