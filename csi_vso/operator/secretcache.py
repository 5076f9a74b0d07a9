"""What the operator's watch cache keeps of a labelled Secret (issue 10, finding 2b).

The operator watches Secrets labelled ``app.kubernetes.io/managed-by=csi-vso`` to see drift in
the Secrets it writes. Anyone who may create a Secret can put that label on one (unless the
admission policy in ``deploy/admission/`` is installed), so the cache must not grow with what
strangers write: 1,000 forged Secrets of 700 KiB would otherwise be 1 GiB of cache, and the
initial list alone would be one response of that size.

- A Secret is **ours** when it is the destination (namespace, ``spec.destination.name``) of a
  custom resource whose uid its owner-uid label or an ownerReference names: at most one Secret per
  custom resource. Ours are cached whole; drift detection needs their data (the MAC of what is
  there now).
- Anything else is cached as :class:`MetadataOnly`: name, namespace, uid, resourceVersion, our
  three labels and at most :data:`MAX_OWNER_REFERENCES` ownerReferences of our API group; no
  data, no other label or annotation. That is all the watch handler needs to re-queue an owner.
  A reader that finds a skeleton reads the Secret live instead (a Secret can become ours after it
  was cached, when its custom resource shows up later).
- The list is paged (:data:`LIST_PAGE_SIZE` Secrets a request), each page slimmed before the next
  is fetched, so the list costs one page of memory, not the whole selection.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubernetes import client

from csi_vso import protected

LIST_PAGE_SIZE = 25
MAX_OWNER_REFERENCES = 4
_OUR_LABELS = (protected.MANAGED_BY_LABEL, protected.PROTECTED_LABEL, protected.OWNER_UID_LABEL)
_OUR_GROUP = "secrets.hashicorp.com/"

#: (namespace, name, uids the Secret claims as owners) -> is it the destination of one of them?
IsOurs = Callable[[str, str, set[str]], bool]


class MetadataOnly(client.V1Secret):  # type: ignore[misc]  # the client's models are untyped
    """A cached Secret reduced to what finds its owner: no data, no foreign metadata."""


def claimed_owners(secret: Any) -> set[str]:
    """The uids a Secret names as its owners (owner-uid label and ownerReferences)."""
    metadata = getattr(secret, "metadata", None)
    if metadata is None:
        return set()
    uids = {ref.uid for ref in metadata.owner_references or [] if ref.uid}
    label = (metadata.labels or {}).get(protected.OWNER_UID_LABEL)
    if label:
        uids.add(label)
    return uids


def slim(secret: Any, is_ours: IsOurs) -> Any:
    """The Secret itself when it is ours, else its :class:`MetadataOnly` skeleton."""
    metadata = getattr(secret, "metadata", None)
    if metadata is None or isinstance(secret, MetadataOnly):
        return secret
    if is_ours(str(metadata.namespace), str(metadata.name), claimed_owners(secret)):
        return secret
    labels = {k: v for k, v in (metadata.labels or {}).items() if k in _OUR_LABELS}
    references = [
        client.V1OwnerReference(
            api_version=ref.api_version, kind=ref.kind, name=ref.name, uid=ref.uid, controller=ref.controller
        )
        for ref in metadata.owner_references or []
        if str(ref.api_version or "").startswith(_OUR_GROUP)
    ][:MAX_OWNER_REFERENCES]
    return MetadataOnly(
        api_version="v1",
        kind="Secret",
        metadata=client.V1ObjectMeta(
            name=metadata.name,
            namespace=metadata.namespace,
            uid=metadata.uid,
            resource_version=metadata.resource_version,
            labels=labels,
            owner_references=references or None,
        ),
    )


def paged_list(
    list_page: Callable[..., Any], transform: Callable[[Any], Any], page_size: int = LIST_PAGE_SIZE
) -> Callable[..., Any]:
    """A list function for the informer that pages through the list and slims every page.

    ``list_page`` is ``CoreV1Api.list_secret_for_all_namespaces``; watch calls pass straight
    through (the informer's cache slims each event's object as it stores it).
    """

    def list_secrets(**kwargs: Any) -> Any:
        if kwargs.get("watch"):
            return list_page(**kwargs)
        items: list[Any] = []
        token: str | None = None
        resource_version: str | None = None
        while True:
            page = (
                list_page(limit=page_size, _continue=token, **kwargs)
                if token
                else list_page(limit=page_size, **kwargs)
            )
            items.extend(transform(item) for item in page.items or [])
            if resource_version is None:
                resource_version = page.metadata.resource_version
            token = page.metadata._continue
            if not token:
                break
        return client.V1SecretList(items=items, metadata=client.V1ListMeta(resource_version=resource_version))

    list_secrets.__doc__ = "List or watch Secrets.\n\n:rtype: V1SecretList\n"
    return list_secrets
