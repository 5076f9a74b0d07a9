"""Object storage, the global resourceVersion, the event log and watch fan-out.

One lock serializes writes; every write takes the next resourceVersion from a single
counter shared by all kinds (as etcd's revision is), appends one event to a bounded log and
hands it to the watchers of that storage while still holding the lock — so each watcher
receives events in resourceVersion order, and a watch started from version N under the
same lock sees exactly the events after N, with no gap and no duplicate.

Stored objects are never mutated after they are committed: readers share them without
copying, and each stored version caches its own JSON encoding, so a list of 10,000 Secrets
or an event sent to 50 watchers is encoded once. The log keeps the newest ``window``
events; a watch from an older version gets 410 Expired, as after an etcd compaction.
"""

from __future__ import annotations

import bisect
import json
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from csi_vso.devkit.apiserver.selectors import FieldSelector, LabelSelector, field_value

Obj = dict[str, Any]
Key = tuple[str, str, str]  # (storage key, namespace, name)

ADDED, MODIFIED, DELETED, BOOKMARK = "ADDED", "MODIFIED", "DELETED", "BOOKMARK"
INITIAL_EVENTS_END = "INITIAL_EVENTS_END"  # queue item: the bookmark that ends sendInitialEvents


def encode(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


class Stored:
    """One committed version of an object, with its JSON cached on first use."""

    __slots__ = ("_raw", "obj")

    def __init__(self, obj: Obj) -> None:
        self.obj = obj
        self._raw: dict[str, bytes] = {}

    @property
    def meta(self) -> Obj:
        m: Obj = self.obj["metadata"]
        return m

    @property
    def labels(self) -> dict[str, str] | None:
        labels: dict[str, str] | None = self.obj["metadata"].get("labels")
        return labels

    def raw_list_item(self) -> bytes:
        """JSON of the object as an item of a built-in kind's list: without ``kind`` and
        ``apiVersion``, which the real server leaves out there (the list carries them)."""
        cached = self._raw.get("")
        if cached is None:
            cached = encode({k: v for k, v in self.obj.items() if k not in ("kind", "apiVersion")})
            self._raw[""] = cached
        return cached

    def raw(self, api_version: str | None = None) -> bytes:
        """JSON of the object, served as ``api_version`` (CRD versions share storage)."""
        version = api_version or self.obj.get("apiVersion", "")
        cached = self._raw.get(version)
        if cached is None:
            obj = self.obj if version == self.obj.get("apiVersion") else {**self.obj, "apiVersion": version}
            cached = encode(obj)
            self._raw[version] = cached
        return cached


@dataclass(slots=True)
class Event:
    rv: int
    storage: str
    namespace: str
    type: str
    new: Stored  # for DELETED: the last state, stamped with the deletion's resourceVersion
    old: Stored | None


@dataclass(frozen=True)
class WatchFilter:
    storage: str
    namespace: str | None
    labels: LabelSelector
    fields: FieldSelector

    def matches(self, stored: Stored) -> bool:
        meta = stored.meta
        if self.namespace is not None and meta.get("namespace", "") != self.namespace:
            return False
        if not self.labels.empty and not self.labels.matches(meta.get("labels")):
            return False
        return self.fields.empty or self.fields.matches(lambda path: field_value(stored.obj, path))


# Items in a watcher's queue: (event type, object) or (BOOKMARK, resourceVersion) or None (end).
QueueItem = tuple[str, Any] | None


class Watcher:
    """One open watch: a filter and a queue the writers fill under the store lock."""

    def __init__(self, flt: WatchFilter) -> None:
        self.filter = flt
        self.queue: queue.SimpleQueue[QueueItem] = queue.SimpleQueue()

    def offer(self, event: Event) -> None:
        """Translate a store event for this watcher, as the real watch cache does.

        An object that starts or stops matching the selectors is ADDED or DELETED for
        this watcher even though the store saw a modification.
        """
        flt = self.filter
        if event.type == DELETED:
            if flt.matches(event.new):
                self.queue.put((DELETED, event.new))
            return
        now = flt.matches(event.new)
        before = event.old is not None and flt.matches(event.old)
        if now:
            self.queue.put((MODIFIED if before else ADDED, event.new))
        elif before:
            assert event.old is not None
            self.queue.put((DELETED, _with_rv(event.old, event.rv)))

    def close(self) -> None:
        self.queue.put(None)


def _with_rv(stored: Stored, rv: int) -> Stored:
    obj = dict(stored.obj)
    obj["metadata"] = {**stored.meta, "resourceVersion": str(rv)}
    return Stored(obj)


class Expired(Exception):
    """The requested resourceVersion is older than the retained event window."""

    def __init__(self, requested: int, oldest: int) -> None:
        super().__init__(f"too old resource version: {requested} ({oldest})")


class Store:
    def __init__(self, window: int = 25_000) -> None:
        self.lock = threading.RLock()
        self.rv = 0
        self._window = window
        self._data: dict[str, dict[str, dict[str, Stored]]] = {}
        self._log: list[Event] = []
        self._log_rvs: list[int] = []
        self._log_start = 0
        self._compacted_rv = 0
        self._watchers: dict[str, set[Watcher]] = {}
        self._uids: dict[str, Key] = {}
        self._dependents: dict[str, set[Key]] = {}
        self._listeners: list[Callable[[Event], None]] = []

    # ----------------------------------------------------------------- reads

    def get(self, storage: str, namespace: str, name: str) -> Stored | None:
        return self._data.get(storage, {}).get(namespace, {}).get(name)

    def list_objects(self, storage: str, namespace: str | None) -> tuple[list[Stored], int]:
        """Objects of one storage (one namespace, or all), sorted by namespace/name, and the rv."""
        with self.lock:
            by_ns = self._data.get(storage, {})
            if namespace is not None:
                items = sorted(by_ns.get(namespace, {}).items())
                return [s for _, s in items], self.rv
            out: list[Stored] = []
            for ns in sorted(by_ns):
                out.extend(s for _, s in sorted(by_ns[ns].items()))
            return out, self.rv

    def snapshot(self, storage: str, namespace: str | None, rv: int) -> list[Stored]:
        """Objects of one storage as they were at version ``rv`` (sorted like ``list_objects``).

        Rebuilt from the current state by undoing the logged events after ``rv``, as etcd
        reads at a revision. Raises :class:`Expired` once ``rv`` has left the event window.
        """
        with self.lock:
            if rv < self._compacted_rv:
                raise Expired(rv, self._compacted_rv)
            state: dict[tuple[str, str], Stored] = {}
            by_ns = self._data.get(storage, {})
            for ns in [namespace] if namespace is not None else list(by_ns):
                for name, stored in by_ns.get(ns, {}).items():
                    state[(ns, name)] = stored
            start = bisect.bisect_right(self._log_rvs, rv, lo=self._log_start)
            for i in range(len(self._log) - 1, start - 1, -1):
                event = self._log[i]
                if event.storage != storage or (namespace is not None and event.namespace != namespace):
                    continue
                key = (event.namespace, event.new.meta["name"])
                if event.type == ADDED:
                    state.pop(key, None)
                elif event.old is not None:
                    state[key] = event.old
            return [state[k] for k in sorted(state)]

    def namespaces_used(self, namespace: str) -> list[str]:
        """Storage keys that hold at least one object in ``namespace``."""
        with self.lock:
            return [key for key, by_ns in self._data.items() if by_ns.get(namespace)]

    def by_uid(self, uid: str) -> Key | None:
        return self._uids.get(uid)

    def dependents(self, owner_uid: str) -> list[Key]:
        with self.lock:
            return sorted(self._dependents.get(owner_uid, ()))

    # ---------------------------------------------------------------- writes

    def add_listener(self, fn: Callable[[Event], None]) -> None:
        """Call ``fn(event)`` after every write, under the lock (keep it cheap)."""
        self._listeners.append(fn)

    def put(self, storage: str, namespace: str, name: str, obj: Obj) -> Stored:
        """Commit ``obj`` (a fresh dict the store now owns) with the next resourceVersion."""
        with self.lock:
            self.rv += 1
            obj["metadata"]["resourceVersion"] = str(self.rv)
            stored = Stored(obj)
            by_name = self._data.setdefault(storage, {}).setdefault(namespace, {})
            old = by_name.get(name)
            by_name[name] = stored
            key = (storage, namespace, name)
            if old is not None:
                self._unindex(key, old)
            self._index(key, stored)
            self._emit(Event(self.rv, storage, namespace, MODIFIED if old else ADDED, stored, old))
            return stored

    def delete(self, storage: str, namespace: str, name: str) -> Stored | None:
        """Remove the object; returns its last state stamped with the deletion's version."""
        with self.lock:
            by_ns = self._data.get(storage, {})
            by_name = by_ns.get(namespace, {})
            old = by_name.pop(name, None)
            if old is None:
                return None
            if not by_name:
                by_ns.pop(namespace, None)
            self._unindex((storage, namespace, name), old)
            self.rv += 1
            final = _with_rv(old, self.rv)
            self._emit(Event(self.rv, storage, namespace, DELETED, final, old))
            return final

    def _index(self, key: Key, stored: Stored) -> None:
        meta = stored.meta
        uid = meta.get("uid")
        if uid:
            self._uids[uid] = key
        for ref in meta.get("ownerReferences") or ():
            if ref.get("uid"):
                self._dependents.setdefault(ref["uid"], set()).add(key)

    def _unindex(self, key: Key, stored: Stored) -> None:
        meta = stored.meta
        uid = meta.get("uid")
        if uid and self._uids.get(uid) == key:
            del self._uids[uid]
        for ref in meta.get("ownerReferences") or ():
            deps = self._dependents.get(ref.get("uid", ""))
            if deps is not None:
                deps.discard(key)
                if not deps:
                    del self._dependents[ref["uid"]]

    def _emit(self, event: Event) -> None:
        self._log.append(event)
        self._log_rvs.append(event.rv)
        self._trim()
        for watcher in self._watchers.get(event.storage, ()):
            watcher.offer(event)
        for fn in self._listeners:
            fn(event)

    def _trim(self) -> None:
        excess = len(self._log) - self._log_start - self._window
        if excess > 0:
            self._log_start += excess
            self._compacted_rv = self._log_rvs[self._log_start - 1]
        if self._log_start > 1024 and self._log_start * 2 > len(self._log):
            del self._log[: self._log_start]
            del self._log_rvs[: self._log_start]
            self._log_start = 0

    def set_window(self, window: int) -> None:
        """Retain only the newest ``window`` events (tests shrink it to provoke 410)."""
        with self.lock:
            self._window = max(0, window)
            self._trim()
            if self._window == 0:
                self._compacted_rv = self.rv

    @property
    def compacted_rv(self) -> int:
        return self._compacted_rv

    # ----------------------------------------------------------------- watch

    def watch(self, flt: WatchFilter, since: int | None, initial_end: bool = False) -> Watcher:
        """Register a watcher; queue the initial state (``since`` None) or the events after ``since``.

        With ``initial_end`` the initial state is followed by an :data:`INITIAL_EVENTS_END`
        item at the version it was read at (``sendInitialEvents``). Raises :class:`Expired`
        when events after ``since`` were already compacted.
        """
        with self.lock:
            watcher = Watcher(flt)
            if since is None:
                objects, _ = self.list_objects(flt.storage, flt.namespace)
                for stored in objects:
                    if flt.matches(stored):
                        watcher.queue.put((ADDED, stored))
                if initial_end:
                    watcher.queue.put((INITIAL_EVENTS_END, self.rv))
            else:
                if since < self._compacted_rv:
                    oldest = (
                        self._log_rvs[self._log_start] if self._log_start < len(self._log_rvs) else self.rv
                    )
                    raise Expired(since, oldest)
                start = bisect.bisect_right(self._log_rvs, since, lo=self._log_start)
                for event in self._iter_log(start):
                    if event.storage == flt.storage:
                        watcher.offer(event)
            self._watchers.setdefault(flt.storage, set()).add(watcher)
            return watcher

    def _iter_log(self, start: int) -> Iterator[Event]:
        for i in range(start, len(self._log)):
            yield self._log[i]

    def unwatch(self, watcher: Watcher) -> None:
        with self.lock:
            self._watchers.get(watcher.filter.storage, set()).discard(watcher)

    def bookmark(self, watcher: Watcher) -> None:
        """Queue a BOOKMARK at the current version: every earlier event is already queued."""
        with self.lock:
            watcher.queue.put((BOOKMARK, self.rv))

    def close_watchers(self) -> None:
        with self.lock:
            for watchers in self._watchers.values():
                for w in watchers:
                    w.close()
            self._watchers.clear()

    def watcher_count(self) -> int:
        with self.lock:
            return sum(len(w) for w in self._watchers.values())
