"""Vault answers to Secret data: ``{key: bytes}``. Pure.

Strings are stored as UTF-8, anything else (numbers, booleans, nested objects from a KV secret)
as compact JSON, so a consumer reading the file gets what ``vault kv get -format=json`` shows.
Keys must be valid Secret keys (``[-._a-zA-Z0-9]+``, at most 253 characters); a KV secret with
another key cannot be stored and is reported by name (never by value).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


class RenderError(ValueError):
    """The Vault data cannot become Secret data; the message names keys only."""


def render(data: Mapping[str, Any]) -> dict[str, bytes]:
    bad = sorted(k for k in data if not _SECRET_KEY.match(k) or len(k) > 253 or k in (".", ".."))
    if bad:
        raise RenderError("keys not allowed in a Kubernetes Secret: " + ", ".join(repr(k) for k in bad))
    rendered: dict[str, bytes] = {}
    for key, value in data.items():
        if isinstance(value, str):
            rendered[key] = value.encode()
        elif value is None:
            rendered[key] = b""
        else:
            rendered[key] = json.dumps(value, separators=(",", ":"), sort_keys=True).encode()
    return rendered
