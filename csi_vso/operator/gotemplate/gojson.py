"""Go's encoding/json as Sprig's toJson/toRawJson/toPrettyJson/fromJson use it.

Encoding: map keys sorted, no spaces, ``<``/``>``/``&`` escaped as ``\\u003c``... unless raw,
U+2028/U+2029 escaped, floats as Go prints them (``1``, ``1.5``, ``1e+21``, ``1e-7``), ``[]byte``
as base64. Decoding: numbers become float64, as Go's ``interface{}`` decoding does.
"""

from __future__ import annotations

import base64
import json
import math
import re

from .gofmt import format_float_shortest
from .values import MISSING, JSONNumber, Struct, sorted_keys

_NEEDS_WORK = re.compile(r'[^\x20-\x7e]|["\\<>&]')
_HTML_ESC = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"}
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_SURROGATE = re.compile("[\ud800-\udfff]")


class JSONError(ValueError):
    """The value cannot be encoded (NaN/Inf float, non-string map key)."""


def _string(text: str, escape_html: bool) -> str:
    """A JSON string as Go writes it (Go >= 1.22: ``\\b``/``\\f`` short escapes, as Python's)."""
    if not _NEEDS_WORK.search(text):
        return '"' + text + '"'
    out = json.dumps(text, ensure_ascii=False)
    if escape_html:
        out = out.replace("<", _HTML_ESC["<"]).replace(">", _HTML_ESC[">"]).replace("&", _HTML_ESC["&"])
    out = out.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return _SURROGATE.sub("\\\\ufffd", out)  # invalid UTF-8 is coerced to U+FFFD, as Go does


def _float(value: float) -> str:
    if math.isnan(value) or math.isinf(value):
        raise JSONError(f"json: unsupported value: {format_float_shortest(value)}")
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    mag = abs(value)
    if 1e-6 <= mag < 1e21:
        if value.is_integer():
            return str(int(value))
        text = repr(value)
        if "e" in text:  # repr used an exponent (1e-05): Go writes the same digits in fixed form
            text = _fixed_shortest(value)
        return text
    text = format_float_shortest(value)
    mant, _, exp = text.partition("e")
    sign = exp[0]
    digits = exp[1:].lstrip("0") or "0"
    return f"{mant}e{sign if sign == '-' else '+'}{digits}"


def _fixed_shortest(value: float) -> str:
    from decimal import Decimal

    return format(Decimal(repr(value)), "f")


def encode(value: object, *, escape_html: bool, indent: str | None = None, level: int = 0) -> str:
    """Go's json.Marshal (or MarshalIndent with prefix "" and ``indent``)."""
    if value is None or value is MISSING:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, JSONNumber):
        return str(value) if _JSON_NUMBER.fullmatch(value) else _string(value, escape_html)
    if isinstance(value, str):
        return _string(value, escape_html)
    if isinstance(value, bytes | bytearray):
        return '"' + base64.b64encode(bytes(value)).decode() + '"'
    nl = "" if indent is None else "\n" + indent * (level + 1)
    end = "" if indent is None else "\n" + indent * level
    colon = ":" if indent is None else ": "
    if isinstance(value, list | tuple):
        if not value:
            return "[]"
        items = [encode(v, escape_html=escape_html, indent=indent, level=level + 1) for v in value]
        return "[" + nl + ("," + nl).join(items) + end + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        keys = sorted_keys(value)
        items = []
        for k in keys:
            if not isinstance(k, str):
                raise JSONError("json: unsupported type: map key")
            body = encode(value[k], escape_html=escape_html, indent=indent, level=level + 1)
            items.append(_string(k, escape_html) + colon + body)
        return "{" + nl + ("," + nl).join(items) + end + "}"
    if isinstance(value, Struct):  # declaration order, json names, omitempty
        shown = {
            f.json_name: value.values[f.name]
            for f in value.fields
            if not (f.omit_empty and not value.values[f.name])
        }
        parts = [
            _string(k, escape_html)
            + colon
            + encode(v, escape_html=escape_html, indent=indent, level=level + 1)
            for k, v in shown.items()
        ]
        return "{" + nl + ("," + nl).join(parts) + end + "}" if parts else "{}"
    raise JSONError(f"json: unsupported type: {type(value).__name__}")


def _reject_constant(name: str) -> object:
    raise ValueError(name)


def decode(text: str) -> object:
    """Go's json.Unmarshal into interface{}: objects are maps, numbers float64."""
    return json.loads(text, parse_int=float, parse_constant=_reject_constant)
