"""Background controllers the real control plane runs and clients rely on.

- Garbage collector: when an owner is deleted, dependents whose every owner is gone are
  deleted (background propagation); dependents that still have another live owner just
  lose the dangling reference. A dependent created with only absent owners is deleted too.
  ``orphan`` and ``foregroundDeletion`` finalizers placed by DELETE are honoured: orphaning
  strips the owner reference from dependents, foreground deletion deletes them first.
- Namespace controller: a deleted namespace turns Terminating, its content is deleted
  (honouring the content's own finalizers), then the namespace goes away.
- CRD cleanup: deleting a CustomResourceDefinition deletes all its custom resources before
  the CRD itself disappears.

The store calls :meth:`Controllers.observe` under its lock, which only enqueues work; one
worker thread does the work through :class:`Operations`, asynchronously as in a cluster.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any

from csi_vso.devkit.apiserver.errors import ApiError
from csi_vso.devkit.apiserver.operations import CRD_FINALIZER, DeleteOptions, Operations
from csi_vso.devkit.apiserver.resources import ResourceType
from csi_vso.devkit.apiserver.store import ADDED, DELETED, Event, Key

log = logging.getLogger(__name__)

Work = tuple[str, Any]


class Controllers:
    def __init__(self, ops: Operations) -> None:
        self.ops = ops
        self._queue: queue.SimpleQueue[Work | None] = queue.SimpleQueue()
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

    def _enqueue(self, work: Work) -> None:
        with self._pending_lock:
            self._pending += 1
            self._idle.clear()
        self._queue.put(work)

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
                self._enqueue(("namespace", meta["name"]))
            elif event.storage == "customresourcedefinitions.apiextensions.k8s.io":
                self._enqueue(("crd", meta["name"]))
            else:
                self._enqueue(("owner-check", meta.get("uid", "")))
        if event.type == ADDED and meta.get("ownerReferences"):
            self._enqueue(("dependent", (event.storage, event.namespace, meta["name"])))

    def _run(self) -> None:
        while True:
            work = self._queue.get()
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
            self._terminate_namespace(arg)
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
            if not dependents:
                self._remove_finalizer(rt, key, "foregroundDeletion")
                return
            for dep in dependents:
                dep_rt = self._type_for(dep[0])
                if dep_rt is not None and store.get(*dep) is not None:
                    try:
                        self.ops.delete(dep_rt, dep[1], dep[2], DeleteOptions(propagation="Foreground"))
                    except ApiError as exc:
                        if exc.code != 404:
                            raise

    def _remove_finalizer(self, rt: ResourceType, key: Key, finalizer: str) -> None:
        stored = self.ops.store.get(*key)
        if stored is None:
            return
        rest = [f for f in stored.meta.get("finalizers") or [] if f != finalizer]
        body = {"metadata": {"finalizers": rest or None, "resourceVersion": stored.meta["resourceVersion"]}}
        self.ops.patch(rt, key[1], key[2], "application/merge-patch+json", _json(body))

    # ------------------------------------------------------------ namespaces, CRDs

    def _terminate_namespace(self, name: str) -> None:
        store = self.ops.store
        ns = store.get("namespaces", "", name)
        if ns is None or not ns.meta.get("deletionTimestamp"):
            return
        used = store.namespaces_used(name)
        for storage in used:
            rt = self._type_for(storage)
            if rt is None:
                continue
            objects, _ = store.list_objects(storage, name)
            for stored in objects:
                if stored.meta.get("deletionTimestamp"):
                    continue
                try:
                    self.ops.delete(rt, name, stored.meta["name"], DeleteOptions())
                except ApiError as exc:
                    if exc.code != 404:
                        raise
        if store.namespaces_used(name):
            return  # objects with finalizers remain; their deletion re-queues us
        with store.lock:
            ns = store.get("namespaces", "", name)
            if ns is None:
                return
            obj = dict(ns.obj)
            obj["metadata"] = dict(ns.meta)
            obj["spec"] = {**(ns.obj.get("spec") or {}), "finalizers": []}
            if not obj["metadata"].get("finalizers"):
                final = store.delete("namespaces", "", name)
                assert final is not None
            else:
                store.put("namespaces", "", name, obj)

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
