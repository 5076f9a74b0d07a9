"""Vault's answer + a :class:`~csi_vso.operator.transform.gather.Plan` -> Secret data (pure).

VSO's shape of the result, checked against its ``helpers`` package:

- Every keyed template is executed on VSO's ``SecretInput`` (a struct: a misspelt field is an
  error, as in VSO) with ``.Secrets``, ``.Metadata``, ``.Annotations``, ``.Labels``:
  ``.Secrets`` is the secret's data (kv-v2: ``data.data``), ``.Metadata`` the kv-v2
  ``data.metadata`` (empty for other engines), ``.Annotations`` / ``.Labels`` the custom
  resource's. Its output is the value of its key.
- ``excludes`` then ``includes`` filter the *source* keys only (a key is dropped when an exclude
  pattern matches anywhere in it; when includes are given, a key is kept only when one matches).
  Template outputs are never filtered and win over a source key of the same name.
- ``_raw`` holds Vault's whole answer (kv-v2: ``{"data": ..., "metadata": ...}``) as JSON unless
  ``excludeRaw``; a source or template key named ``_raw`` is then an error.
- Source values that are not strings are stored as JSON, encoded the way Go's ``encoding/json``
  does (sorted keys, no spaces, ``<``, ``>``, ``&`` escaped).

Errors become :class:`TransformError` with the template engine's Go-shaped message
(``template: NAME:LINE:COL: problem``). As a last guard, any secret string that still shows up
in a message is replaced by ``<redacted>`` before it can reach a condition or an event.

Parsed template sets are cached by the digest of their texts (bounded), so 1,000 secrets that
share one SecretTransformation parse it once; execution does not mutate a parsed set.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any

from csi_vso.operator.gotemplate import TemplateError, TemplateSet, secret_input, vault_data
from csi_vso.operator.render import RenderError, render
from csi_vso.operator.transform.gather import Plan, TransformError
from csi_vso.operator.transform.patterns import matches_any
from csi_vso.operator.transform.spec import parse_secret_transformation

RAW_KEY = "_raw"
MAX_SECRET_BYTES = 1024 * 1024  # the API server's limit on a Secret's data
_CACHE_SIZE = 256
_MIN_REDACT = 4


class _TemplateCache:
    """Parsed template sets by template digest, least recently used evicted first."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._sets: OrderedDict[str, TemplateSet] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, plan: Plan) -> TemplateSet:
        digest = plan.template_digest()
        with self._lock:
            cached = self._sets.get(digest)
            if cached is not None:
                self._sets.move_to_end(digest)
                return cached
        parsed = TemplateSet()
        for template in plan.templates:
            parsed.parse(template.name, template.text)  # TemplateError: caller reports it
        with self._lock:
            self._sets[digest] = parsed
            while len(self._sets) > self._size:
                self._sets.popitem(last=False)
        return parsed


_CACHE = _TemplateCache(_CACHE_SIZE)


def go_json(value: Any) -> bytes:
    """``encoding/json.Marshal``'s bytes for a JSON-shaped value."""
    text = json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    for char, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escaped)
    return text.encode()


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def redact(message: str, secrets: Mapping[str, Any]) -> str:
    """``message`` with every secret string of at least 4 characters replaced."""
    for value in sorted(set(_strings(secrets)), key=len, reverse=True):
        if len(value) >= _MIN_REDACT and value in message:
            message = message.replace(value, "<redacted>")
    return message


def filter_keys(plan: Plan, data: Mapping[str, Any]) -> dict[str, Any]:
    """Source keys left after ``excludes`` (first) and ``includes``."""
    kept = {k: v for k, v in data.items() if not matches_any(plan.excludes, k)}
    if plan.includes:
        kept = {k: v for k, v in kept.items() if matches_any(plan.includes, k)}
    return kept


def render_templates(plan: Plan, secrets: Mapping[str, Any], metadata: Mapping[str, Any]) -> dict[str, bytes]:
    """Every keyed template's output; TransformError on a parse or execution error."""
    if not plan.templates:
        return {}
    try:
        parsed = _CACHE.get(plan)
        context = secret_input(
            secrets=vault_data(dict(secrets)),  # Vault's numbers as Go's json.Number, as VSO's
            metadata=vault_data(dict(metadata)),
            annotations=dict(plan.annotations),
            labels=dict(plan.labels),
        )
        # Bytes as Go writes them: b64dec of binary data stays binary in the Secret.
        return {t.key: parsed.execute_bytes(t.name, context) for t in plan.templates if t.key}
    except TemplateError as exc:
        raise TransformError("TemplateError", redact(str(exc), secrets)) from None


def secret_data(
    plan: Plan | None,
    *,
    secrets: Mapping[str, Any],
    raw: Mapping[str, Any],
    metadata: Mapping[str, Any] | None = None,
) -> dict[str, bytes]:
    """The destination Secret's data; without a plan, the untransformed rendering."""
    if plan is None:
        return render(secrets)
    data: dict[str, bytes] = {}
    templated = render_templates(plan, secrets, metadata or {})
    if not plan.exclude_raw:
        if RAW_KEY in secrets or RAW_KEY in templated:
            raise TransformError("TransformationError", f"key {RAW_KEY!r} not permitted in Secret data")
        data[RAW_KEY] = go_json(dict(raw))
    data.update(templated)
    try:
        sources = render(filter_keys(plan, secrets))
    except RenderError as exc:
        raise TransformError("InvalidSecretData", str(exc)) from None
    for key, value in sources.items():
        data.setdefault(key, value)
    size = sum(len(k) + len(v) for k, v in data.items())
    if size > MAX_SECRET_BYTES:
        raise TransformError(
            "TransformationError", f"the rendered Secret data is {size} bytes (at most {MAX_SECRET_BYTES})"
        )
    return data


def check_secret_transformation(obj: Mapping[str, Any]) -> None:
    """Validate a SecretTransformation on its own: spec shape, then every template parses.

    Templates are named ``<namespace>/<name>/<key or index>`` (or their own ``name``) so a parse
    error points at the object and template. Raises TransformSpecError or TransformError.
    """
    spec = parse_secret_transformation(obj)
    metadata = obj.get("metadata") or {}
    prefix = f"{metadata.get('namespace')}/{metadata.get('name')}"
    parsed = TemplateSet()
    try:
        for index, source in enumerate(spec.source_templates):
            parsed.parse(source.name or f"{prefix}/{index}", source.text)
        for key, template in spec.templates:
            parsed.parse(template.name or f"{prefix}/{key}", template.text)
    except TemplateError as exc:
        raise TransformError("TemplateError", str(exc)) from None
