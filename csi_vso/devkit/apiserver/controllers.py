"""Background controllers the real control plane runs and clients rely on.

- Garbage collector: when an owner is deleted, dependents whose every owner is gone are
  deleted (background propagation); dependents that still have another live owner just
  lose the dangling reference. A dependent created with only absent owners is deleted too.
  ``orphan`` and ``foregroundDeletion`` finalizers placed by DELETE are honoured: orphaning
  strips the owner reference from dependents; foreground deletion deletes the dependents
  whose reference says ``blockOwnerDeletion: true`` and holds the owner while they remain;
  the others are collected once the owner is gone, as the real garbage collector does.
- Namespace controller (``namespace_controller``): a deleted namespace turns Terminating,
  its content is deleted after a short delay (honouring the content's own finalizers),
  then the namespace goes away.
- CRD cleanup: deleting a CustomResourceDefinition deletes all its custom resources before
  the CRD itself disappears.

The store calls :meth:`Controllers.observe` under its lock, which only enqueues work; one
worker thread does the work through :class:`Operations`, asynchronously as in a cluster.
Work can be due later: garbage collection runs ``gc_delay`` seconds after the event that
caused it (tens of milliseconds on a real cluster: the collector works from its own
informers), namespace content removal ``namespace_delay`` seconds after the deletion
started, so clients meet the same intermediate states they meet on a cluster.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import threading
import time
from typing import Any

from csi_vso.devkit.apiserver.errors import ApiError
from csi_vso.devkit.apiserver.namespace_controller import terminate_namespace
from csi_vso.devkit.apiserver.operations import CRD_FINALIZER, DeleteOptions, Operations
from csi_vso.devkit.apiserver.resources import ResourceType
from csi_vso.devkit.apiserver.store import ADDED, DELETED, Event, Key

log = logging.getLogger(__name__)

Work = tuple[str, Any]

# Modelled controller latencies (seconds); see the module docstring.
DEFAULT_GC_DELAY = 0.02
DEFAULT_NAMESPACE_DELAY = 0.2

_GC_WORK = frozenset({"owner-gone", "dependent", "owner-check"})


class Controllers:
    def __init__(
        self,
        ops: Operations,
        *,
        gc_delay: float = DEFAULT_GC_DELAY,
        namespace_delay: float = DEFAULT_NAMESPACE_DELAY,
    ) -> None:
        self.ops = ops
        self.gc_delay = gc_delay
        self.namespace_delay = namespace_delay
        self._queue: queue.SimpleQueue[tuple[float, Work] | None] = queue.SimpleQueue()
        self._later: list[tuple[float, int, Work]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._idle = threading.Event()
        self._idle.set()
        self._pending = 0
        self._pending_lock = threading.Lock()
        ops.store.add_listener(self.observe)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="apiserver-controllers", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Block until queued work is done (tests use it instead of sleeping)."""
        return self._idle.wait(timeout)

    def _enqueue(self, work: Work, delay: float | None = None) -> None:
        if delay is None:
            delay = self.gc_delay if work[0] in _GC_WORK else 0.0
        with self._pending_lock:
            self._pending += 1
            self._idle.clear()
        self._queue.put((time.monotonic() + delay, work))

    # called under the store lock: enqueue only
    def observe(self, event: Event) -> None:
        meta = event.new.meta
        if event.type == DELETED:
            if meta.get("uid"):
                self._enqueue(("owner-gone", meta["uid"]))
            for ref in meta.get("ownerReferences") or ():
                self._enqueue(("owner-check", ref.get("uid", "")))
            if event.namespace:
                self._enqueue(("namespace", event.namespace))
            self._enqueue(("crd-check", event.storage))
            return
        if meta.get("deletionTimestamp"):
            if event.storage == "namespaces":
                first = event.old is None or not event.old.meta.get("deletionTimestamp")
                self._enqueue(("namespace", meta["name"]), self.namespace_delay if first else 0.0)
            elif event.storage == "customresourcedefinitions.apiextensions.k8s.io":
                self._enqueue(("crd", meta["name"]))
            else:
                self._enqueue(("owner-check", meta.get("uid", "")))
        if event.type == ADDED and meta.get("ownerReferences"):
            self._enqueue(("dependent", (event.storage, event.namespace, meta["name"])))

    def _next_work(self) -> Work | None:
        """The next due work item, waiting for delayed ones; None when stopping."""
        while True:
            timeout = None
            if self._later:
                timeout = max(0.0, self._later[0][0] - time.monotonic())
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                pass  # the earliest delayed item is due
            else:
                if item is None:
                    return None
                due, work = item
                heapq.heappush(self._later, (due, next(self._seq), work))
            if self._later and self._later[0][0] <= time.monotonic():
                return heapq.heappop(self._later)[2]

    def _run(self) -> None:
        while True:
            work = self._next_work()
            if work is None:
                return
            try:
                self._handle(work)
            except ApiError as exc:
                if exc.code not in (404, 409):
                    log.warning("controller work failed", extra={"work": work[0], "error": exc.message})
            except Exception:
                log.exception("controller work failed", extra={"work": work[0]})
            finally:
                with self._pending_lock:
                    self._pending -= 1
                    if self._pending == 0:
                        self._idle.set()

    def _handle(self, work: Work) -> None:
        kind, arg = work
        if kind == "owner-gone":
            for key in self.ops.store.dependents(arg):
                self._collect(key)
        elif kind == "dependent":
            self._collect(arg)
        elif kind == "owner-check":
            self._finish_owner(arg)
        elif kind == "namespace":
            terminate_namespace(self.ops, arg)
        elif kind == "crd":
            self._cleanup_crd(arg)
        elif kind == "crd-check":
            self._crd_check(arg)

    # ------------------------------------------------------------ garbage collector

    def _type_for(self, storage: str) -> ResourceType | None:
        types = self.ops.registry.by_storage(storage)
        return types[0] if types else None

    def _owner_alive(self, ref: dict[str, Any], namespace: str) -> bool:
        key = self.ops.store.by_uid(ref.get("uid", ""))
        if key is None:
            return False
        stored = self.ops.store.get(*key)
        if stored is None or stored.meta.get("name") != ref.get("name"):
            return False
        return key[1] in ("", namespace)

    def _collect(self, key: Key) -> None:
        """Delete a dependent whose owners are all gone; drop references to dead owners."""
        store = self.ops.store
        rt = self._type_for(key[0])
        if rt is None:
            return
        with store.lock:
            stored = store.get(*key)
            if stored is None:
                return
            refs = stored.meta.get("ownerReferences") or []
            alive = [r for r in refs if self._owner_alive(r, key[1]) or self._owner_orphaning(r)]
            if len(alive) == len(refs):
                return
            if alive:
                body = {
                    "metadata": {"ownerReferences": alive, "resourceVersion": stored.meta["resourceVersion"]}
                }
                self.ops.patch(rt, key[1], key[2], "application/merge-patch+json", _json(body))
                return
            foreground = any(self._owner_foreground(r) for r in refs)
        self.ops.delete(
            rt, key[1], key[2], DeleteOptions(propagation="Foreground" if foreground else "Background")
        )

    def _owner_orphaning(self, ref: dict[str, Any]) -> bool:
        key = self.ops.store.by_uid(ref.get("uid", ""))
        stored = self.ops.store.get(*key) if key else None
        return stored is not None and "orphan" in (stored.meta.get("finalizers") or [])

    def _owner_foreground(self, ref: dict[str, Any]) -> bool:
        key = self.ops.store.by_uid(ref.get("uid", ""))
        stored = self.ops.store.get(*key) if key else None
        return stored is not None and "foregroundDeletion" in (stored.meta.get("finalizers") or [])

    def _finish_owner(self, uid: str) -> None:
        """Act on the orphan / foregroundDeletion finalizers of an owner being deleted."""
        store = self.ops.store
        key = store.by_uid(uid)
        if key is None:
            return
        stored = store.get(*key)
        rt = self._type_for(key[0])
        if stored is None or rt is None or not stored.meta.get("deletionTimestamp"):
            return
        finalizers = stored.meta.get("finalizers") or []
        dependents = store.dependents(uid)
        if "orphan" in finalizers:
            for dep in dependents:
                dep_rt = self._type_for(dep[0])
                dep_obj = store.get(*dep)
                if dep_rt is None or dep_obj is None:
                    continue
                refs = [r for r in dep_obj.meta.get("ownerReferences") or [] if r.get("uid") != uid]
                self.ops.patch(
                    dep_rt,
                    dep[1],
                    dep[2],
                    "application/merge-patch+json",
                    _json({"metadata": {"ownerReferences": refs or None}}),
                )
            self._remove_finalizer(rt, key, "orphan")
        elif "foregroundDeletion" in finalizers:
            blocking = False
            for dep in dependents:
                dep_rt = self._type_for(dep[0])
                dep_obj = store.get(*dep)
                if dep_rt is None or dep_obj is None:
                    continue
                refs = dep_obj.meta.get("ownerReferences") or []
                if not any(r.get("uid") == uid and r.get("blockOwnerDeletion") for r in refs):
                    continue  # collected in the background once the owner is gone, as on a cluster
                blocking = True
                if dep_obj.meta.get("deletionTimestamp"):
                    continue
                # As the real collector: a dependent with dependents of its own goes in the
                # foreground too, a leaf in the background.
                nested = bool(store.dependents(dep_obj.meta.get("uid", "")))
                propagation = "Foreground" if nested else "Background"
                try:
                    self.ops.delete(dep_rt, dep[1], dep[2], DeleteOptions(propagation=propagation))
                except ApiError as exc:
                    if exc.code != 404:
                        raise
            if not blocking:
                self._remove_finalizer(rt, key, "foregroundDeletion")

    def _remove_finalizer(self, rt: ResourceType, key: Key, finalizer: str) -> None:
        stored = self.ops.store.get(*key)
        if stored is None:
            return
        rest = [f for f in stored.meta.get("finalizers") or [] if f != finalizer]
        body = {"metadata": {"finalizers": rest or None, "resourceVersion": stored.meta["resourceVersion"]}}
        self.ops.patch(rt, key[1], key[2], "application/merge-patch+json", _json(body))

    # ------------------------------------------------------------ CRDs

    def _cleanup_crd(self, name: str) -> None:
        store = self.ops.store
        crd = store.get("customresourcedefinitions.apiextensions.k8s.io", "", name)
        if crd is None or not crd.meta.get("deletionTimestamp"):
            return
        spec = crd.obj.get("spec") or {}
        storage = f"{spec.get('names', {}).get('plural')}.{spec.get('group')}"
        rt = self._type_for(storage)
        if rt is not None:
            objects, _ = store.list_objects(storage, None)
            for stored in objects:
                if not stored.meta.get("deletionTimestamp"):
                    try:
                        self.ops.delete(
                            rt, stored.meta.get("namespace", ""), stored.meta["name"], DeleteOptions()
                        )
                    except ApiError as exc:
                        if exc.code != 404:
                            raise
            if store.list_objects(storage, None)[0]:
                return
        crd_type = self._type_for("customresourcedefinitions.apiextensions.k8s.io")
        assert crd_type is not None
        self._remove_finalizer(
            crd_type, ("customresourcedefinitions.apiextensions.k8s.io", "", name), CRD_FINALIZER
        )

    def _crd_check(self, storage: str) -> None:
        rt = self._type_for(storage)
        if rt is not None and rt.crd_name:
            self._cleanup_crd(rt.crd_name)


def _json(body: Any) -> bytes:
    import json

    return json.dumps(body).encode()
