"""Resolve a secret's transformation into one rendering :class:`Plan` (VSO's rules, pure).

What goes into a plan, in VSO's order and with its naming rules:

1. The secret's own ``templates``: key -> template; an unnamed one is called
   ``<namespace>/<name>/<key>`` after the secret custom resource.
2. Each ``transformationRefs`` entry names a SecretTransformation in ``namespace`` (empty: the
   secret's own namespace). A reference listed twice, a missing or invalid object, or a
   ``templateRefs`` name the object lacks is an error naming the object.
   - With ``templateRefs``: exactly those templates, under ``keyOverride`` or their own name.
   - Without: every template of the object whose key is not taken yet (first one wins).
   - Every ``sourceTemplates`` entry (never a key of its own; usable via ``{{template}}``).
   - Its ``excludes`` / ``includes`` unless ``ignoreExcludes`` / ``ignoreIncludes``.
3. Two templates with the same name are an error (Go would silently let one replace the other).
4. Templates are ordered source-first, then by key and name, so parsing order (and which
   ``{{define}}`` wins) does not depend on map order.

The plan also carries what the templates may read besides the secret data: the custom
resource's ``metadata.annotations`` and ``metadata.labels`` (VSO passes the CR's, not the
destination's). :meth:`Plan.digest` fingerprints all of it, so a reconcile can tell that an
edited SecretTransformation or annotation changes the output although the secret did not.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from csi_vso.operator.conditions import ReasonedError
from csi_vso.operator.transform.spec import (
    Template,
    Transformation,
    TransformSpecError,
    parse_secret_transformation,
)

Getter = Callable[[str, str], dict[str, Any] | None]
RefKey = tuple[str, str]  # (namespace, name) of a SecretTransformation


class TransformError(ReasonedError):
    """The transformation cannot be applied; ``reason`` is the condition reason.

    Messages name objects, templates, lines and problems; never a secret value.
    """


@dataclass(frozen=True)
class KeyedTemplate:
    """A template to parse; ``key`` empty means source-only (defines, no Secret key)."""

    key: str
    name: str
    text: str

    def order(self) -> str:
        return f"{self.key}0{self.name}"


@dataclass(frozen=True)
class Plan:
    templates: tuple[KeyedTemplate, ...]
    includes: tuple[str, ...]
    excludes: tuple[str, ...]
    exclude_raw: bool
    annotations: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)

    def template_digest(self) -> str:
        """Fingerprint of the templates only: the cache key of a parsed template set."""
        material = json.dumps([(t.key, t.name, t.text) for t in self.templates])
        return hashlib.sha256(material.encode()).hexdigest()

    def digest(self) -> str:
        """Fingerprint of everything that shapes the output besides the secret data."""
        material = json.dumps(
            {
                "templates": self.template_digest(),
                "includes": self.includes,
                "excludes": self.excludes,
                "excludeRaw": self.exclude_raw,
                "annotations": dict(sorted(self.annotations.items())),
                "labels": dict(sorted(self.labels.items())),
            },
            sort_keys=True,
        )
        return hashlib.sha256(material.encode()).hexdigest()[:32]


def ref_keys(transformation: Transformation | None, namespace: str) -> list[RefKey]:
    """The SecretTransformations a transformation references, namespaces defaulted."""
    if transformation is None:
        return []
    return [(ref.namespace or namespace, ref.name) for ref in transformation.refs]


def _string_map(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): str(v) for k, v in value.items()}


def plan_for(
    obj: Mapping[str, Any],
    transformation: Transformation | None,
    get_transformation: Getter,
    *,
    exclude_raw: bool = False,
) -> Plan | None:
    """The rendering plan of secret custom resource ``obj`` (None: no transformation configured).

    ``exclude_raw`` is the operator-wide default (VSO's ``--global-transformation-options
    exclude-raw``): when set, ``_raw`` is left out whatever the object says.
    """
    if transformation is None:
        return None
    metadata = obj.get("metadata") or {}
    namespace = str(metadata.get("namespace") or "")
    owner = f"{namespace}/{metadata.get('name')}"
    problems: list[str] = []
    keyed: list[KeyedTemplate] = []
    seen_names: set[str] = set()
    seen_keys: set[str] = set()

    def add(template: Template, key: str, default_name: str) -> None:
        name = template.name or default_name
        if name in seen_names:
            problems.append(f"duplicate template name {name!r}")
            return
        seen_names.add(name)
        if key:
            seen_keys.add(key)
        keyed.append(KeyedTemplate(key=key, name=name, text=template.text))

    excludes = set(transformation.excludes)
    includes = set(transformation.includes)
    for key, template in transformation.templates:
        add(template, key, f"{owner}/{key}")

    seen_refs: set[RefKey] = set()
    for ref in transformation.refs:
        ref_key = (ref.namespace or namespace, ref.name)
        where = f"SecretTransformation {ref_key[0]}/{ref_key[1]}"
        if ref_key in seen_refs:
            problems.append(f"duplicate SecretTransformation reference {ref_key[0]}/{ref_key[1]}")
            continue
        seen_refs.add(ref_key)
        target = get_transformation(*ref_key)
        if target is None or (target.get("metadata") or {}).get("deletionTimestamp"):
            problems.append(f"{where} not found")
            continue
        try:
            spec = parse_secret_transformation(target)
        except TransformSpecError as exc:
            problems.append(f"{where} is invalid: {'; '.join(exc.problems)}")
            continue
        if not ref.ignore_excludes:
            excludes.update(spec.excludes)
        if not ref.ignore_includes:
            includes.update(spec.includes)
        available = dict(spec.templates)
        if ref.template_refs:
            for template_ref in ref.template_refs:
                found = available.get(template_ref.name)
                if found is None:
                    problems.append(f"template {template_ref.name!r} not found in {where}")
                    continue
                add(
                    found,
                    template_ref.key_override or template_ref.name,
                    f"{ref_key[0]}/{ref_key[1]}/{template_ref.name}",
                )
        else:
            for key, template in spec.templates:
                if key not in seen_keys:
                    add(template, key, f"{ref_key[0]}/{ref_key[1]}/{key}")
        for index, source in enumerate(spec.source_templates):
            add(source, "", f"{ref_key[0]}/{ref_key[1]}/{index}")
    if problems:
        raise TransformError("TransformationError", "; ".join(problems))
    return Plan(
        templates=tuple(sorted(keyed, key=KeyedTemplate.order)),
        includes=tuple(sorted(includes)),
        excludes=tuple(sorted(excludes)),
        exclude_raw=exclude_raw or transformation.exclude_raw,
        annotations=_string_map(metadata.get("annotations")),
        labels=_string_map(metadata.get("labels")),
    )
