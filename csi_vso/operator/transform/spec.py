"""``transformation`` blocks and ``SecretTransformation`` specs: untrusted dicts in, frozen specs out.

Pure, and independent of :mod:`csi_vso.operator.api` (which calls :func:`parse_transformation`
for ``destination.transformation``) so the two modules do not import each other.

Field names, nesting and defaults are VSO's (``api/v1beta1`` of vault-secrets-operator):

- ``transformation``: ``templates`` (map of key -> ``{name, text}``), ``transformationRefs``
  (``{name, namespace, templateRefs: [{name, keyOverride}], ignoreIncludes, ignoreExcludes}``),
  ``includes`` / ``excludes`` (regular expressions over source key names), ``excludeRaw``.
- ``SecretTransformation.spec``: ``templates``, ``sourceTemplates`` (list of ``{name, text}``),
  ``includes``, ``excludes``.

Regular expressions are checked here with RE2 (:mod:`patterns`: Go's syntax, linear time); one
that does not compile is a spec problem, not a runtime surprise.
Limits keep a tenant from handing the operator unbounded work: at most ``MAX_TEMPLATES``
templates per object and ``MAX_TEMPLATE_BYTES`` of text per template.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from csi_vso.operator.transform.patterns import check_pattern

MAX_TEMPLATES = 64
MAX_TEMPLATE_BYTES = 64 * 1024
MAX_PATTERNS = 64
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


class TransformSpecError(ValueError):
    """A SecretTransformation that cannot be used; ``problems`` lists every reason."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("invalid SecretTransformation: " + "; ".join(problems))


@dataclass(frozen=True)
class Template:
    """Template text; ``name`` empty means "named after where it is defined" (see ``gather``)."""

    name: str
    text: str


@dataclass(frozen=True)
class TemplateRef:
    name: str
    key_override: str = ""


@dataclass(frozen=True)
class TransformationRef:
    name: str
    namespace: str = ""  # empty: the referring secret's namespace (VSO's rule)
    template_refs: tuple[TemplateRef, ...] = ()
    ignore_includes: bool = False
    ignore_excludes: bool = False


@dataclass(frozen=True)
class Transformation:
    templates: tuple[tuple[str, Template], ...] = ()  # (key, template), sorted by key
    refs: tuple[TransformationRef, ...] = ()
    includes: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()
    exclude_raw: bool = False


@dataclass(frozen=True)
class SecretTransformationSpec:
    templates: tuple[tuple[str, Template], ...] = ()
    source_templates: tuple[Template, ...] = ()
    includes: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()


# --------------------------------------------------------------------------- readers


def _is_map(value: Any) -> bool:
    return isinstance(value, Mapping)


def _string(
    data: Mapping[str, Any], key: str, where: str, problems: list[str], *, required: bool = False
) -> str:
    value = data.get(key)
    if value is None or value == "":
        if required:
            problems.append(f"{where}.{key} is required")
        return ""
    if not isinstance(value, str):
        problems.append(f"{where}.{key} must be a string")
        return ""
    return value


def _boolean(data: Mapping[str, Any], key: str, where: str, problems: list[str]) -> bool:
    value = data.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        problems.append(f"{where}.{key} must be true or false")
        return False
    return value


def _patterns(data: Mapping[str, Any], key: str, where: str, problems: list[str]) -> tuple[str, ...]:
    value = data.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.append(f"{where}.{key} must be a list of regular expressions")
        return ()
    if len(value) > MAX_PATTERNS:
        problems.append(f"{where}.{key} has {len(value)} patterns (at most {MAX_PATTERNS})")
        return ()
    for index, pattern in enumerate(value):
        try:
            check_pattern(pattern)
        except ValueError as exc:
            problems.append(f"{where}.{key}[{index}] {pattern!r}: {exc}")
    return tuple(value)


def _template(value: Any, where: str, problems: list[str]) -> Template | None:
    if not _is_map(value):
        problems.append(f"{where} must be an object with text")
        return None
    text = value.get("text")
    if not isinstance(text, str):
        problems.append(f"{where}.text is required")
        return None
    if len(text.encode()) > MAX_TEMPLATE_BYTES:
        problems.append(f"{where}.text is longer than {MAX_TEMPLATE_BYTES} bytes")
        return None
    return Template(name=_string(value, "name", where, problems), text=text)


