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
from csi_vso.provider.cache_budget import CacheBudget, data_bytes
from csi_vso.provider.errors import Unavailable

log = logging.getLogger(__name__)

Listener = Callable[[str, str], None]

# The watch asks the API server to end each stream after this long; the informer then
# resumes from its last resourceVersion. Keeps stop() prompt and idle connections fresh.
_WATCH_TIMEOUT_SECONDS = 240
# Secrets per page of a budgeted list: a page of 700 KiB Secrets stays a few MiB.
_PAGE = 20


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


def notify_listeners(listeners: list[Listener], namespace: str, name: str) -> None:
    """Call each listener; one that fails is logged by the failure's type and the rest still run."""
    for listener in listeners:
        try:
            listener(namespace, name)
        except Exception as exc:
            # Name the failure only: its message could carry what the listener was handling.
            log.error("Secret listener failed", extra={"error": type(exc).__name__})


def check_cluster_access(api: client.ApiClient) -> list[str]:
    """What ``--secret-access=cluster`` needs and the provider's own identity lacks (empty: all there).

    Asked with SelfSubjectAccessReviews, so a provider installed without the cluster-wide grant
    refuses to start with a clear line instead of looping on 403 behind a never-ready probe.
    """
    authz = client.AuthorizationV1Api(api)
    missing = []
    for verb in ("list", "watch"):
        review = client.V1SelfSubjectAccessReview(
            spec=client.V1SelfSubjectAccessReviewSpec(
                resource_attributes=client.V1ResourceAttributes(verb=verb, group="", resource="secrets")
            )
        )
        status = authz.create_self_subject_access_review(review, _request_timeout=10).status
        if status is None or not status.allowed or status.denied:
            missing.append(f"{verb} secrets (cluster-wide)")
    return missing


class _Stopped(Exception):
    """Raised into the informer's loop when it tries to list or watch after stop()."""


