"""Live rotation: when a protected Secret changes, rewrite every provider-mode volume that reads it.

The Secret cache calls :meth:`Rotator.on_secret_event` on its informer thread after it holds
the new state. The rotator looks the Secret up in the :class:`~csi_vso.provider.registry.Registry`
and queues each affected volume for the writer pool (one thread by default: see
:class:`Rotator` for why one is fastest under the GIL), so the event thread returns at once and
a thousand volumes of one Secret are rewritten back to back. Events for a volume that is already
being rewritten are coalesced: the worker runs again once, against the cache's newest state,
so a burst of changes never queues a backlog and never writes an older state after a newer one.

Per volume the decision is pure (:func:`decide`), from the registered record and the cached
Secrets:

- every Secret present and the pod still admitted: render; rewrite when the content differs
  (the atomic writer compares bytes, so untouched volumes keep their mtimes);
- a Secret deleted (or no longer protected, which the label-selected cache cannot tell apart):
  keep the last files, so running applications keep working; count and log it once;
- the policy no longer admits the pod: remove the files, log once;
- access regained or the Secret recreated: the next decision is a write again.

Mount (:class:`~csi_vso.provider.service.MountService`) writes the same targets; it reports
each provider-mode write to :meth:`Rotator.observe_mount`, which registers the volume and,
under the per-target lock rotation also holds, re-renders from the cache so that a rotation
racing the Mount cannot leave the older state behind.

Fairness (issue 10, finding 1): one tenant's big volumes must not delay another tenant's
small ones. A volume that held more than :data:`SMALL_VOLUME_FILES` files at its last write is
bulk work: bulk volumes rotate one at a time on a thread of their own, so the small-volume
workers are never all busy with them, and a bulk rewrite pauses between files while a small
volume is rotating: every per-file loop of rendering, MACs, validation, the atomic write and
the sweep calls a ``checkpoint`` that waits while small volumes are queued. Without the pause the bulk thread
would still win the GIL back at every syscall of the small write; with it, a small volume
rotates next to 5,000 churning files nearly as fast as alone (``bench/fairness_bench.py``).

A volume's root is the pod's to open, and so to ``flock(2)``: the writer never waits for
another process's lock on it. The volume keeps its last files (``TargetBusyError``, counted and
logged once) and is reconciled again after 0.1 s, doubling up to 30 s, until the lock is gone.

Every target is opened beneath the kubelet dir without following a symlink (a parent swapped
for a symlink after the Mount makes the volume "gone", never a write elsewhere). The writer
only writes where its marker is or the directory is empty; rotation *adopts* the targets its
registry holds (a Mount wrote them; volumes written before the marker existed have none).

On start (after the cache synced) every registered volume is reconciled, which also removes
the leftovers a crash left in it. A housekeeping thread drops volumes whose target is gone
(pod deleted, volume unmounted) and removes replaced version directories once the writer's
grace period has passed.

With ``require_mount`` (``--require-mounted-target``) a target that is still a directory but
no longer a mount point counts as gone too: at teardown the driver unmounts the tmpfs and
kubelet then removes the empty directory, and a rotation in between must not write secrets
onto the node's disk (nor make that removal fail). The check runs before the decision and
again inside the writer, under its lock on the very directory it writes.
"""

from __future__ import annotations

import base64
import binascii
import heapq
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.registry import REGISTRY

from csi_vso import protected
from csi_vso.provider import atomic_writer, authz, render, versions
from csi_vso.provider.authz import VerifiedPod
from csi_vso.provider.errors import NotFound, PermissionDenied, ProviderError
from csi_vso.provider.keyed_locks import KeyedLocks
from csi_vso.provider.limits import SMALL_VOLUME_FILES
from csi_vso.provider.registry import MountRecord, Registry
from csi_vso.provider.render import RenderedFile
from csi_vso.provider.validation import MountSpec, ObjectSpec, WriteMode

log = logging.getLogger(__name__)

SecretKey = tuple[str, str]

# How long version-only registry updates wait, so one rotation's thousand records go in one batch.
_FLUSH_DELAY = 0.5
# Chores (registry flushes, sweeps of replaced versions) wait for the rotator to be idle, so a
# fan-out to a thousand volumes does not share the GIL and the disk with them; while it stays
# busy they run at most this much later than due (sweeps: at most one more grace period).
_FLUSH_PATIENCE = 10.0
# A volume whose root another process holds flock(2) on (its own pod can) is not waited for:
# the writer moves on and the volume is tried again after this delay, doubling up to the cap.
_BUSY_RETRY_FIRST = 0.1
_BUSY_RETRY_CAP = 30.0
# Entries in each of the rotator's caches before they are dropped wholesale (cheap, bounded).
_CACHE_SIZE = 256


