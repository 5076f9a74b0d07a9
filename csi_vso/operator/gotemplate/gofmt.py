"""Go's fmt for the values templates see: Sprint, Sprintln, Sprintf and their verbs.

Covers %v %+v %#v %T %% %t %d %b %o %O %x %X %c %q %U %e %E %f %F %g %G %s with flags
``+ - # space 0``, width, precision and ``*``; composites print as Go does
(``map[a:1 b:2]``, ``[1 2]``, ``<nil>``) and bad verbs/arguments as ``%!d(string=x)``,
``%!d(MISSING)``, ``%!(EXTRA int=1)``, ``%!(NOVERB)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from .lexer import go_quote, go_quote_rune
from .values import MISSING, Struct, go_bytes, sorted_keys, type_name

NIL = "<nil>"


def format_float_shortest(value: float, fmt: str = "g") -> str:
    """strconv.FormatFloat(v, 'g', -1, 64): the shortest digits; %e when exp < -4 or >= 21/6."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    if value == 0:
        return sign + "0"
    digits, exp = _shortest_digits(abs(value))
    return sign + _layout_g(digits, exp, 6)


def _shortest_digits(value: float) -> tuple[str, int]:
    """(significant digits, decimal exponent of the first digit) of the shortest repr."""
    tup = Decimal(repr(value)).normalize().as_tuple()
    digits = "".join(str(d) for d in tup.digits)
    exponent = int(tup.exponent)
    return digits, exponent + len(digits) - 1


def _layout_g(digits: str, exp: int, eprec: int) -> str:
    if exp < -4 or exp >= eprec:
        mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{mant}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if exp < 0:
        return "0." + "0" * (-exp - 1) + digits
    if len(digits) <= exp + 1:
        return digits + "0" * (exp + 1 - len(digits))
    return digits[: exp + 1] + "." + digits[exp + 1 :]


def _format_g(value: float, prec: int, sharp: bool) -> str:
    if prec == 0:
        prec = 1
    if value == 0:
        digits, exp = "0", 0
    else:
        quant = Decimal(value).quantize
        d = Decimal(value)
        exp0 = d.adjusted()
        rounded = quant(Decimal(1).scaleb(exp0 - prec + 1), rounding=ROUND_HALF_EVEN)
        tup = rounded.normalize().as_tuple()
        digits = "".join(str(x) for x in tup.digits)
        exp = int(tup.exponent) + len(digits) - 1
    eprec = prec
    if eprec > len(digits) and len(digits) >= exp + 1:
        eprec = len(digits)
    if sharp:
        digits = digits + "0" * (prec - len(digits))
        eprec = prec
    text = _layout_g(digits, exp, eprec)
    if sharp and "." not in text.split("e")[0]:
        head, _, tail = text.partition("e")
        text = head + "." + ("e" + tail if tail else "")
    return text


def go_sprint_value(value: object) -> str:
    """``%v`` of one value, as fmt.Sprint prints it."""
    return format_verb(value, "v", _Spec())


def sprint(args: list[object]) -> str:
    """fmt.Sprint: spaces between operands when neither side is a string."""
    out: list[str] = []
    prev_string = True
    for i, arg in enumerate(args):
        is_string = isinstance(arg, str)
        if i > 0 and not is_string and not prev_string:
            out.append(" ")
        out.append(go_sprint_value(arg))
        prev_string = is_string
    return "".join(out)


def sprintln(args: list[object]) -> str:
    """fmt.Sprintln: always spaces, then a newline."""
    return " ".join(go_sprint_value(a) for a in args) + "\n"


@dataclass
class _Spec:
    plus: bool = False
    minus: bool = False
    sharp: bool = False
    space: bool = False
    zero: bool = False
    width: int | None = None
    prec: int | None = None
    plus_v: bool = False  # %+v: struct field names


MAX_WIDTH = 1 << 16