class SecretCache:
    """Protected Secrets by (namespace, name), kept current by one label-selected watch."""

    def __init__(
        self,
        api: client.ApiClient | None = None,
        *,
        label_selector: str = protected.PROTECTED_SELECTOR,
        list_call: Callable[..., Any] | None = None,
        namespace: str | None = None,
        field_selector: str | None = None,
        max_bytes: int | None = None,
    ) -> None:
        """Cluster-wide over ``api`` by default; ``list_call`` (a ``list_namespaced_secret``
        shaped function) with ``namespace`` and ``field_selector`` narrows it, e.g. to one
        Secret read with a pod's token (:mod:`csi_vso.provider.secret_watches`). ``max_bytes``
        caps the Secret data held (:mod:`csi_vso.provider.cache_budget`); the list is then read
        in pages, so an oversized cluster never arrives in one response."""
        if list_call is None:
            if api is None:
                raise ValueError("SecretCache needs an API client or a list function")
            list_call = client.CoreV1Api(api).list_secret_for_all_namespaces
        self._list_call = list_call
        self._cluster_wide = namespace is None
        self._budget = CacheBudget(max_bytes) if max_bytes is not None else None
        self._synced = threading.Event()
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
        self._thread_ident: int | None = None  # the informer's thread, learnt from its first call
        self._stopping = threading.Event()
        self._watch_response: Any = None  # the open watch stream, so stop() can cut it
        self._quiet_until_next_call = False  # a cut() asked for the informer's next record to go
        self._informer = SharedInformer(
            self._list_func(),
            namespace=namespace,
            label_selector=label_selector,
            field_selector=field_selector,
        )
        # Deletions that a re-list found, held until the cache has dropped them (see _on_deleted).
        self._deferred: list[tuple[str, str]] = []
        self._informer.add_event_handler(ADDED, self._on_event)
        self._informer.add_event_handler(MODIFIED, self._on_event)
        self._informer.add_event_handler(DELETED, self._on_deleted)

    def _list_func(self) -> Callable[..., Any]:
        list_all = self._list_call

        # wraps() keeps the docstring the Watch reads to learn the item type (V1Secret).
        @functools.wraps(list_all)
        def list_secrets(**kwargs: Any) -> Any:
            self._thread_ident = threading.get_ident()
            if self._quiet_until_next_call and not self._stopping.is_set():
                self._quiet_until_next_call = False
                _QUIET.stopping.discard(self._thread_ident)
            if self._stopping.is_set():
                raise _Stopped()
            if not kwargs.get("watch"):
                if self._budget is not None:
                    return self._paged_list(list_all, self._budget, kwargs)
                return list_all(**kwargs)
            kwargs.setdefault("timeout_seconds", _WATCH_TIMEOUT_SECONDS)
            kwargs.setdefault("allow_watch_bookmarks", True)
            self._release_deferred()  # a re-list, if one ran, has replaced the cache by now
            if not self._synced.is_set():
                self._synced.set()
                if self._cluster_wide:  # one per node: worth a line; a per-Secret watch is not
                    log.info("protected Secret cache synced", extra={"secrets": self.count()})
            self._watch_response = list_all(**kwargs)
            if self._stopping.is_set():
                self._cut_watch()
            return self._watch_response

        return list_secrets

    def _paged_list(self, list_all: Callable[..., Any], budget: CacheBudget, kwargs: dict[str, Any]) -> Any:
        """The list in pages of ``_PAGE`` Secrets, keeping only those the budget admits."""
        budget.reset()
        first: Any = None
        kept: list[Any] = []
        token: str | None = None
        while True:
            page = list_all(limit=_PAGE, _continue=token, **kwargs)
            first = first if first is not None else page
            for item in page.items or []:
                if budget.admit((item.metadata.namespace, item.metadata.name), data_bytes(item.data)):
                    kept.append(item)
            meta = page.metadata
            token = getattr(meta, "var_continue", None) or getattr(meta, "_continue", None)
            if not token:
                break
        self._log_skipped(budget)
        first.items = kept
        return first

    def _log_skipped(self, budget: CacheBudget) -> None:
        if budget.used >= budget.max_bytes * 0.9:
            log.warning(
                "protected Secret cache at its size cap: Secrets beyond it are not served",
                extra={"max_bytes": budget.max_bytes, "used_bytes": budget.used},
            )

    def _on_event(self, secret: Any) -> None:
        self._release_deferred()
        meta = getattr(secret, "metadata", None)
        if meta is None:
            return
        key = (meta.namespace, meta.name)
        if self._budget is not None and not self._budget.admit(key, data_bytes(secret.data)):
            self._informer.cache._remove(secret)  # does not fit: not held, Mount says so
            self._log_skipped(self._budget)
            return
        self._notify(meta.namespace, meta.name)

    def _on_deleted(self, secret: Any) -> None:
        """A deletion: from the watch the cache has already dropped the Secret, but a re-list
        (after 410 Gone) reports what vanished *before* it replaces the cache. Such deletions
        wait until the re-list's other events or the next watch, when the cache is current."""
        meta = getattr(secret, "metadata", None)
        if meta is None:
            return
        if self._budget is not None:
            self._budget.release((meta.namespace, meta.name))
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
        notify_listeners(listeners, namespace, name)

    # --------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the informer thread (list, then watch)."""
        self._informer.start()

    def _cut_watch(self) -> None:
        response = self._watch_response
        if response is not None:
            with contextlib.suppress(Exception):
                response.shutdown()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def cut(self) -> None:
        """End the current watch stream: the informer calls the list function again (which may
        pick another credential) and resumes from its last resourceVersion, missing nothing.

        The informer logs the ended stream as an unexpected error with a traceback; that one
        record is expected here, so the thread is quiet until its next list call."""
        ident = self._thread_ident
        if ident is not None:
            _QUIET.stopping.add(ident)
            self._quiet_until_next_call = True
        self._cut_watch()

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

    def held_bytes(self) -> int | None:
        """Secret data counted against ``max_bytes`` (None: no cap)."""
        return self._budget.used if self._budget is not None else None

    def watch_count(self) -> int:
        """Watches this source holds open: one, cluster-wide."""
        return 1

    def known(self, namespace: str, name: str) -> bool:
        """Whether :meth:`get` reflects the API for this Secret (a None then means "absent")."""
        return self.has_synced()

    def read(self, namespace: str, name: str, *, pod: object, token: str | None) -> client.V1Secret | None:
        """Mount's read (cluster mode): the cached Secret; the pod's token is not used."""
        secret = self.get(namespace, name)
        if secret is None and self._budget is not None and self._budget.skipped((namespace, name)):
            raise Unavailable(
                f"protected Secret {namespace}/{name} is not cached: the cluster-wide cache is at its "
                f"--cluster-cache-max-bytes cap ({self._budget.max_bytes} bytes); --secret-access=pod-token "
                "has no such cap"
            )
        return secret

    def refusal(self, pod: object, namespace: str, name: str) -> str | None:
        """Cluster mode keeps no per-pod verdicts of the API server: never a refusal."""
        return None

    def set_needed(self, needed: Callable[[], set[tuple[str, str, str]]]) -> None:
        """Cluster mode caches every protected Secret whatever is mounted: nothing to track."""

    def add_listener(self, callback: Listener) -> None:
        """Call ``callback(namespace, name)`` after every change the cache applies."""
        with self._lock:
            self._listeners.append(callback)
