"""Pod-token mode: one watch per Secret mounted on this node, each run with a mounting pod's token.

The cluster-wide cache (:class:`~csi_vso.provider.secret_cache.SecretCache` over every
protected Secret) makes every node hold, and be able to read, every protected Secret of the
cluster. Here a node holds only what its pods mount, and reads it with their credentials:

- **Access.** The first time a pod's token is used for a Secret, a SelfSubjectAccessReview made
  with that token asks the API server whether the pod may ``list`` exactly that Secret (the
  operator's Role/RoleBinding, :mod:`csi_vso.operator.access_rbac`). A refusal is
  PERMISSION_DENIED naming the Secret; it is remembered per (pod, Secret) and rotation removes
  that pod's files (:meth:`SecretWatches.refusal`). An allowance is cached until the token's
  ``exp`` or ``access_ttl``, whichever is first.
- **Watches.** Per Secret one :class:`SecretCache` narrowed to ``metadata.name=<name>`` in its
  namespace (and the protected label), so list, watch, resume and 410 re-list are the
  informer's. Each list or watch call picks the credential with the latest ``exp`` among the
  pods that mount the Secret. A 401 (the pod is gone) drops that pod's token everywhere and
  forgets its identity verdicts; a 403 drops it for that Secret; the call then goes on with
  the next credential at once, resuming from the last resourceVersion: no gap, no re-list.
- **Turnover.** Housekeeping (every ``interval`` s) drops expired credentials and those no
  volume needs any more (the pod's registered provider-mode volumes of that Secret are gone;
  a driver-mode volume's credential lives while Mounts keep offering it, ``idle_after``), cuts a
  watch whose credential expires within ``renew_before`` s when a fresher one exists (the
  informer reconnects with it), and stops a watch that no credential is left for: memory,
  watches and API calls follow what is mounted on the node, not the cluster.

Tokens live in memory and, for restart recovery, in :class:`~csi_vso.provider.token_store.TokenStore`;
never in a log line, a message or a metric.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client

from csi_vso import protected
from csi_vso.provider.authz import VerifiedPod
from csi_vso.provider.errors import PermissionDenied, Unavailable
from csi_vso.provider.pod_api import Forbidden, PodAPI, TokenRefused, token_expiry
from csi_vso.provider.secret_cache import Listener, SecretCache, notify_listeners
from csi_vso.provider.token_store import Credential, SecretKey, TokenStore

log = logging.getLogger(__name__)

#: (pod uid, namespace, name) of every registered provider-mode volume's Secrets.
Needed = Callable[[], set[tuple[str, str, str]]]
# A token with less left than this is not used to start a request.
_MIN_LEFT = 5.0
# Longest watch request; the informer resumes from its resourceVersion afterwards.
_WATCH_SECONDS = 240
# Lifetime assumed for a token whose exp cannot be read (never longer than a verdict's TTL).
_UNKNOWN_LIFETIME = 300.0


class _NoCredential(Exception):
    """Raised into a watch's informer loop while it is being stopped."""


@dataclass
class _Watch:
    key: SecretKey
    cache: SecretCache | None = None
    creds: dict[str, Credential] = field(default_factory=dict)  # pod uid -> newest credential
    offered: dict[str, float] = field(default_factory=dict)  # pod uid -> last Mount that offered it
    registered: set[str] = field(default_factory=set)  # pods seen with a registered volume of it
    using: Credential | None = None
    failure: str = ""  # why no request can be made now ("" when one can)
    errors: int = 0  # consecutive failed calls (for backoff)
    stopped: bool = False


