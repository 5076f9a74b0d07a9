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
changed or deleted; a re-list after 410 Gone reports deletions before it replaces its cache,
so those calls are held back until it has). They must be quick or hand work to their own
threads.
"""

from __future__ import annotations

import contextlib
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


class _QuietWhileStopping(logging.Filter):
    """Drop the informer's log records from threads that are being stopped.

    ``SharedInformer.stop()`` ends its watch by shutting the socket down, and the informer then
    logs the resulting read error as an unexpected failure, with a traceback, on every clean
    shutdown. Those records (and only those threads') are not worth an operator's attention.
    """

    def __init__(self) -> None:
        super().__init__()
        self.stopping: set[int] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        return record.thread not in self.stopping


_QUIET = _QuietWhileStopping()
logging.getLogger("kubernetes.informer.informer").addFilter(_QUIET)


class _Stopped(Exception):
    """Raised into the informer's loop when it tries to list or watch after stop()."""


class SecretCache:
    """Protected Secrets by (namespace, name), kept current by one label-selected watch."""

    def __init__(self, api: client.ApiClient, *, label_selector: str = protected.PROTECTED_SELECTOR) -> None:
        self._core = client.CoreV1Api(api)
        self._synced = threading.Event()
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
        self._thread_ident: int | None = None  # the informer's thread, learnt from its first call
        self._stopping = threading.Event()
        self._watch_response: Any = None  # the open watch stream, so stop() can cut it
        self._informer = SharedInformer(
            self._list_func(),
            label_selector=label_selector,
        )
        # Deletions that a re-list found, held until the cache has dropped them (see _on_deleted).
        self._deferred: list[tuple[str, str]] = []
        self._informer.add_event_handler(ADDED, self._on_event)
        self._informer.add_event_handler(MODIFIED, self._on_event)
        self._informer.add_event_handler(DELETED, self._on_deleted)

    def _list_func(self) -> Callable[..., Any]:
        list_all = self._core.list_secret_for_all_namespaces

        # wraps() keeps the docstring the Watch reads to learn the item type (V1Secret).
        @functools.wraps(list_all)
        def list_secrets(**kwargs: Any) -> Any:
            self._thread_ident = threading.get_ident()
            if self._stopping.is_set():
                raise _Stopped()
            if not kwargs.get("watch"):
                return list_all(**kwargs)
            kwargs.setdefault("timeout_seconds", _WATCH_TIMEOUT_SECONDS)
            kwargs.setdefault("allow_watch_bookmarks", True)
            self._release_deferred()  # a re-list, if one ran, has replaced the cache by now
            if not self._synced.is_set():
                self._synced.set()
                log.info("protected Secret cache synced", extra={"secrets": self.count()})
            self._watch_response = list_all(**kwargs)
            if self._stopping.is_set():
                self._cut_watch()
            return self._watch_response

        return list_secrets

    def _on_event(self, secret: Any) -> None:
        self._release_deferred()
        meta = getattr(secret, "metadata", None)
        if meta is not None:
            self._notify(meta.namespace, meta.name)

    def _on_deleted(self, secret: Any) -> None:
        """A deletion: from the watch the cache has already dropped the Secret, but a re-list
        (after 410 Gone) reports what vanished *before* it replaces the cache. Such deletions
        wait until the re-list's other events or the next watch, when the cache is current."""
        meta = getattr(secret, "metadata", None)
        if meta is None:
            return
        if self.get(meta.namespace, meta.name) is not None:
            with self._lock:
                self._deferred.append((meta.namespace, meta.name))
            return
        self._notify(meta.namespace, meta.name)

    def _release_deferred(self) -> None:
        with self._lock:
            deferred, self._deferred = self._deferred, []
        for namespace, name in deferred:
            self._notify(namespace, name)

    def _notify(self, namespace: str, name: str) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(namespace, name)
            except Exception as exc:
                # Name the failure only: its message could carry what the listener was handling.
                log.error("Secret cache listener failed", extra={"error": type(exc).__name__})

    # --------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the informer thread (list, then watch)."""
        self._informer.start()

    def _cut_watch(self) -> None:
        response = self._watch_response
        if response is not None:
            with contextlib.suppress(Exception):
                response.shutdown()

    def stop(self) -> None:
        """Stop the informer and wait for its thread.

        ``SharedInformer.stop()`` can only interrupt a watch whose response it already holds;
        one still being opened would block until the next event or bookmark. So the stream is
        also cut from here (and a watch opened after this point is cut at once).
        """
        ident = self._thread_ident
        if ident is not None:
            _QUIET.stopping.add(ident)
        self._stopping.set()
        self._cut_watch()
        stopper = threading.Thread(target=self._informer.stop, name="secret-cache-stop", daemon=True)
        stopper.start()
        try:
            while stopper.is_alive():
                stopper.join(0.1)
                self._cut_watch()
        finally:
            _QUIET.stopping.discard(ident or -1)

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
