"""The marks that make a Kubernetes Secret "protected", and how its access policy is spelled.

The operator writes these labels and annotations on every Secret it owns; the provider's
informer selects on :data:`PROTECTED_SELECTOR` and reads the policy back. Both import the
names from here so that the two processes cannot drift apart (DESIGN.md section 3).

Labels (selectable, so the provider never even caches an unprotected Secret):

- ``app.kubernetes.io/managed-by: csi-vso``
- ``csi-vso.io/protected: "true"``
- ``csi-vso.io/owner-uid: <uid of the VaultStaticSecret/VaultDynamicSecret>``

Annotations:

- ``csi-vso.io/content-mac``: keyed HMAC of the rendered data (the operator's object
  version; the same value as the CR's ``status.secretMAC``). It reveals nothing about the
  content without the operator's key.
- ``csi-vso.io/allowed-kubernetes-namespaces``: who may mount the Secret besides pods in
  its own namespace. A **JSON list of strings** (``["team-a","team-b"]``; ``["*"]`` = every
  namespace). JSON was chosen over a comma list because it round-trips exactly and an
  empty list is distinguishable from a missing annotation.
- ``csi-vso.io/allowed-service-accounts``: narrows the policy to these service accounts,
  a JSON list whose entries are ``"name"`` (that name in any allowed namespace),
  ``"namespace/name"`` (exactly that one) or ``"*"``. Missing annotation = any service
  account of an allowed namespace; an empty list = nobody.
- ``csi-vso.io/written-at``: when the operator wrote this content, RFC 3339 UTC with
  microseconds (``2026-11-27T23:50:01.123456Z``); the provider measures rotation
  propagation latency from it.

A policy annotation that does not parse fails closed: readers treat an unreadable
``allowed-kubernetes-namespaces`` as "own namespace only" and an unreadable
``allowed-service-accounts`` as "nobody" (see :mod:`csi_vso.provider.authz`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "csi-vso"
PROTECTED_LABEL = "csi-vso.io/protected"
PROTECTED_VALUE = "true"
OWNER_UID_LABEL = "csi-vso.io/owner-uid"

#: Label selector for the provider's informer: it only ever sees protected Secrets.
PROTECTED_SELECTOR = f"{PROTECTED_LABEL}={PROTECTED_VALUE}"

CONTENT_MAC_ANNOTATION = "csi-vso.io/content-mac"
ALLOWED_NAMESPACES_ANNOTATION = "csi-vso.io/allowed-kubernetes-namespaces"
ALLOWED_SERVICE_ACCOUNTS_ANNOTATION = "csi-vso.io/allowed-service-accounts"
WRITTEN_AT_ANNOTATION = "csi-vso.io/written-at"

#: Entry in either policy list that matches everything.
WILDCARD = "*"


def protected_labels(owner_uid: str) -> dict[str, str]:
    """The three labels the operator puts on every Secret it writes for the CR ``owner_uid``."""
    return {
        MANAGED_BY_LABEL: MANAGED_BY_VALUE,
        PROTECTED_LABEL: PROTECTED_VALUE,
        OWNER_UID_LABEL: owner_uid,
    }


def is_protected(labels: dict[str, str] | None) -> bool:
    """True when ``labels`` carry the protected mark (the informer selects on it too)."""
    return (labels or {}).get(PROTECTED_LABEL) == PROTECTED_VALUE


def encode_list(values: Iterable[str]) -> str:
    """Spell a policy list as an annotation value: a compact JSON list, order kept."""
    return json.dumps(list(values), separators=(",", ":"))


def decode_list(text: str) -> list[str]:
    """Read a policy annotation back; raises ``ValueError`` unless it is a JSON list of strings."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not a JSON list: {exc.msg}") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("not a JSON list of strings")
    return value


def format_written_at(when: datetime) -> str:
    """RFC 3339 in UTC with microseconds, e.g. ``2026-11-27T23:50:01.123456Z``."""
    if when.tzinfo is None:
        raise ValueError("written-at needs an aware datetime")
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_written_at(text: str) -> datetime:
    """Parse a ``written-at`` value (any RFC 3339 offset); raises ``ValueError`` when malformed."""
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    if parsed.tzinfo is None:
        raise ValueError("written-at has no time zone")
    return parsed.astimezone(UTC)
