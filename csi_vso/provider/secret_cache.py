"""A watch cache of protected Secrets: what every Mount reads instead of the API.

Built on ``kubernetes.informer.SharedInformer`` (list, then watch from the list's
resourceVersion, re-list on 410) with the label selector ``csi-vso.io/protected=true``:
a Secret without the label is never fetched, so no SecretProviderClass can ever make this
provider serve it.

The informer has no "synced" flag of its own. Its loop only starts watching after the
initial list has filled the cache and fired its events, so the first *watch* call marks
the moment the cache is complete; :class:`SecretCache` wraps the list function to notice
it. Until then Mount answers UNAVAILABLE and the provider reports not ready.

Listeners (the rotation in issue 4) are called with ``(namespace, name)`` on the
informer's thread after the cache already holds the new state of that Secret (added,
changed or deleted). They must be quick or hand work to their own threads.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from typing import Any

from kubernetes import client
from kubernetes.informer import ADDED, DELETED, MODIFIED, SharedInformer

from csi_vso import protected

log = logging.getLogger(__name__)

Listener = Callable[[str, str], None]

# The watch asks the API server to end each stream after this long; the informer then
# resumes from its last resourceVersion. Keeps stop() prompt and idle connections fresh.
_WATCH_TIMEOUT_SECONDS = 240


class SecretCache:
    """Protected Secrets by (namespace, name), kept current by one label-selected watch."""

    def __init__(self, api: client.ApiClient, *, label_selector: str = protected.PROTECTED_SELECTOR) -> None:
        self._core = client.CoreV1Api(api)
        self._synced = threading.Event()
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
        self._informer = SharedInformer(
            self._list_func(),
            label_selector=label_selector,
        )
        for event_type in (ADDED, MODIFIED, DELETED):
            self._informer.add_event_handler(event_type, self._on_event)

    def _list_func(self) -> Callable[..., Any]:
        list_all = self._core.list_secret_for_all_namespaces

        # wraps() keeps the docstring the Watch reads to learn the item type (V1Secret).
        @functools.wraps(list_all)
        def list_secrets(**kwargs: Any) -> Any:
            if kwargs.get("watch"):
                kwargs.setdefault("timeout_seconds", _WATCH_TIMEOUT_SECONDS)
                kwargs.setdefault("allow_watch_bookmarks", True)
                if not self._synced.is_set():
                    self._synced.set()
                    log.info("protected Secret cache synced", extra={"secrets": self.count()})
            return list_all(**kwargs)

        return list_secrets

    def _on_event(self, secret: Any) -> None:
        meta = getattr(secret, "metadata", None)
        if meta is None:
            return
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(meta.namespace, meta.name)
            except Exception as exc:
                # Name the failure only: its message could carry what the listener was handling.
                log.error("Secret cache listener failed", extra={"error": type(exc).__name__})

    # --------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the informer thread (list, then watch)."""
        self._informer.start()

    def stop(self) -> None:
        """Stop the informer and wait for its thread."""
        self._informer.stop()

    def has_synced(self) -> bool:
        return self._synced.is_set()

    def wait_for_sync(self, timeout: float | None = None) -> bool:
        """Block until the initial list is in the cache; False on timeout."""
        return self._synced.wait(timeout)

    def get(self, namespace: str, name: str) -> client.V1Secret | None:
        """The cached Secret, or None: absent, unprotected, or not synced yet."""
        return self._informer.cache.get_by_key(f"{namespace}/{name}")

    def count(self) -> int:
        return len(self._informer.cache.list_keys())

    def add_listener(self, callback: Listener) -> None:
        """Call ``callback(namespace, name)`` after every change the cache applies."""
        with self._lock:
            self._listeners.append(callback)
