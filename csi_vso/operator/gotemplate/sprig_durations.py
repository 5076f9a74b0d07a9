"""Sprig's ``duration`` and ``durationRound``: Go's time.Duration printing and parsing.

Neither reads the clock (``ago``, ``now``, dates do, and are left out: a template's output must
depend on its data only, or every sync would rewrite the Secret). Sprig's own type switches are
kept: ``duration`` takes seconds as an int64 or a decimal string (a template's literal ``95`` is
an ``int``, which Sprig turns into 0), ``durationRound`` a Go duration string or int64
nanoseconds.
"""

from __future__ import annotations

import re

from .funcs import ANY, Func
from .values import Int64

_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
}
_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")
_MAX = 2**63 - 1


def _frac(value: int, digits: int) -> tuple[str, int]:
    """Go's fmtFrac: the fraction of ``value`` / 10**digits without trailing zeros."""
    fraction = value % 10**digits
    whole = value // 10**digits
    if fraction == 0:
        return "", whole
    return "." + f"{fraction:0{digits}d}".rstrip("0"), whole


def duration_string(nanoseconds: int) -> str:
    """Go's time.Duration.String."""
    neg = nanoseconds < 0
    u = -nanoseconds if neg else nanoseconds
    if u < 10**9:
        if u == 0:
            return "0s"
        if u < 1_000:
            text = f"{u}ns"
        elif u < 1_000_000:
            frac, whole = _frac(u, 3)
            text = f"{whole}{frac}µs"
        else:
            frac, whole = _frac(u, 6)
            text = f"{whole}{frac}ms"
    else:
        frac, seconds = _frac(u, 9)
        text = f"{seconds % 60}{frac}s"
        minutes = seconds // 60
        if minutes:
            text = f"{minutes % 60}m" + text
            hours = minutes // 60
            if hours:
                text = f"{hours}h" + text
    return ("-" if neg else "") + text


def parse_duration(text: str) -> int | None:
    """Go's time.ParseDuration in nanoseconds, or None where Go returns an error."""
    body = text
    sign = 1
    if body[:1] in ("-", "+"):
        sign = -1 if body[0] == "-" else 1
        body = body[1:]
    if body == "0":
        return 0
    if not body:
        return None
    total = 0
    pos = 0
    while pos < len(body):
        match = _PART.match(body, pos)
        if match is None or match.group(1) in ("", "."):
            return None
        number, unit = match.groups()
        whole, _, fraction = number.partition(".")
        scale = _NS[unit]
        total += int(whole or "0") * scale
        if fraction:
            total += int(fraction) * scale // 10 ** len(fraction)
        if total > _MAX:
            return None
        pos = match.end()
    return sign * total


def _duration(seconds: object) -> str:
    if isinstance(seconds, str):
        n = int(seconds) if re.fullmatch(r"[+-]?[0-9]+", seconds) else 0
    elif isinstance(seconds, Int64):
        n = int(seconds)
    else:
        n = 0
    return duration_string(max(-(2**63), min(_MAX, n * 10**9)))


_ROUND_UNITS = (
    (365 * 24 * 3600 * 10**9, "y"),
    (30 * 24 * 3600 * 10**9, "mo"),
    (24 * 3600 * 10**9, "d"),
    (3600 * 10**9, "h"),
    (60 * 10**9, "m"),
    (10**9, "s"),
)


def _duration_round(value: object) -> str:
    if isinstance(value, str):
        nanoseconds = parse_duration(value) or 0
    elif isinstance(value, Int64):
        nanoseconds = int(value)
    else:
        nanoseconds = 0
    u = abs(nanoseconds)
    for size, suffix in _ROUND_UNITS:
        if u > size:
            return f"{u // size}{suffix}"
    return "0s"


DURATION_FUNCS: dict[str, Func] = {
    "duration": Func(_duration, (ANY,)),
    "durationRound": Func(_duration_round, (ANY,)),
}