def _templates(data: Mapping[str, Any], where: str, problems: list[str]) -> tuple[tuple[str, Template], ...]:
    value = data.get("templates")
    if value is None:
        return ()
    if not _is_map(value):
        problems.append(f"{where}.templates must map keys to templates")
        return ()
    if len(value) > MAX_TEMPLATES:
        problems.append(f"{where}.templates has {len(value)} entries (at most {MAX_TEMPLATES})")
        return ()
    found = []
    for key in sorted(value, key=str):
        if not isinstance(key, str) or not _SECRET_KEY.match(key) or len(key) > 253:
            problems.append(f"{where}.templates key {key!r} is not a valid Secret key")
            continue
        template = _template(value[key], f"{where}.templates.{key}", problems)
        if template is not None:
            found.append((key, template))
    return tuple(found)


def _ref(value: Any, where: str, problems: list[str]) -> TransformationRef | None:
    if not _is_map(value):
        problems.append(f"{where} must be an object")
        return None
    name = _string(value, "name", where, problems, required=True)
    namespace = _string(value, "namespace", where, problems)
    if name and not _DNS_SUBDOMAIN.match(name):
        problems.append(f"{where}.name {name!r} is not a valid name")
    if namespace and not _DNS_LABEL.match(namespace):
        problems.append(f"{where}.namespace {namespace!r} is not a valid namespace")
    template_refs = []
    raw_refs = value.get("templateRefs")
    if raw_refs is not None and not isinstance(raw_refs, list):
        problems.append(f"{where}.templateRefs must be a list")
        raw_refs = []
    for index, item in enumerate(raw_refs or []):
        item_where = f"{where}.templateRefs[{index}]"
        if not _is_map(item):
            problems.append(f"{item_where} must be an object")
            continue
        ref_name = _string(item, "name", item_where, problems, required=True)
        key = _string(item, "keyOverride", item_where, problems)
        if key and (not _SECRET_KEY.match(key) or len(key) > 253):
            problems.append(f"{item_where}.keyOverride {key!r} is not a valid Secret key")
        if ref_name:
            template_refs.append(TemplateRef(name=ref_name, key_override=key))
    return TransformationRef(
        name=name,
        namespace=namespace,
        template_refs=tuple(template_refs),
        ignore_includes=_boolean(value, "ignoreIncludes", where, problems),
        ignore_excludes=_boolean(value, "ignoreExcludes", where, problems),
    )


# --------------------------------------------------------------------------- parsers


def parse_transformation(value: Any, where: str, problems: list[str]) -> Transformation | None:
    """``destination.transformation`` (None when absent); problems are appended, not raised."""
    if value is None:
        return None
    if not _is_map(value):
        problems.append(f"{where} must be an object")
        return None
    refs = []
    raw_refs = value.get("transformationRefs")
    if raw_refs is not None and not isinstance(raw_refs, list):
        problems.append(f"{where}.transformationRefs must be a list")
        raw_refs = []
    for index, item in enumerate(raw_refs or []):
        ref = _ref(item, f"{where}.transformationRefs[{index}]", problems)
        if ref is not None:
            refs.append(ref)
    return Transformation(
        templates=_templates(value, where, problems),
        refs=tuple(refs),
        includes=_patterns(value, "includes", where, problems),
        excludes=_patterns(value, "excludes", where, problems),
        exclude_raw=_boolean(value, "excludeRaw", where, problems),
    )


def parse_secret_transformation(obj: Mapping[str, Any]) -> SecretTransformationSpec:
    """Spec of a SecretTransformation; raises TransformSpecError listing every problem."""
    problems: list[str] = []
    spec = obj.get("spec") if _is_map(obj) else None
    if spec is None:
        spec = {}
    if not _is_map(spec):
        raise TransformSpecError(["spec must be an object"])
    sources = []
    raw_sources = spec.get("sourceTemplates")
    if raw_sources is not None and not isinstance(raw_sources, list):
        problems.append("spec.sourceTemplates must be a list")
        raw_sources = []
    if len(raw_sources or []) > MAX_TEMPLATES:
        problems.append(
            f"spec.sourceTemplates has {len(raw_sources or [])} entries (at most {MAX_TEMPLATES})"
        )
        raw_sources = []
    for index, item in enumerate(raw_sources or []):
        template = _template(item, f"spec.sourceTemplates[{index}]", problems)
        if template is not None:
            sources.append(template)
    parsed = SecretTransformationSpec(
        templates=_templates(spec, "spec", problems),
        source_templates=tuple(sources),
        includes=_patterns(spec, "includes", "spec", problems),
        excludes=_patterns(spec, "excludes", "spec", problems),
    )
    if problems:
        raise TransformSpecError(problems)
    return parsed