def _token_id(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SecretWatches:
    """The Secret source of pod-token mode (same reads as SecretCache, plus pod credentials)."""

    def __init__(
        self,
        pods: PodAPI,
        *,
        store: TokenStore | None = None,
        forget_pod: Callable[[str], object] | None = None,
        clock: Callable[[], float] = time.time,
        renew_before: float = 120.0,
        idle_after: float = 300.0,
        access_ttl: float = 300.0,
        sync_timeout: float = 10.0,
        interval: float = 1.0,
    ) -> None:
        self._pods = pods
        self._store = store
        self._forget_pod = forget_pod
        self._clock = clock
        self._renew_before = renew_before
        self._idle_after = idle_after
        self._access_ttl = access_ttl
        self._sync_timeout = sync_timeout
        self._interval = interval
        self._cond = threading.Condition()
        self._watches: dict[SecretKey, _Watch] = {}
        self._allowed: dict[tuple[str, SecretKey], float] = {}  # (token id, Secret) -> until
        self._denied: dict[tuple[str, SecretKey], str] = {}  # (pod uid, Secret) -> reason
        self._stored: dict[str, tuple[str, frozenset[SecretKey]]] = {}  # pod uid -> what is on disk
        self._store_lock = threading.Lock()
        self._listeners: list[Listener] = []
        self._needed: Needed = set
        self._stopping = threading.Event()
        self._restored = threading.Event()
        self._housekeeper = threading.Thread(target=self._housekeep, name="secret-watches", daemon=True)
        self.started_watches = 0
        self.stopped_watches = 0

    # -- the SecretSource surface (same as SecretCache) ------------------------------------

    def has_synced(self) -> bool:
        """True once the watches resumed from kept tokens have listed (or ``sync_timeout``
        passed): rotation then starts from their state. No cluster-wide list to wait for;
        a Secret first mounted later is waited for on its read."""
        return self._restored.is_set()

    def wait_for_sync(self, timeout: float | None = None) -> bool:
        return self._restored.wait(timeout)

    def get(self, namespace: str, name: str) -> client.V1Secret | None:
        with self._cond:
            watch = self._watches.get((namespace, name))
        cache = watch.cache if watch is not None else None
        return cache.get(namespace, name) if cache is not None else None

    def known(self, namespace: str, name: str) -> bool:
        """True when a running watch has listed this Secret (so None from get() means absent)."""
        with self._cond:
            watch = self._watches.get((namespace, name))
        return watch is not None and watch.cache is not None and watch.cache.has_synced()

    def count(self) -> int:
        """Protected Secrets held in memory (at most one per watch)."""
        with self._cond:
            caches = [w.cache for w in self._watches.values() if w.cache is not None]
        return sum(c.count() for c in caches)

    def watch_count(self) -> int:
        """Watches open (one per Secret mounted on this node)."""
        with self._cond:
            return len(self._watches)

    def watching(self) -> dict[SecretKey, str]:
        """Each watched Secret and the UID of the pod whose token its last call used."""
        with self._cond:
            return {k: (w.using.pod.uid if w.using is not None else "") for k, w in self._watches.items()}

    def add_listener(self, callback: Listener) -> None:
        with self._cond:
            self._listeners.append(callback)

    def set_needed(self, needed: Needed) -> None:
        """Which (pod uid, namespace, name) registered volumes need (the rotation registry)."""
        self._needed = needed

    def refusal(self, pod: VerifiedPod, namespace: str, name: str) -> str | None:
        """Why the API server refused this pod this Secret, when it did (rotation revokes then)."""
        with self._cond:
            return self._denied.get((pod.uid, (namespace, name)))

    # -- Mount ------------------------------------------------------------------------------

    def read(
        self, namespace: str, name: str, *, pod: VerifiedPod, token: str | None
    ) -> client.V1Secret | None:
        """The Secret as ``pod`` may read it, or None when it does not exist (or is unprotected).

        Raises PermissionDenied when the API server refuses the pod, Unavailable when the
        watch has not listed the Secret within ``sync_timeout``.
        """
        key = (namespace, name)
        who = f"pod {pod.namespace}/{pod.name}"
        if not token:
            raise PermissionDenied(
                f"{who}: no token for the API server's audiences to read {namespace}/{name} with"
            )
        now = self._clock()
        credential = Credential(
            pod=pod, token=token, expires_at=token_expiry(token) or now + _UNKNOWN_LIFETIME
        )
        self._check_access(credential, key)
        watch = self._offer(key, credential)
        deadline = time.monotonic() + self._sync_timeout
        cache = watch.cache
        assert cache is not None
        while not cache.wait_for_sync(timeout=0.05):
            refused = self.refusal(pod, namespace, name)
            if refused is not None:  # the list itself was refused for this pod's token
                raise PermissionDenied(refused)
            if time.monotonic() > deadline:
                raise Unavailable(
                    f"the watch of protected Secret {namespace}/{name} has not listed it yet"
                    + (f" ({watch.failure})" if watch.failure else "")
                    + "; retry shortly"
                )
        return cache.get(namespace, name)

    def _check_access(self, credential: Credential, key: SecretKey) -> None:
        pod = credential.pod
        grant = (_token_id(credential.token), key)
        now = self._clock()
        with self._cond:
            if self._allowed.get(grant, 0.0) > now:
                return
        what = f"protected Secret {key[0]}/{key[1]}"
        who = f"pod {pod.namespace}/{pod.name}"
        try:
            allowed, _reason = self._pods.may_read(credential.token, *key)
        except TokenRefused:
            self._token_refused(credential)
            raise PermissionDenied(
                f"{who} may not mount {what}: the API server refused the pod's token "
                "(expired, or the pod no longer exists)"
            ) from None
        if not allowed:
            reason = (
                f"{who} may not mount {what}: the API server does not let service account "
                f"{pod.service_account!r} read it (no such protected Secret, or its policy does not "
                "admit the pod)"
            )
            with self._cond:
                self._denied[(pod.uid, key)] = reason
            raise PermissionDenied(reason)
        with self._cond:
            self._allowed[grant] = min(now + self._access_ttl, credential.expires_at)
            self._denied.pop((pod.uid, key), None)

    # -- credentials ------------------------------------------------------------------------

    def offer(self, key: SecretKey, credential: Credential) -> None:
        """Add a credential for a Secret without an access check (restart recovery)."""
        self._offer(key, credential, touch=False)

    def _offer(self, key: SecretKey, credential: Credential, *, touch: bool = True) -> _Watch:
        uid = credential.pod.uid
        with self._cond:
            watch = self._watches.get(key)
            new = watch is None
            if watch is None:
                watch = _Watch(key)
                watch.cache = SecretCache(
                    list_call=self._list_call(watch),
                    namespace=key[0],
                    field_selector=f"metadata.name={key[1]}",
                    label_selector=protected.PROTECTED_SELECTOR,
                )
                watch.cache.add_listener(self._notify)
                self._watches[key] = watch
                self.started_watches += 1
            current = watch.creds.get(uid)
            if current is None or (credential != current and credential.expires_at >= current.expires_at):
                watch.creds[uid] = credential
            if touch:
                watch.offered[uid] = self._clock()
            self._cond.notify_all()
        if new:
            assert watch.cache is not None
            watch.cache.start()
            log.debug("watching a protected Secret", extra={"secret": f"{key[0]}/{key[1]}"})
        self._persist(uid)
        return watch

    def _persist(self, uid: str) -> None:
        """Bring the pod's token file in line with its credentials now: the newest token and the
        Secrets it reads, or no file once it holds none. Serialised, so that whichever change
        came last is what stays on disk (a Mount and housekeeping may race)."""
        if self._store is None:
            return
        with self._store_lock:
            with self._cond:
                creds = [(k, w.creds[uid]) for k, w in self._watches.items() if uid in w.creds]
                if not creds:
                    known = self._stored.pop(uid, None) is not None
                    newest, keys = None, frozenset[SecretKey]()
                else:
                    newest = max((c for _, c in creds), key=lambda c: c.expires_at)
                    keys = frozenset(k for k, _ in creds)
                    state = (_token_id(newest.token), keys)
                    if self._stored.get(uid) == state:
                        return
                    self._stored[uid] = state
            try:
                if newest is None:
                    if known:
                        self._store.remove(uid)
                else:
                    self._store.save(newest, keys)
            except OSError as exc:
                log.error("cannot keep a pod token for restarts", extra={"error": type(exc).__name__})

    def _token_refused(self, credential: Credential) -> None:
        """The API server refused this token: the pod is gone or the token died. Drop it everywhere."""
        uid = credential.pod.uid
        tid = _token_id(credential.token)
        with self._cond:
            for watch in self._watches.values():
                held = watch.creds.get(uid)
                if held is not None and _token_id(held.token) == tid:
                    del watch.creds[uid]
                    watch.offered.pop(uid, None)
            self._allowed = {g: t for g, t in self._allowed.items() if g[0] != tid}
            self._cond.notify_all()
        if self._forget_pod is not None:
            self._forget_pod(uid)
        log.info(
            "a pod's token was refused: no longer used",
            extra={"pod": f"{credential.pod.namespace}/{credential.pod.name}"},
        )

    def _forbidden(self, watch: _Watch, credential: Credential) -> None:
        pod = credential.pod
        key = watch.key
        reason = (
            f"pod {pod.namespace}/{pod.name} may not mount protected Secret {key[0]}/{key[1]}: the API "
            f"server no longer lets service account {pod.service_account!r} read it"
        )
        with self._cond:
            if watch.creds.get(pod.uid) == credential:
                del watch.creds[pod.uid]
            self._denied[(pod.uid, key)] = reason
            tid = _token_id(credential.token)
            self._allowed.pop((tid, key), None)
        log.warning(
            "the API server refused a pod's read of a Secret",
            extra={"secret": f"{key[0]}/{key[1]}", "pod": f"{pod.namespace}/{pod.name}"},
        )
        self._notify(*key)  # rotation re-decides this Secret's volumes and removes that pod's files

    # -- the informer's list/watch calls -------------------------------------------------------

    def _list_call(self, watch: _Watch) -> Callable[..., Any]:
        base = self._pods.core.list_namespaced_secret

        # wraps() keeps the docstring the Watch reads to learn the item type (V1Secret).
        @functools.wraps(base)
        def call(**kwargs: Any) -> Any:
            while True:
                self._backoff(watch)
                credential = self._pick(watch)
                if kwargs.get("watch"):
                    left = credential.expires_at - self._clock() - self._renew_before
                    kwargs["timeout_seconds"] = int(max(1.0, min(_WATCH_SECONDS, left)))
                try:
                    result = self._pods.list_secrets(credential.token, **kwargs)
                except TokenRefused:
                    self._token_refused(credential)
                    continue
                except Forbidden:
                    self._forbidden(watch, credential)
                    continue
                except Exception:
                    watch.errors += 1
                    raise
                watch.errors = 0
                return result

        return call

    def _backoff(self, watch: _Watch) -> None:
        if watch.errors:
            self._stopping.wait(min(5.0, 0.1 * 2 ** min(watch.errors, 6)))

    def _pick(self, watch: _Watch) -> Credential:
        """The credential with the latest exp that still has time left; waits while there is none."""
        with self._cond:
            while True:
                # Only once the cache itself is stopping: it has quieted this thread's logging.
                cache = watch.cache
                if cache is not None and cache.stopping:
                    raise _NoCredential()
                now = self._clock()
                usable = [c for c in watch.creds.values() if c.expires_at - now > _MIN_LEFT]
                if usable:
                    watch.using = max(usable, key=lambda c: c.expires_at)
                    watch.failure = ""
                    return watch.using
                watch.using = None
                watch.failure = "no pod on this node that mounts it has a token the API server accepts"
                self._cond.wait(timeout=0.2)

    def _notify(self, namespace: str, name: str) -> None:
        with self._cond:
            listeners = list(self._listeners)
        notify_listeners(listeners, namespace, name)

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Resume the watches of credentials kept across a restart, then start housekeeping."""
        restored = self._store.load(self._clock()) if self._store is not None else []
        keys = {key for _, secrets in restored for key in secrets}
        for credential, secrets in restored:
            for key in secrets:
                self.offer(key, credential)
        if restored:
            log.info(
                "resumed pod tokens kept across a restart",
                extra={"pods": len(restored), "secrets": len(keys)},
            )
        self._housekeeper.start()
        threading.Thread(
            target=self._await_restored, args=(keys,), name="secret-watches-restore", daemon=True
        ).start()

    def _await_restored(self, keys: set[SecretKey]) -> None:
        deadline = time.monotonic() + self._sync_timeout
        for key in sorted(keys):
            with self._cond:
                watch = self._watches.get(key)
            cache = watch.cache if watch is not None else None
            while cache is not None and not cache.wait_for_sync(0.05):
                if time.monotonic() > deadline or self._stopping.is_set() or cache.stopping:
                    break
        self._restored.set()

    def stop(self) -> None:
        self._stopping.set()
        with self._cond:
            watches = list(self._watches.values())
            self._watches.clear()
            for watch in watches:
                watch.stopped = True
            self._cond.notify_all()
        for watch in watches:
            if watch.cache is not None:
                watch.cache.stop()
        if self._housekeeper.is_alive():
            self._housekeeper.join()

    def _housekeep(self) -> None:
        while not self._stopping.wait(self._interval):
            try:
                self.tidy()
            except Exception as exc:  # never let housekeeping die
                log.error("Secret watch housekeeping failed", extra={"error": type(exc).__name__})

    def tidy(self) -> None:
        """One housekeeping pass (see the module docstring); tests call it directly."""
        now = self._clock()
        needed = self._needed()
        to_stop: list[_Watch] = []
        to_cut: list[_Watch] = []
        released: set[str] = set()
        with self._cond:
            for key, watch in list(self._watches.items()):
                for uid, credential in list(watch.creds.items()):
                    if (uid, *key) in needed:
                        watch.registered.add(uid)
                        unneeded = False
                    elif uid in watch.registered:
                        unneeded = True  # its provider-mode volumes are gone (pod deleted, unmounted)
                    else:  # driver mode, or a Mount not registered yet: kept while republished
                        unneeded = now - watch.offered.get(uid, 0.0) > self._idle_after
                    if credential.expires_at <= now or unneeded:
                        del watch.creds[uid]
                        watch.offered.pop(uid, None)
                        watch.registered.discard(uid)
                        released.add(uid)
                if not watch.creds:
                    watch.stopped = True
                    del self._watches[key]
                    to_stop.append(watch)
                    continue
                using = watch.using
                if using is None:
                    continue
                newest = max(watch.creds.values(), key=lambda c: c.expires_at)
                dropped = watch.creds.get(using.pod.uid) != using and newest != using
                expiring = (
                    using.expires_at - now < self._renew_before and newest.expires_at > using.expires_at
                )
                if dropped or expiring:
                    to_cut.append(watch)
            self._allowed = {g: t for g, t in self._allowed.items() if t > now}
            # A refusal is kept while a volume of that pod still reads the Secret (rotation
            # removes its files from it); a pod gone from the node needs none.
            self._denied = {d: r for d, r in self._denied.items() if (d[0], *d[1]) in needed}
            holders = {uid for w in self._watches.values() for uid in w.creds}
            changed = released | {uid for uid in self._stored if uid not in holders}
            self._cond.notify_all()
        for watch in to_cut:
            if watch.cache is not None:
                watch.cache.cut()
        for watch in to_stop:
            if watch.cache is not None:
                watch.cache.stop()
            self.stopped_watches += 1
            log.debug(
                "stopped watching a protected Secret", extra={"secret": f"{watch.key[0]}/{watch.key[1]}"}
            )
        for uid in changed:
            self._persist(uid)
