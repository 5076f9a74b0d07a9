"""Label and field selectors: parse the query-string syntax, then match objects (pure).

Label selector grammar as the real server accepts it: comma-separated requirements, each
``key``, ``!key``, ``key=value``, ``key==value``, ``key!=value``, ``key in (a,b)`` or
``key notin (a,b)``. ``!=`` and ``notin`` also match objects without the label, as in
Kubernetes. Field selectors support ``=``, ``==`` and ``!=`` on the fields each kind
declares (``metadata.name`` and ``metadata.namespace`` everywhere). Parse errors raise
:class:`SelectorError`, which the HTTP layer reports as 400 BadRequest.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

_NAME = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_NAME_RE = re.compile(rf"^{_NAME}$")
_DNS1123_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


_PREFIX_MSG = (
    "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
    "'-' or '.', and must start and end with an alphanumeric character"
)
_NAME_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used "
    "for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)


class SelectorError(ValueError):
    """A selector string that does not parse."""


def label_key_problems(key: str) -> list[str]:
    """Why ``key`` is not a valid label/annotation key (empty list when it is)."""
    problems: list[str] = []
    prefix, sep, name = key.rpartition("/")
    if sep and (not prefix or len(prefix) > 253 or not _DNS1123_SUBDOMAIN_RE.match(prefix)):
        problems.append(_PREFIX_MSG)
    if not name or len(name) > 63 or not _LABEL_NAME_RE.match(name):
        problems.append(_NAME_MSG)
    return problems


def label_value_problems(value: str) -> list[str]:
    """Why ``value`` is not a valid label value (empty list when it is)."""
    if value == "":
        return []
    problems: list[str] = []
    if len(value) > 63:
        problems.append("must be no more than 63 characters")
    if not _LABEL_NAME_RE.match(value):
        problems.append(_VALUE_MSG)
    return problems


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.op == "exists":
            return present
        if self.op == "!exists":
            return not present
        if self.op in ("=", "in"):
            return present and labels[self.key] in self.values
        # "!=" and "notin" match objects without the label.
        return not present or labels[self.key] not in self.values


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if not self.requirements:
            return True
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements


def _split_top_level(text: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise SelectorError(f"unable to parse requirement: unbalanced ')' in {text!r}")
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if depth != 0:
        raise SelectorError(f"unable to parse requirement: unbalanced '(' in {text!r}")
    parts.append("".join(current))
    return parts


_SET_RE = re.compile(r"^\s*(\S+?)\s+(in|notin)\s*\((.*)\)\s*$")
_EQ_RE = re.compile(r"^\s*([^=!\s]+)\s*(==|=|!=)\s*(\S*)\s*$")


def _check_key(key: str) -> None:
    problems = label_key_problems(key)
    if problems:
        raise SelectorError(
            f"unable to parse requirement: key: Invalid value: {key!r}: {'; '.join(problems)}"
        )


def _check_value(value: str) -> None:
    problems = label_value_problems(value)
    if problems:
        raise SelectorError(
            f"unable to parse requirement: values[0]: Invalid value: {value!r}: {'; '.join(problems)}"
        )


def parse_label_selector(text: str | None) -> LabelSelector:
    """Parse a ``labelSelector`` query value; empty or None selects everything."""
    if text is None or not text.strip():
        return LabelSelector()
    requirements: list[Requirement] = []
    for raw in _split_top_level(text):
        part = raw.strip()
        if not part:
            raise SelectorError(f"found ',', expected: identifier in {text!r}")
        set_match = _SET_RE.match(part)
        if set_match:
            key, op, inner = set_match.groups()
            _check_key(key)
            values = [v.strip() for v in inner.split(",")]
            if values == [""]:
                raise SelectorError(f"for 'in', 'notin' operators, values set can't be empty: {part!r}")
            for value in values:
                _check_value(value)
            requirements.append(Requirement(key, op, frozenset(values)))
            continue
        eq_match = _EQ_RE.match(part)
        if eq_match:
            key, op, value = eq_match.groups()
            _check_key(key)
            _check_value(value)
            requirements.append(Requirement(key, "!=" if op == "!=" else "=", frozenset([value])))
            continue
        if part.startswith("!"):
            key = part[1:].strip()
            _check_key(key)
            requirements.append(Requirement(key, "!exists"))
            continue
        if re.fullmatch(r"\S+", part) and not any(c in part for c in "=!()<>"):
            _check_key(part)
            requirements.append(Requirement(part, "exists"))
            continue
        raise SelectorError(f"unable to parse requirement: {part!r}")
    return LabelSelector(tuple(requirements))


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    value: str
    negate: bool


@dataclass(frozen=True)
class FieldSelector:
    requirements: tuple[FieldRequirement, ...] = ()

    def matches(self, fields: Callable[[str], str]) -> bool:
        return all((fields(r.field) == r.value) != r.negate for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements

    def equality(self, field: str) -> str | None:
        """The value ``field`` must equal, when the selector pins it (used to narrow scans)."""
        for r in self.requirements:
            if r.field == field and not r.negate:
                return r.value
        return None


def parse_field_selector(text: str | None, supported: frozenset[str]) -> FieldSelector:
    """Parse a ``fieldSelector`` query value against the fields a kind supports."""
    if text is None or not text.strip():
        return FieldSelector()
    out: list[FieldRequirement] = []
    for raw in text.split(","):
        part = raw.strip()
        match = re.fullmatch(r"([^=!\s]+)\s*(==|=|!=)\s*(.*)", part)
        if not match:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{part}'")
        field, op, value = match.groups()
        if field not in supported:
            raise SelectorError(f"field label not supported: {field}")
        out.append(FieldRequirement(field, value.strip(), op == "!="))
    return FieldSelector(tuple(out))


def field_value(obj: Mapping[str, Any], path: str) -> str:
    """The string value of a dotted field path on an object ('' when absent)."""
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, Mapping):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)