# Stands in for data that is not base64 (a broken Secret); decide() refuses to render it.
_UNDECODABLE = b"\x00csi-vso: not base64\x00"


class SecretSource(Protocol):
    """What the rotator needs from the Secret source (SecretCache or SecretWatches)."""

    def get(self, namespace: str, name: str) -> Any: ...

    # False while the source has no view of the Secret yet (its watch has not listed it).
    def known(self, namespace: str, name: str) -> bool: ...

    # Why the API server refused this pod this Secret (pod-token mode), else None.
    def refusal(self, pod: VerifiedPod, namespace: str, name: str) -> str | None: ...

    def add_listener(self, callback: Callable[[str, str], None]) -> None: ...


# ---------------------------------------------------------------------------------------------
# Pure decisions


@dataclass(frozen=True)
class SecretView:
    """The parts of a cached Secret rotation reads: policy marks and decoded data."""

    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    data: Mapping[str, bytes] = field(repr=False)


@dataclass(frozen=True)
class Write:
    files: tuple[RenderedFile, ...]
    versions: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class KeepMissing:
    missing: tuple[str, ...]  # "namespace/name"


@dataclass(frozen=True)
class Revoke:
    reason: str  # names the Secret and the pod, never content


@dataclass(frozen=True)
class Fail:
    kind: str
    message: str  # a ProviderError message: names and paths only


Decision = Write | KeepMissing | Revoke | Fail


def decide(
    record: MountRecord,
    secrets: Mapping[SecretKey, SecretView | None],
    key: bytes,
    *,
    render_volume: Callable[[], Write | Fail] | None = None,
) -> Decision:
    """What to do with one volume given the current state of the Secrets it reads.

    Access first (per pod), then the files (the same for every volume with these objects and
    these Secret states, so the rotator may pass a cached ``render_volume``). A denial anywhere
    wins over a missing Secret: when in doubt, stop serving.
    """
    access = check_access(record, secrets)
    if access is not None:
        return access
    if render_volume is not None:
        return render_volume()
    return render_files(record.objects, record.permission, secrets, key)


def check_access(
    record: MountRecord, secrets: Mapping[SecretKey, SecretView | None]
) -> Revoke | KeepMissing | None:
    """None when every Secret is there and admits the pod; else what to do instead of writing."""
    missing: list[str] = []
    for (namespace, name), view in sorted(secrets.items()):
        if view is None:
            missing.append(f"{namespace}/{name}")
            continue
        try:
            authz.authorize(
                record.pod,
                secret_namespace=namespace,
                secret_name=name,
                labels=view.labels,
                annotations=view.annotations,
            )
        except PermissionDenied as exc:
            return Revoke(exc.message)
        except NotFound:
            missing.append(f"{namespace}/{name}")
    return KeepMissing(tuple(missing)) if missing else None


def render_files(
    objects: tuple[ObjectSpec, ...],
    permission: int,
    secrets: Mapping[SecretKey, SecretView | None],
    key: bytes,
    checkpoint: Callable[[], None] | None = None,
) -> Write | Fail:
    """The volume's files and versions from Secrets already known to be present and admitted.

    ``checkpoint`` is called per file while rendering (bulk volumes yield to small ones there).
    """
    data = {k: v.data for k, v in secrets.items() if v is not None}
    for (namespace, name), values in sorted(data.items()):
        if any(value is _UNDECODABLE for value in values.values()):
            return Fail("NotFound", f"protected Secret {namespace}/{name} holds data that is not base64")
    try:
        files = render.render(objects, data, permission, checkpoint)
    except ProviderError as exc:
        return Fail(type(exc).__name__, exc.message)
    if not files:
        return Fail("NotFound", "the protected Secrets of this volume hold no data: nothing to mount")
    versions = tuple((v.id, v.version) for v in render.versions(key, files, checkpoint))
    return Write(files, versions)


def resource_version(secret: Any) -> str | None:
    """The Secret's resourceVersion (None for None or when absent): what the caches key on."""
    if secret is None:
        return None
    if isinstance(secret, Mapping):
        return (secret.get("metadata") or {}).get("resourceVersion") or None
    return getattr(secret.metadata, "resource_version", None) or None