def sprintf(fmt: str, args: list[object]) -> str:
    """fmt.Sprintf with Go's verbs and Go's complaints about bad ones."""
    out: list[str] = []
    argi = 0
    i = 0
    n = len(fmt)
    while i < n:
        j = fmt.find("%", i)
        if j < 0:
            out.append(fmt[i:])
            break
        out.append(fmt[i:j])
        i = j + 1
        spec = _Spec()
        while i < n and fmt[i] in "+-# 0":
            c = fmt[i]
            spec.plus |= c == "+"
            spec.minus |= c == "-"
            spec.sharp |= c == "#"
            spec.space |= c == " "
            spec.zero |= c == "0"
            i += 1
        bad_width = bad_prec = False
        if i < n and fmt[i] == "*":
            i += 1
            if argi < len(args) and isinstance(args[argi], int) and not isinstance(args[argi], bool):
                w = int(args[argi])  # type: ignore[call-overload]
                if w < 0:
                    spec.minus, w = True, -w
                spec.width = w
            else:
                bad_width = True
            argi += 1
        else:
            start = i
            while i < n and fmt[i].isdigit():
                i += 1
            if i > start:
                spec.width = int(fmt[start:i])
        if i < n and fmt[i] == ".":
            i += 1
            if i < n and fmt[i] == "*":
                i += 1
                if argi < len(args) and isinstance(args[argi], int) and not isinstance(args[argi], bool):
                    p = int(args[argi])  # type: ignore[call-overload]
                    spec.prec = p if p >= 0 else None
                    bad_prec = p < 0
                else:
                    bad_prec = True
                argi += 1
            else:
                start = i
                while i < n and fmt[i].isdigit():
                    i += 1
                spec.prec = int(fmt[start:i]) if i > start else 0
        if (spec.width or 0) > MAX_WIDTH or (spec.prec or 0) > MAX_WIDTH:
            raise ValueError(f"width or precision larger than {MAX_WIDTH}")
        if bad_width:
            out.append("%!(BADWIDTH)")
        if bad_prec:
            out.append("%!(BADPREC)")
        if i >= n:
            out.append("%!(NOVERB)")
            break
        verb = fmt[i]
        i += 1
        if verb == "%":
            out.append("%")
            continue
        if argi >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        out.append(format_verb(args[argi], verb, spec))
        argi += 1
    if argi < len(args):
        extra = ", ".join(
            NIL if a is None or a is MISSING else f"{type_name(a)}={go_sprint_value(a)}" for a in args[argi:]
        )
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _bad_verb(value: object, verb: str) -> str:
    if value is None or value is MISSING:
        return f"%!{verb}({NIL})"
    return f"%!{verb}({type_name(value)}={go_sprint_value(value)})"


def _pad(text: str, spec: _Spec, zero_ok: bool = False) -> str:
    width = spec.width
    if width is None or len(text) >= width:
        return text
    fill = width - len(text)
    if spec.minus:
        return text + " " * fill
    if spec.zero and zero_ok:
        sign = text[:1] if text[:1] in "+- " else ""
        return sign + "0" * fill + text[len(sign) :]
    return " " * fill + text


def format_verb(value: object, verb: str, spec: _Spec) -> str:
    """One operand under one verb."""
    if verb == "T":
        return _pad(type_name(value), spec)
    if value is None or value is MISSING:
        if verb == "v":
            return _pad(NIL, spec)
        return _bad_verb(value, verb)
    if verb == "v" and spec.sharp:
        return _pad(go_syntax(value), spec)
    if verb == "v" and spec.plus:  # %+v only adds struct field names; no sign for numbers
        spec = _Spec(False, spec.minus, False, spec.space, spec.zero, spec.width, spec.prec, plus_v=True)
    if isinstance(value, bool):
        if verb in "vt":
            return _pad("true" if value else "false", spec)
        return _bad_verb(value, verb)
    if isinstance(value, int):
        return _format_int(value, verb, spec)
    if isinstance(value, float):
        return _format_float(value, verb, spec)
    if isinstance(value, str):
        return _format_str(value, verb, spec)
    if isinstance(value, bytes | bytearray):
        if verb in "sqxX":
            return _format_str(value.decode("utf-8", "replace"), verb, spec, raw=bytes(value))
        return "[" + " ".join(format_verb(b, verb, spec) for b in value) + "]"
    if isinstance(value, list | tuple):
        return "[" + " ".join(format_verb(e, verb, spec) for e in value) + "]"
    if isinstance(value, dict):
        items = (
            f"{format_verb(k, verb, spec)}:{format_verb(value[k], verb, spec)}" for k in sorted_keys(value)
        )
        return "map[" + " ".join(items) + "]"
    if isinstance(value, Struct):
        inner = " ".join(
            (f.name + ":" if spec.plus_v else "") + format_verb(value.values[f.name], verb, spec)
            for f in value.fields
        )
        return ("&" if value.go_type.startswith("*") else "") + "{" + inner + "}"
    if callable(value):
        return _bad_verb(value, verb) if verb != "v" else "0x0"
    return _pad(str(value), spec)


