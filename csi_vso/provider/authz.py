"""Who may mount a protected Secret (DESIGN.md section 3): pure decisions, no I/O.

Inputs are a pod identity that :mod:`csi_vso.provider.identity` has already checked
against the API, and the Secret's labels and annotations as cached. The rules:

1. The Secret must carry the protected label. The informer only caches labelled Secrets,
   so this is a second lock on the same door; a Secret without it is reported exactly as
   a missing one (NOT_FOUND), so a Mount cannot probe which Secrets exist.
2. Namespace: the pod's namespace is the Secret's own, or is listed in
   ``allowed-kubernetes-namespaces`` (``*`` = any). An unreadable list widens nothing.
3. Service account: when ``allowed-service-accounts`` is present, the pod's service
   account must match an entry (``name``, ``namespace/name`` or ``*``). An unreadable list
   admits nobody: a narrowing that cannot be read must not turn into "everyone".

Denials name the Secret and the pod, never the Secret's content.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from csi_vso import protected
from csi_vso.provider.errors import NotFound, PermissionDenied


@dataclass(frozen=True)
class VerifiedPod:
    """A pod whose namespace, name, UID and service account the API confirmed."""

    namespace: str
    name: str
    uid: str
    service_account: str


def not_found(namespace: str, name: str) -> NotFound:
    """The one NOT_FOUND for a Secret, whether it is missing or merely unprotected."""
    return NotFound(f"protected Secret {namespace}/{name} not found")


def _list_annotation(annotations: Mapping[str, str], key: str) -> list[str] | None:
    """The policy list, None when the annotation is absent; ValueError when unreadable."""
    text = annotations.get(key)
    if text is None:
        return None
    return protected.decode_list(text)


def namespace_allowed(pod_namespace: str, secret_namespace: str, annotations: Mapping[str, str]) -> bool:
    """Rule 2: own namespace, or listed (or ``*``) in allowed-kubernetes-namespaces."""
    if pod_namespace == secret_namespace:
        return True
    try:
        allowed = _list_annotation(annotations, protected.ALLOWED_NAMESPACES_ANNOTATION) or []
    except ValueError:
        return False
    return protected.WILDCARD in allowed or pod_namespace in allowed


def service_account_allowed(pod: VerifiedPod, annotations: Mapping[str, str]) -> bool:
    """Rule 3: no narrowing, or the pod's service account matches an entry."""
    try:
        allowed = _list_annotation(annotations, protected.ALLOWED_SERVICE_ACCOUNTS_ANNOTATION)
    except ValueError:
        return False
    if allowed is None:
        return True
    qualified = f"{pod.namespace}/{pod.service_account}"
    return any(entry in (protected.WILDCARD, pod.service_account, qualified) for entry in allowed)


def authorize(
    pod: VerifiedPod,
    *,
    secret_namespace: str,
    secret_name: str,
    labels: Mapping[str, str] | None,
    annotations: Mapping[str, str] | None,
) -> None:
    """Return when ``pod`` may mount the Secret; raise NotFound or PermissionDenied otherwise."""
    if not protected.is_protected(dict(labels or {})):
        raise not_found(secret_namespace, secret_name)
    notes = annotations or {}
    who = f"pod {pod.namespace}/{pod.name}"
    what = f"protected Secret {secret_namespace}/{secret_name}"
    if not namespace_allowed(pod.namespace, secret_namespace, notes):
        raise PermissionDenied(
            f"{who} may not mount {what}: namespace {pod.namespace!r} is not in its "
            f"{protected.ALLOWED_NAMESPACES_ANNOTATION} policy"
        )
    if not service_account_allowed(pod, notes):
        raise PermissionDenied(
            f"{who} may not mount {what}: service account {pod.service_account!r} is not in its "
            f"{protected.ALLOWED_SERVICE_ACCOUNTS_ANNOTATION} policy"
        )
