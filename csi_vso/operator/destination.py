"""The protected destination Secret: what it must look like, and whether we may write it.

Pure. Works on the Secret's JSON wire shape (``dict``; ``data`` values base64) so the same code
serves the informer cache and live reads; the controller converts models at its edge.

Every Secret written here carries (DESIGN.md section 3, names from :mod:`csi_vso.protected`):
the protected labels with the owner's uid, a controller ownerReference to the custom resource,
the keyed content MAC, the access policy, and the time it was written. User ``labels`` and
``annotations`` from ``destination`` are applied first so ours always win: a user cannot
un-protect a Secret or widen its policy through ``destination.labels``.

Ownership before any overwrite: a Secret is ours when its owner-uid label or an ownerReference
names this custom resource; anything else is refused unless ``destination.overwrite`` is true.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from csi_vso import protected
from csi_vso.operator.api import AccessPolicy, Destination
from csi_vso.operator.conditions import ReasonedError
from csi_vso.operator.hmac import macs_equal


class DestinationError(ReasonedError):
    """The destination Secret cannot be written as asked (not ours, or missing with create=false)."""


@dataclass(frozen=True)
class Owner:
    """The custom resource a destination Secret belongs to."""

    api_version: str
    kind: str
    name: str
    namespace: str
    uid: str


def owner_reference(owner: Owner) -> dict[str, Any]:
    """The controller ownerReference to the custom resource (the garbage collector follows it;
    ``blockOwnerDeletion: false`` so the operator needs no ``*/finalizers`` permission)."""
    return {
        "apiVersion": owner.api_version,
        "kind": owner.kind,
        "name": owner.name,
        "uid": owner.uid,
        "controller": True,
        "blockOwnerDeletion": False,
    }


def decode_data(secret: Mapping[str, Any] | None) -> dict[str, bytes]:
    """The Secret's ``data`` as bytes (``stringData`` is write-only and never read back)."""
    if not secret:
        return {}
    return {k: base64.b64decode(v or "") for k, v in (secret.get("data") or {}).items()}


def is_owned_by(secret: Mapping[str, Any], owner_uid: str) -> bool:
    metadata = secret.get("metadata") or {}
    if (metadata.get("labels") or {}).get(protected.OWNER_UID_LABEL) == owner_uid:
        return True
    return any(ref.get("uid") == owner_uid for ref in metadata.get("ownerReferences") or [])


def check_writable(existing: Mapping[str, Any] | None, destination: Destination, owner: Owner) -> None:
    """Raise DestinationError unless we may create or overwrite the destination Secret."""
    where = f"{owner.namespace}/{destination.name}"
    if existing is None:
        if not destination.create:
            raise DestinationError(
                "DestinationMissing", f"Secret {where} does not exist and destination.create is false"
            )
        return
    if not is_owned_by(existing, owner.uid) and not destination.overwrite:
        raise DestinationError(
            "SecretNotOwned",
            f"Secret {where} exists and is not managed by this {owner.kind}; "
            "set destination.overwrite: true to take it over",
        )


def build(
    *,
    owner: Owner,
    destination: Destination,
    secret_type: str,
    data: Mapping[str, bytes],
    mac: str,
    access: AccessPolicy,
    written_at: datetime,
) -> dict[str, Any]:
    """The complete destination Secret (no resourceVersion: the caller adds it for an update)."""
    labels = {**destination.labels, **protected.protected_labels(owner.uid)}
    annotations = dict(destination.annotations)
    for ours in (
        protected.CONTENT_MAC_ANNOTATION,
        protected.ALLOWED_NAMESPACES_ANNOTATION,
        protected.ALLOWED_SERVICE_ACCOUNTS_ANNOTATION,
        protected.WRITTEN_AT_ANNOTATION,
    ):
        annotations.pop(ours, None)
    annotations[protected.CONTENT_MAC_ANNOTATION] = mac
    annotations[protected.ALLOWED_NAMESPACES_ANNOTATION] = protected.encode_list(access.namespaces)
    if access.service_accounts:
        # Absent means "any service account of an allowed namespace" (see csi_vso.protected).
        annotations[protected.ALLOWED_SERVICE_ACCOUNTS_ANNOTATION] = protected.encode_list(
            access.service_accounts
        )
    annotations[protected.WRITTEN_AT_ANNOTATION] = protected.format_written_at(written_at)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": destination.name,
            "namespace": owner.namespace,
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [owner_reference(owner)],
        },
        "type": secret_type,
        "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
    }


def _carries(existing: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """Every label, annotation (but written-at) and ownerReference we want is on ``existing``.

    A subset check, so metadata others add (kubectl's annotations, a policy engine's labels)
    does not make every resync a write.
    """
    have = existing.get("metadata") or {}
    want = desired.get("metadata") or {}
    have_labels = have.get("labels") or {}
    if any(have_labels.get(k) != v for k, v in (want.get("labels") or {}).items()):
        return False
    have_annotations = have.get("annotations") or {}
    for k, v in (want.get("annotations") or {}).items():
        if k != protected.WRITTEN_AT_ANNOTATION and have_annotations.get(k) != v:
            return False
    if protected.ALLOWED_SERVICE_ACCOUNTS_ANNOTATION in have_annotations and (
        protected.ALLOWED_SERVICE_ACCOUNTS_ANNOTATION not in (want.get("annotations") or {})
    ):
        return False  # a stale narrowing must go
    have_refs = {r.get("uid") for r in have.get("ownerReferences") or []}
    return all(r.get("uid") in have_refs for r in want.get("ownerReferences") or [])


def in_sync(existing: Mapping[str, Any] | None, desired: Mapping[str, Any], existing_mac: str | None) -> bool:
    """True when writing ``desired`` would change nothing but the written-at time.

    ``existing_mac`` is the MAC recomputed from the existing Secret's *data* (not its
    annotation, which anyone with write access could copy): so edited or deleted data is
    detected as drift and healed.
    """
    if existing is None:
        return False
    desired_mac = (desired.get("metadata") or {}).get("annotations", {}).get(protected.CONTENT_MAC_ANNOTATION)
    if not macs_equal(existing_mac, desired_mac):
        return False
    if (existing.get("type") or "Opaque") != desired.get("type"):
        return False
    return _carries(existing, desired)


def needs_recreate(existing: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> bool:
    """A Secret's type is immutable: changing it means delete and create."""
    return existing is not None and (existing.get("type") or "Opaque") != desired.get("type")