def _format_int(value: int, verb: str, spec: _Spec) -> str:
    if verb == "c":
        return _pad(chr(value) if 0 <= value <= 0x10FFFF else "\ufffd", spec)
    if verb == "q":
        return _pad(go_quote_rune(value if 0 <= value <= 0x10FFFF else 0xFFFD), spec)
    if verb == "U":
        text = f"U+{value:04X}"
        if spec.sharp and 0 <= value <= 0x10FFFF and chr(value).isprintable():
            text += f" '{chr(value)}'"
        return _pad(text, spec)
    bases = {"v": 10, "d": 10, "b": 2, "o": 8, "O": 8, "x": 16, "X": 16}
    if verb not in bases:
        return _bad_verb(value, verb)
    base = bases[verb]
    digits = format(abs(value), {2: "b", 8: "o", 10: "d", 16: "x"}[base])
    if verb == "X":
        digits = digits.upper()
    if spec.prec is not None:
        if spec.prec == 0 and value == 0:
            digits = ""
        digits = digits.rjust(spec.prec, "0")
    prefix = ""
    if spec.sharp:
        prefix = {2: "0b", 8: "0", 16: "0x" if verb == "x" else "0X"}.get(base, "")
        if base == 8 and digits.startswith("0"):
            prefix = ""
    if verb == "O":
        prefix = "0o"
    sign = "-" if value < 0 else ("+" if spec.plus else (" " if spec.space else ""))
    body = prefix + digits
    if spec.zero and not spec.minus and spec.prec is None and spec.width is not None:
        fill = spec.width - len(sign) - len(body)
        if fill > 0:
            body = prefix + "0" * fill + digits
    return _pad(sign + body, spec)


def _format_float(value: float, verb: str, spec: _Spec) -> str:
    if verb not in "veEfFgG":
        return _bad_verb(value, verb)
    if math.isnan(value) or math.isinf(value):
        text = "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
        if math.isinf(value) and value > 0 and not spec.plus:
            text = "Inf" if verb != "v" or spec.width else "+Inf"
            text = "+Inf" if verb == "v" else text
        return _pad(text, spec)
    neg = math.copysign(1.0, value) < 0
    mag = abs(value)
    if verb == "v" or (verb in "gG" and spec.prec is None):
        text = format_float_shortest(mag) if not spec.sharp else _format_g(mag, 6, True)
    elif verb in "gG":
        text = _format_g(mag, spec.prec or 0, spec.sharp)
    elif verb in "eE":
        text = f"{mag:.{6 if spec.prec is None else spec.prec}e}"
    else:
        text = f"{mag:.{6 if spec.prec is None else spec.prec}f}"
    if verb in "EG":
        text = text.upper()
    sign = "-" if neg else ("+" if spec.plus else (" " if spec.space else ""))
    if spec.zero and not spec.minus and spec.width is not None:
        fill = spec.width - len(sign) - len(text)
        if fill > 0:
            text = "0" * fill + text
    return _pad(sign + text, spec)


def _format_str(value: str, verb: str, spec: _Spec, raw: bytes | None = None) -> str:
    if verb in "vs":
        text = value if spec.prec is None else value[: spec.prec]
        return _pad(text, spec)
    if verb == "q":
        text = value if spec.prec is None else value[: spec.prec]
        if spec.sharp and "`" not in text and all(c.isprintable() or c == "\t" for c in text):
            return _pad("`" + text + "`", spec)
        quoted = go_quote(text)
        if spec.plus:
            quoted = "".join(c if ord(c) < 0x80 else _ascii_escape(c) for c in quoted)
        return _pad(quoted, spec)
    if verb in "xX":
        data = raw if raw is not None else go_bytes(value)
        if spec.prec is not None:
            data = data[: spec.prec]
        sep = " " if spec.space else ""
        pieces = [(("0x" if verb == "x" else "0X") if spec.sharp else "") + f"{b:02x}" for b in data]
        if spec.sharp and not spec.space:
            pieces = [pieces[0]] + [f"{b:02x}" for b in data[1:]] if pieces else []
        text = sep.join(pieces)
        return _pad(text.upper().replace("0X", "0X") if verb == "X" else text, spec)
    return _bad_verb(value, verb)


def _ascii_escape(ch: str) -> str:
    code = ord(ch)
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def go_syntax(value: object) -> str:
    """``%#v``: a Go-syntax representation."""
    if value is None or value is MISSING:
        return "interface {}(nil)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_float_shortest(value)
    if isinstance(value, str):
        return go_quote(value)
    if isinstance(value, bytes | bytearray):
        return "[]byte{" + ", ".join(f"0x{b:x}" for b in value) + "}"
    if isinstance(value, list | tuple):
        return type_name(value) + "{" + ", ".join(go_syntax(e) for e in value) + "}"
    if isinstance(value, dict):
        inner = ", ".join(f"{go_quote(str(k))}:{go_syntax(value[k])}" for k in sorted_keys(value))
        return type_name(value) + "{" + inner + "}"
    return str(value)
