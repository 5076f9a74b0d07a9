"""Watch caches: ``kubernetes.informer.SharedInformer`` for custom resources and Secrets.

The informer lists, then watches from the list's resourceVersion, re-lists on 410 and keeps a
thread-safe cache; two gaps are filled here:

- Custom objects come back from ``CustomObjectsApi`` as plain dicts, and the informer reads a
  list's ``.items`` / ``.metadata.resource_version`` as attributes: :class:`_ListView` adapts.
  The watch decodes events by the ``:rtype:`` line of the list function's docstring; ours says
  ``object``, so events carry the dicts as they are (and their resourceVersion is tracked).
- The informer has no "has synced": every list function here sets an Event when the informer
  first asks it to *watch*, which is what :meth:`Informer.wait_for_sync` waits on. The informer
  fills its cache from the list and runs the handlers for every listed object before it starts
  watching, so at that point the cache is complete and the handlers have seen every object
  (setting it at the list's return would let a reader see an empty cache).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from kubernetes import client
from kubernetes.informer import ADDED, DELETED, MODIFIED, SharedInformer
from kubernetes.informer.cache import ObjectCache

from csi_vso.operator import secretcache

Handler = Callable[[str, Any], None]

# Informers being stopped: their "unexpected error in watch loop" record is our own doing.
_STOPPING: set[int] = set()


class _DropStopNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (_STOPPING and record.getMessage().startswith("Unexpected error in watch loop"))


logging.getLogger("kubernetes.informer.informer").addFilter(_DropStopNoise())


class _ListView:
    def __init__(self, body: dict[str, Any]) -> None:
        self.items = body.get("items") or []
        self.metadata = SimpleNamespace(resource_version=(body.get("metadata") or {}).get("resourceVersion"))


class _TransformingCache(ObjectCache):  # type: ignore[misc]  # the client is untyped
    """The informer's store, keeping ``transform(obj)`` instead of each object it is given.

    client-go's ``SetTransform``: handlers still see the object of the event, the cache keeps
    only what the transform leaves (the informer stores before it calls handlers).
    """

    def __init__(self, transform: Callable[[Any], Any]) -> None:
        super().__init__()
        self._transform = transform

    def _put(self, obj: Any) -> None:
        super()._put(self._transform(obj))

    def _replace_all(self, objects: Any) -> None:
        super()._replace_all([self._transform(o) for o in objects])


class Informer:
    """A SharedInformer plus a synced flag, a typed getter and an optional cache transform."""

    def __init__(
        self,
        list_func: Callable[..., Any],
        *,
        resync_period: float,
        label_selector: str | None = None,
        transform: Callable[[Any], Any] | None = None,
    ):
        self.synced = threading.Event()
        self._informer = SharedInformer(list_func, resync_period=resync_period, label_selector=label_selector)
        if transform is not None:
            self._informer._cache = _TransformingCache(transform)  # private: checked against kubernetes 37

    def on_change(self, handler: Handler) -> None:
        """``handler(event_type, obj)`` for ADDED, MODIFIED and DELETED."""
        for event_type in (ADDED, MODIFIED, DELETED):
            self._informer.add_event_handler(event_type, lambda obj, t=event_type: handler(t, obj))

    def get(self, namespace: str, name: str) -> Any:
        return self._informer.cache.get_by_key(f"{namespace}/{name}")

    def list(self) -> list[Any]:
        return list(self._informer.cache.list())

    def start(self) -> None:
        self._informer.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop watching without waiting for the server to end the stream.

        ``SharedInformer.stop`` joins its thread with no timeout while the thread may sit in a
        blocking read of a quiet watch (up to the watch timeout, minutes). Closing the response
        ends that read at once; the informer then logs the broken stream, which is expected
        here, so that one record is filtered out. (Private attributes of the client's informer:
        checked against kubernetes 37.)
        """
        informer: Any = self._informer
        informer._stop_event.set()
        watch = informer._watch
        _STOPPING.add(id(informer))
        try:
            if watch is not None:
                watch.stop()
                response = getattr(watch, "_resp", None)
                if response is not None:
                    with contextlib.suppress(Exception):
                        response.shutdown() if hasattr(response, "shutdown") else response.close()
            thread = informer._thread
            if thread is not None:
                thread.join(timeout)
            informer._thread = None
        finally:
            _STOPPING.discard(id(informer))

    def wait_for_sync(self, timeout: float) -> bool:
        return self.synced.wait(timeout)


def custom_object_informer(
    custom: client.CustomObjectsApi, group: str, version: str, plural: str, *, resync_period: float
) -> Informer:
    holder: list[Informer] = []

    def list_custom_objects(**kwargs: Any) -> Any:
        if kwargs.get("watch"):
            holder[0].synced.set()
            return custom.list_cluster_custom_object(group, version, plural, **kwargs)
        return _ListView(custom.list_cluster_custom_object(group, version, plural, **kwargs))

    list_custom_objects.__doc__ = "List or watch custom objects.\n\n:rtype: object\n"
    informer = Informer(list_custom_objects, resync_period=resync_period)
    holder.append(informer)
    return informer


def secret_informer(
    core: client.CoreV1Api,
    *,
    label_selector: str,
    resync_period: float,
    transform: Callable[[Any], Any] = lambda obj: obj,
) -> Informer:
    """Secrets matching ``label_selector``; listed in pages, each object ``transform``-ed before it
    is kept (see :mod:`csi_vso.operator.secretcache`)."""
    holder: list[Informer] = []
    paged = secretcache.paged_list(core.list_secret_for_all_namespaces, transform)

    def list_secrets(**kwargs: Any) -> Any:
        if kwargs.get("watch"):
            holder[0].synced.set()
        return paged(**kwargs)

    list_secrets.__doc__ = "List or watch Secrets.\n\n:rtype: V1SecretList\n"
    informer = Informer(
        list_secrets, resync_period=resync_period, label_selector=label_selector, transform=transform
    )
    holder.append(informer)
    return informer
