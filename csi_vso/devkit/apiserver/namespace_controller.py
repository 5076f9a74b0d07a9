"""The namespace controller: empty a Terminating namespace, then let it go.

A DELETE of a namespace only marks it (``deletionTimestamp``, phase ``Terminating``; the
``kubernetes`` entry in ``spec.finalizers`` holds it). The controller then deletes every
object in it — honouring their own finalizers, so a held object keeps the namespace
Terminating — and, once nothing is left, clears ``spec.finalizers`` (the ``finalize``
step) so the namespace disappears. :class:`~csi_vso.devkit.apiserver.controllers.Controllers`
runs this a short while after the deletion started and again whenever an object in the
namespace goes away, as the real controller is re-queued by its informers. Creating new
content meanwhile is refused by admission (``operations``), with the ``NamespaceTerminating``
cause.
"""

from __future__ import annotations

from csi_vso.devkit.apiserver.errors import ApiError
from csi_vso.devkit.apiserver.operations import DeleteOptions, Operations


def terminate_namespace(ops: Operations, name: str) -> None:
    store = ops.store
    ns = store.get("namespaces", "", name)
    if ns is None or not ns.meta.get("deletionTimestamp"):
        return
    for storage in store.namespaces_used(name):
        types = ops.registry.by_storage(storage)
        if not types:
            continue
        objects, _ = store.list_objects(storage, name)
        for stored in objects:
            if stored.meta.get("deletionTimestamp"):
                continue
            try:
                ops.delete(types[0], name, stored.meta["name"], DeleteOptions())
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
            store.delete("namespaces", "", name)
        else:
            store.put("namespaces", "", name, obj)