def secret_view(secret: Any) -> SecretView | None:
    """Read a cached V1Secret (or its dict form) into a :class:`SecretView`; None stays None."""
    if secret is None:
        return None
    if isinstance(secret, Mapping):
        meta = secret.get("metadata") or {}
        labels, annotations, raw = meta.get("labels"), meta.get("annotations"), secret.get("data")
    else:
        meta = secret.metadata
        labels, annotations, raw = meta.labels, meta.annotations, secret.data
    try:
        data = {k: base64.b64decode(v or "", validate=True) for k, v in (raw or {}).items()}
    except (binascii.Error, ValueError):
        data = {k: _UNDECODABLE for k in raw or {}}
    return SecretView(labels=dict(labels or {}), annotations=dict(annotations or {}), data=data)


def written_at(view: SecretView | None) -> datetime | None:
    """The operator's write time of this content, when it stamped one that parses."""
    text = view.annotations.get(protected.WRITTEN_AT_ANNOTATION) if view is not None else None
    if not text:
        return None
    try:
        return protected.parse_written_at(text)
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------------
# Metrics


class RotationMetrics:
    """The rotation's Prometheus metrics; pass a registry per instance in tests."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        reg = REGISTRY if registry is None else registry
        self.propagation = Histogram(
            "csi_vso_rotation_propagation_seconds",
            "Time from a Secret change to the volume's ..data swap: source=watch from the watch "
            "event, source=written_at from the operator's csi-vso.io/written-at stamp.",
            ["source"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=reg,
        )
        self.rewrites = Counter(
            "csi_vso_rotation_rewrites_total",
            "Volumes rewritten because their content changed.",
            registry=reg,
        )
        self.skipped = Counter(
            "csi_vso_rotation_skipped_unchanged_total",
            "Volumes a Secret event touched whose content did not change (not rewritten).",
            registry=reg,
        )
        self.errors = Counter(
            "csi_vso_rotation_errors_total",
            "Volumes that could not be re-rendered or written.",
            ["kind"],
            registry=reg,
        )
        self.secret_missing = Counter(
            "csi_vso_rotation_secret_missing_total",
            "Volumes whose Secret disappeared (last files kept).",
            registry=reg,
        )
        self.revoked = Counter(
            "csi_vso_rotation_access_revoked_total",
            "Volumes removed because the policy no longer admits the pod.",
            registry=reg,
        )
        self.collected = Counter(
            "csi_vso_rotation_gc_total",
            "Registered volumes dropped because their target is gone (or, with "
            "--require-mounted-target, is no longer a mount point).",
            registry=reg,
        )
        self.registered = Gauge(
            "csi_vso_registered_mounts", "Provider-mode volumes in the mount registry.", registry=reg
        )


# ---------------------------------------------------------------------------------------------
# The rotator


@dataclass(frozen=True, order=True)
class _Trigger:
    """Why a volume is being looked at: a watch event on one Secret, or a reconcile."""

    monotonic: float
    secret: SecretKey | None = None  # None: reconcile (restart, Mount), not an event


class Rotator:
    """Rewrites registered provider-mode volumes when their Secrets change.

    ``workers`` bounds the pool of small-volume writers. The work is some thirty short
    syscalls per volume with Python in between: every syscall releases the GIL and a second
    writer grabs it, so each return waits for the other thread (a futex handoff and a context
    switch per syscall). One writer keeps the GIL across them: 1,000 volumes of one Secret
    rotate in about half the time and CPU of four writers (``bench/rotation_bench.py``
    ``--rotation-workers``). More help only where a write can block, which on the driver's
    tmpfs it does not.
    """

    def __init__(
        self,
        *,
        secrets: SecretSource,
        registry: Registry,
        version_key: bytes,
        metrics: RotationMetrics,
        workers: int = 1,
        grace: float = atomic_writer.GRACE_SECONDS,
        gc_interval: float = 30.0,
        require_mount: bool = False,
        root: Path = atomic_writer.FILESYSTEM_ROOT,
    ) -> None:
        self._secrets = secrets
        self._root = root
        self._require_mount = require_mount
        self._registry = registry
        self._key = version_key
        self._metrics = metrics
        self._grace = grace
        self._gc_interval = gc_interval
        self._mu = threading.Lock()
        self._wake = threading.Condition(self._mu)
        self._target_locks = KeyedLocks()  # see target_lock
        self._pending: dict[str, _Trigger] = {}
        self._running: set[str] = set()
        self._sweeps: list[tuple[float, str]] = []
        self._sweep_set: set[str] = set()
        self._retries: list[tuple[float, str]] = []  # (when, target) of volumes found locked
        self._busy_attempts: dict[str, int] = {}
        self._flush_due: float | None = None
        # Keyed by resourceVersion, which changes with every write of a Secret: never stale.
        self._view_cache: dict[tuple[SecretKey, str], SecretView | None] = {}
        self._render_cache: dict[tuple[Any, ...], Write | Fail] = {}
        self._started = False
        self._stopping = False
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rotation")
        # Volumes of more than SMALL_VOLUME_FILES files rotate one at a time on their own
        # thread and step aside for small ones (see "Fairness" in the module docstring).
        self._bulk_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rotation-bulk")
        self._gate = threading.Condition()
        self._small_active = 0
        self._housekeeper: threading.Thread | None = None
        secrets.add_listener(self.on_secret_event)
        metrics.registered.set(len(registry))

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Call once the Secret cache has synced: reconcile every volume, then follow events."""
        with self._mu:
            self._started = True
        self._housekeeper = threading.Thread(
            target=self._housekeep, name="rotation-housekeeping", daemon=True
        )
        self._housekeeper.start()
        self.reconcile_all()

    def stop(self) -> None:
        """Stop taking work, let running rewrites finish, stop housekeeping."""
        with self._mu:
            self._stopping = True
            self._wake.notify_all()
        with self._gate:
            self._gate.notify_all()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._bulk_pool.shutdown(wait=True, cancel_futures=True)
        if self._housekeeper is not None:
            self._housekeeper.join()  # it flushes the registry on its way out
        else:
            self._flush()

    def reconcile_all(self) -> None:
        """Bring every registered volume to the cache's current state (restart, resync)."""
        trigger = _Trigger(time.monotonic())
        for target in self._registry.targets():
            self._schedule(target, trigger)

    def idle(self) -> bool:
        """True when no volume is queued or being rewritten (tests and benchmarks wait on it)."""
        with self._mu:
            return not self._pending and not self._running

    # -- entry points -----------------------------------------------------------------------

    def on_secret_event(self, namespace: str, name: str) -> None:
        """SecretCache listener: schedule every volume that reads this Secret. Quick."""
        if not self._started:
            return  # before sync; start() reconciles everything anyway
        trigger = _Trigger(time.monotonic(), (namespace, name))
        for target in self._registry.targets_for(namespace, name):
            self._schedule(target, trigger)

    @contextmanager
    def target_lock(self, target_path: str) -> Iterator[None]:
        """Serialise everything that renders and writes one target (Mount and rotation)."""
        with self._target_locks.hold(target_path):
            yield

    def observe_mount(self, spec: MountSpec, pod: VerifiedPod, rendered: Any) -> None:
        """MountService observer: register a provider-mode volume the Mount just wrote.

        A driver-mode Mount on a registered target means the driver now owns its files:
        the record is dropped so rotation stops writing there.

        The Mount rendered and wrote outside this target's lock, so a rotation may have written
        a newer state in between (and the Mount then overwrote it with the older one). So,
        inside the lock, render again from the cache and write when that differs from what the
        Mount wrote: whichever ran last, the volume ends at the cache's newest state. A
        republish of an unchanged volume renders in memory and writes nothing, not even the
        registry file.
        """
        target = spec.target_path
        if spec.write_mode is WriteMode.DRIVER:
            if self._registry.get(target) is not None:
                self.forget(target)
            return
        mounted = tuple((v.id, v.version) for v in rendered.versions)
        record = MountRecord(
            target_path=target,
            pod=pod,
            objects=spec.objects,
            permission=spec.permission,
            secret_provider_class=spec.secret_provider_class,
            versions=mounted,
        )
        # The Mount itself succeeded: nothing here may fail it. Problems are logged, and a
        # reconcile is queued so the rotation machinery retries them.
        with self.target_lock(target):
            try:
                views, versions_key = self._views(record)
                decision = decide(
                    record, views, self._key, render_volume=self._cached_render(record, views, versions_key)
                )
                if isinstance(decision, Write) and decision.versions != mounted:
                    atomic_writer.write_atomically(
                        Path(target),
                        render.payload(decision.files),
                        grace=self._grace,
                        require_mount=self._require_mount,
                        root=self._root,
                        adopt=True,  # the registry says a Mount wrote here
                    )
                    record = record.with_outcome(versions=decision.versions)
                elif not isinstance(decision, Write):
                    self._schedule(target, _Trigger(time.monotonic()))  # changed since the Mount
            except atomic_writer.NotMountedError:
                # Unmounted right after the Mount wrote into it: nothing to rotate there.
                previous = self._registry.get(target)
                if previous is not None:
                    self._collect(target, previous, unmounted=True)
                return
            except (OSError, atomic_writer.AtomicWriteError) as exc:
                self._metrics.errors.labels(kind=type(exc).__name__).inc()
                log.warning(
                    "cannot refresh a just-mounted volume", extra={"target": target, "error": str(exc)}
                )
                self._schedule(target, _Trigger(time.monotonic()))
            if self._registry.get(target) != record:
                try:
                    self._registry.put(record)
                except OSError as exc:
                    # Kept in memory and retried by the next flush; rotation works meanwhile.
                    self._registry.put(record, durable=False)
                    self._schedule_flush()
                    log.error("cannot write the mount record", extra={"target": target, "error": str(exc)})
                self._metrics.registered.set(len(self._registry))
        self._schedule_sweep(target)

    def forget(self, target_path: str) -> None:
        """Drop a target from the registry (e.g. it is now mounted in driver mode)."""
        with self.target_lock(target_path):
            self._registry.remove(target_path)
        self._metrics.registered.set(len(self._registry))

    # -- scheduling -------------------------------------------------------------------------

    def _schedule(self, target: str, trigger: _Trigger) -> None:
        with self._mu:
            if self._stopping:
                return
            # Keep the earliest unserved trigger: latency counts from the first event not yet shown.
            if target not in self._pending:
                self._pending[target] = trigger
            if target in self._running:
                return  # the running worker picks it up when it finishes
            self._running.add(target)
        bulk = self.is_bulk(target)
        if not bulk:
            # Counted from the moment it is queued, so bulk work steps aside at its next
            # checkpoint, before the small worker even needs the GIL; released by _work.
            self._enter_small()
        try:
            (self._bulk_pool if bulk else self._pool).submit(self._work, target, bulk)
        except RuntimeError:  # pool shut down between the check and the submit
            with self._mu:
                self._running.discard(target)
            if not bulk:
                self._leave_small()

    def is_bulk(self, target: str) -> bool:
        """Whether ``target`` held more than :data:`SMALL_VOLUME_FILES` files at its last write."""
        record = self._registry.get(target)
        return record is not None and len(record.versions) > SMALL_VOLUME_FILES

    def _yield_to_small(self) -> None:
        """A bulk rewrite's checkpoint (between files): wait while small volumes are rotating."""
        with self._gate:
            while self._small_active and not self._stopping:
                self._gate.wait(timeout=1.0)

    def _enter_small(self) -> None:
        with self._gate:
            self._small_active += 1

    def _leave_small(self) -> None:
        with self._gate:
            self._small_active -= 1
            if not self._small_active:
                self._gate.notify_all()

    def _work(self, target: str, bulk: bool = False) -> None:
        try:
            self._work_loop(target, bulk)
        finally:
            if not bulk:
                self._leave_small()  # entered when _schedule queued this worker

    def _work_loop(self, target: str, bulk: bool) -> None:
        while True:
            with self._mu:
                trigger = self._pending.pop(target, None)
                if trigger is None or self._stopping:
                    self._running.discard(target)
                    if not self._pending and not self._running:
                        self._wake.notify_all()  # idle: the housekeeper's chores may run now
                    return
            try:
                self._rotate(target, trigger, checkpoint=self._yield_to_small if bulk else None)
            except atomic_writer.TargetBusyError:
                # Revocation found the volume locked by another process: not waited for.
                log.warning("cannot remove the volume's files yet: it is locked", extra={"target": target})
                self._retry_later(target)
            except Exception as exc:  # never let one volume stop the worker
                self._metrics.errors.labels(kind=type(exc).__name__).inc()
                log.error(
                    "rotation of a volume failed", extra={"target": target, "error": type(exc).__name__}
                )

    # -- caches: a thousand volumes of one Secret decode and render it once -------------------

    def _views(
        self, record: MountRecord
    ) -> tuple[dict[SecretKey, SecretView | None], tuple[tuple[SecretKey, str], ...] | None]:
        """The record's Secrets as views, and their resourceVersions (None: not cacheable)."""
        views: dict[SecretKey, SecretView | None] = {}
        rvs: list[tuple[SecretKey, str]] = []
        cacheable = True
        for key in sorted(record.secrets()):
            secret = self._secrets.get(*key)
            rv = resource_version(secret)
            if rv is None:
                cacheable = False
                views[key] = secret_view(secret)
                continue
            rvs.append((key, rv))
            with self._mu:
                cached = self._view_cache.get((key, rv))
            if cached is None:
                cached = secret_view(secret)
                with self._mu:
                    if len(self._view_cache) >= _CACHE_SIZE:
                        self._view_cache.clear()
                    self._view_cache[(key, rv)] = cached
            views[key] = cached
        return views, (tuple(rvs) if cacheable else None)

    def _cached_render(
        self,
        record: MountRecord,
        views: Mapping[SecretKey, SecretView | None],
        rvs: tuple[tuple[SecretKey, str], ...] | None,
        checkpoint: Callable[[], None] | None = None,
    ) -> Callable[[], Write | Fail]:
        """render_files for ``record``, memoised by (objects, permission, Secret resourceVersions)."""

        def compute() -> Write | Fail:
            return render_files(record.objects, record.permission, views, self._key, checkpoint)

        if rvs is None:
            return compute
        cache_key = (record.objects, record.permission, rvs)

        def cached() -> Write | Fail:
            with self._mu:
                hit = self._render_cache.get(cache_key)
            if hit is None:
                hit = compute()
                with self._mu:
                    if len(self._render_cache) >= _CACHE_SIZE:
                        self._render_cache.clear()
                    self._render_cache[cache_key] = hit
            return hit

        return cached

    # -- one volume -------------------------------------------------------------------------

    def _rotate(self, target: str, trigger: _Trigger, checkpoint: Callable[[], None] | None = None) -> None:
        with self.target_lock(target):
            record = self._registry.get(target)
            if record is None:
                return
            state = self._target_state(target)
            if state != "ok":
                self._collect(target, record, unmounted=state == "unmounted")
                return
            keys = sorted(record.secrets())
            if not all(self._secrets.known(*key) for key in keys):
                return  # no view of a Secret yet: its first list (or the next Mount) triggers again
            views, versions_key = self._views(record)
            refused = next((r for key in keys if (r := self._secrets.refusal(record.pod, *key))), None)
            decision = (
                Revoke(refused)
                if refused is not None
                else decide(
                    record,
                    views,
                    self._key,
                    render_volume=self._cached_render(record, views, versions_key, checkpoint),
                )
            )
            if isinstance(decision, Write):
                self._write(record, decision, trigger, views, checkpoint)
            elif isinstance(decision, KeepMissing):
                if record.missing != decision.missing:
                    self._metrics.secret_missing.inc()
                    log.warning(
                        "protected Secret gone: keeping the volume's last files",
                        extra={"target": target, "secrets": list(decision.missing), "pod": _pod(record)},
                    )
                    self._registry.put(record.with_outcome(missing=decision.missing))
            elif isinstance(decision, Revoke):
                if not record.denied:
                    removed = atomic_writer.remove_all(
                        Path(target), root=self._root, adopt=True, lock_wait=0.0
                    )
                    self._metrics.revoked.inc()
                    log.warning(
                        "access revoked: removed the volume's files",
                        extra={"target": target, "reason": decision.reason, "removed": removed},
                    )
                    self._registry.put(record.with_outcome(denied=True, missing=(), versions=()))
            elif record.failing != decision.kind:
                self._metrics.errors.labels(kind=decision.kind).inc()
                log.warning(
                    "cannot re-render the volume: keeping its last files",
                    extra={"target": target, "error": decision.message},
                )
                self._registry.put(record.with_outcome(failing=decision.kind))

    def _write(
        self,
        record: MountRecord,
        decision: Write,
        trigger: _Trigger,
        views: Mapping[SecretKey, SecretView | None],
        checkpoint: Callable[[], None] | None = None,
    ) -> None:
        target = record.target_path
        healthy = not (record.missing or record.denied or record.failing)
        if trigger.secret is not None and healthy and decision.versions == record.versions:
            self._metrics.skipped.inc()  # an event that did not change this volume's files
            return
        try:
            result = atomic_writer.write_atomically(
                Path(target),
                render.payload(decision.files, checkpoint),
                grace=self._grace,
                # Versions differ only when content does; a reconcile compares bytes instead.
                known_changed=trigger.secret is not None and healthy,
                require_mount=self._require_mount,
                root=self._root,
                adopt=True,  # the registry says a Mount wrote here
                checkpoint=checkpoint,
                lock_wait=0.0,  # never wait on another process's flock: retried later instead
            )
        except FileNotFoundError:
            self._collect(target, record)
            return
        except atomic_writer.NotMountedError:
            self._collect(target, record, unmounted=True)  # unmounted since _rotate looked
            return
        except (atomic_writer.AtomicWriteError, OSError) as exc:
            kind = type(exc).__name__
            if record.failing != kind:
                self._metrics.errors.labels(kind=kind).inc()
                log.warning("cannot write the volume", extra={"target": target, "error": str(exc)})
                self._registry.put(record.with_outcome(failing=kind))
            if isinstance(exc, atomic_writer.TargetBusyError):
                self._retry_later(target)
            return
        with self._mu:
            self._busy_attempts.pop(target, None)
        if result.changed or trigger.secret is None:
            # After a swap the old directory waits out the grace period; after a reconcile a
            # crash may have left directories the write could not remove yet (same rule).
            self._schedule_sweep(target)
        if result.changed:
            self._metrics.rewrites.inc()
            if trigger.secret is not None:
                self._metrics.propagation.labels(source="watch").observe(time.monotonic() - trigger.monotonic)
                stamped = written_at(views.get(trigger.secret))
                if stamped is not None:
                    lag = (datetime.now(UTC) - stamped).total_seconds()
                    self._metrics.propagation.labels(source="written_at").observe(max(lag, 0.0))
        else:
            self._metrics.skipped.inc()
        if not healthy:
            log.info("serving the volume again", extra={"target": target, "pod": _pod(record)})
        updated = record.with_outcome(versions=decision.versions, missing=(), denied=False, failing="")
        if updated != record:
            # Only the versions moved when it was healthy: flushed shortly by housekeeping.
            self._registry.put(updated, durable=not healthy)
            self._schedule_flush()

    def _collect(self, target: str, record: MountRecord, *, unmounted: bool = False) -> None:
        """The target is gone (pod deleted, volume unmounted): forget it, once, quietly.

        ``unmounted``: the directory is still there but no longer a mount point (only checked
        with ``require_mount``); nothing was written into it.
        """
        with self._mu:
            self._busy_attempts.pop(target, None)
        if self._registry.remove(target):
            self._metrics.collected.inc()
            self._metrics.registered.set(len(self._registry))
            message = (
                "volume target is no longer a mounted volume: dropped from the registry, nothing written"
                if unmounted
                else "volume target gone: dropped from the registry"
            )
            log.info(message, extra={"target": target, "pod": _pod(record)})

    # -- housekeeping ------------------------------------------------------------------------

    def _schedule_sweep(self, target: str, delay: float | None = None) -> None:
        """Sweep ``target`` after ``delay`` (default: the grace period), unless one is queued."""
        wait = self._grace if delay is None else delay
        with self._mu:
            if target in self._sweep_set:
                return
            self._sweep_set.add(target)
            heapq.heappush(self._sweeps, (time.monotonic() + wait + 0.05, target))
            self._wake.notify_all()

    def _retry_later(self, target: str) -> None:
        """Another process holds the volume's flock: queue a reconcile of it after a delay that
        doubles with each refusal (from 0.1 s up to 30 s), without holding up the writer."""
        with self._mu:
            attempts = self._busy_attempts.get(target, 0) + 1
            self._busy_attempts[target] = attempts
            delay = min(_BUSY_RETRY_CAP, _BUSY_RETRY_FIRST * 2 ** min(attempts - 1, 16))
            heapq.heappush(self._retries, (time.monotonic() + delay, target))
            self._wake.notify_all()

    def _schedule_flush(self) -> None:
        with self._mu:
            if self._flush_due is None:
                self._flush_due = time.monotonic() + _FLUSH_DELAY
                self._wake.notify_all()

    def _chore_time(self, due: float, patience: float) -> float:
        """When a chore due at ``due`` runs: then if no volume is queued or being rewritten, else
        up to ``patience`` later (a worker going idle wakes the housekeeper). Holds ``_mu``."""
        return due if not self._pending and not self._running else due + patience

    def _housekeep(self) -> None:
        """One thread for the timed chores: sweeps after the grace period, registry flushes, GC."""
        next_gc = time.monotonic() + self._gc_interval
        while True:
            with self._mu:
                while not self._stopping:
                    now = time.monotonic()
                    until = min(
                        self._retries[0][0] if self._retries else next_gc,
                        self._chore_time(self._sweeps[0][0], self._grace) if self._sweeps else next_gc,
                        self._chore_time(self._flush_due, _FLUSH_PATIENCE)
                        if self._flush_due is not None
                        else next_gc,
                        next_gc,
                    )
                    if until <= now:
                        break
                    self._wake.wait(timeout=until - now)
                if self._stopping:
                    break
                now = time.monotonic()
                retry: list[str] = []
                while self._retries and self._retries[0][0] <= now:
                    retry.append(heapq.heappop(self._retries)[1])
                # One sweep per pass: the rotator's idleness is looked at again before the next,
                # so a fan-out that starts mid-batch gets the GIL to itself.
                sweep_target = None
                if self._sweeps and self._chore_time(self._sweeps[0][0], self._grace) <= now:
                    _, sweep_target = heapq.heappop(self._sweeps)
                    self._sweep_set.discard(sweep_target)
                flush = (
                    self._flush_due is not None and self._chore_time(self._flush_due, _FLUSH_PATIENCE) <= now
                )
                if flush:
                    self._flush_due = None
            for target in retry:
                self._schedule(target, _Trigger(time.monotonic()))  # a reconcile: bytes compared
            if flush:
                self._flush()
            if sweep_target is not None:
                self._sweep(sweep_target)
            if time.monotonic() >= next_gc:
                self.collect_garbage()
                next_gc = time.monotonic() + self._gc_interval
        self._flush()

    def _sweep(self, target: str) -> None:
        """Remove the target's replaced versions once their grace period is over."""
        try:
            with self.target_lock(target):
                swept = atomic_writer.sweep(
                    Path(target),
                    grace=self._grace,
                    root=self._root,
                    checkpoint=self._yield_to_small if self.is_bulk(target) else None,
                    lock_wait=0.0,
                )
        except atomic_writer.TargetBusyError:
            self._schedule_sweep(target)  # someone holds the volume: again a grace period later
            return
        except (OSError, atomic_writer.AtomicWriteError) as exc:
            log.debug("sweep failed", extra={"target": target, "error": type(exc).__name__})
            return
        if swept.retry_after is not None:
            # A later write restarted the grace period: come back until every replaced
            # version is gone, so old contents never outlive it by more than a grace.
            self._schedule_sweep(target, swept.retry_after)

    @contextmanager
    def _flush_guard(self, target: str) -> Iterator[None]:
        """Around each record the flush writes: small rotations first, then the target's lock."""
        self._yield_to_small()
        with self.target_lock(target):
            yield

    def _flush(self) -> None:
        try:
            self._registry.flush(guard=self._flush_guard)
        except OSError as exc:
            log.error("cannot write mount records", extra={"error": str(exc)})
            self._schedule_flush()

    def collect_garbage(self) -> int:
        """Drop every registered volume whose target directory is gone (or, with
        ``require_mount``, no longer a mount point); return how many."""
        dropped = 0
        for target in self._registry.targets():
            self._yield_to_small()  # not urgent: rotations first
            if self._target_state(target) == "ok":
                continue
            with self.target_lock(target):
                record = self._registry.get(target)
                state = self._target_state(target)  # again, now that no Mount can race it
                if record is not None and state != "ok":
                    self._collect(target, record, unmounted=state == "unmounted")
                    dropped += 1
        return dropped

    def _target_state(self, target: str) -> Literal["gone", "unmounted", "ok"]:
        """ "gone" (no directory, or not reachable beneath the kubelet dir without following a
        symlink), "unmounted" (a plain directory where a mount is required) or "ok"."""
        try:
            dfd = atomic_writer.open_beneath(self._root, Path(target))
        except (OSError, atomic_writer.UnsafeTargetError):
            return "gone"
        try:
            if self._require_mount and not atomic_writer.is_mount_root(dfd):
                return "unmounted"
            return "ok"
        finally:
            os.close(dfd)


def _pod(record: MountRecord) -> str:
    return f"{record.pod.namespace}/{record.pod.name}"


# ---------------------------------------------------------------------------------------------
# Wiring into the provider process


class RotationExtension:
    """Plugs rotation into :class:`~csi_vso.provider.server.ProviderServer` (its ``extensions``).

    ``start(server)`` loads the registry from the state dir, registers the rotator as the Mount
    service's observer and as the Secret cache's listener, and starts it once the cache has
    synced (so the restart reconcile sees complete state). ``stop()`` lets running rewrites
    finish.
    """

    def __init__(self, *, workers: int = 1, gc_interval: float = 30.0) -> None:
        self._workers = workers
        self._gc_interval = gc_interval
        self.rotator: Rotator | None = None
        self._stopping = threading.Event()
        self._starter: threading.Thread | None = None

    def start(self, server: Any) -> None:
        settings = server.settings
        registry = Registry(settings.state_dir)
        loaded = registry.load()
        rotator = Rotator(
            secrets=server.cache,
            registry=registry,
            version_key=versions.load_or_create_key(settings.state_dir),
            metrics=RotationMetrics(server.metrics.registry),
            workers=self._workers,
            gc_interval=self._gc_interval,
            require_mount=settings.require_mounted_target,
            root=settings.kubelet_dir,
        )
        server.service.add_observer(rotator.observe_mount)
        server.cache.set_needed(registry.pod_secrets)  # pod-token mode: watches follow the volumes
        self.rotator = rotator
        log.info("mount registry loaded", extra={"mounts": loaded})

        def start_after_sync() -> None:
            while not self._stopping.is_set():
                if server.cache.wait_for_sync(timeout=0.5):
                    if not self._stopping.is_set():
                        rotator.start()
                        log.info("rotation started", extra={"mounts": len(registry)})
                    return

        self._starter = threading.Thread(target=start_after_sync, name="rotation-start", daemon=True)
        self._starter.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._starter is not None:
            self._starter.join()
        if self.rotator is not None:
            self.rotator.stop()
