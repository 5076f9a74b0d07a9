"""A rate-limited work queue with client-go's guarantees, for keys of custom resources.

- A key is processed by one worker at a time: adding a key that is being processed marks it
  dirty and it is handed out again only after :meth:`done` (so one object never has two
  reconciles racing on its Secret and lease).
- A key queued twice is processed once (watch events coalesce).
- Different keys are processed in parallel by as many workers as the caller runs.
- :meth:`add_after` schedules a key (periodic resync, backoff); an earlier schedule for the
  same key wins, so a quick "retry in 5 s" is never postponed by a later "resync in 1 h".
- :class:`Backoff` is per-key exponential backoff, reset on success.

The clock is injectable so tests need no sleeps.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._cond = threading.Condition()
        self._queue: list[K] = []
        self._queued: set[K] = set()
        self._processing: set[K] = set()
        self._dirty: set[K] = set()
        self._delayed: list[tuple[float, int, K]] = []
        self._due: dict[K, float] = {}
        self._counter = 0
        self._shutdown = False

    def add(self, key: K) -> None:
        with self._cond:
            self._add_locked(key)

    def _add_locked(self, key: K) -> None:
        if self._shutdown:
            return
        self._due.pop(key, None)  # an immediate add supersedes any schedule
        if key in self._processing:
            self._dirty.add(key)
            return
        if key not in self._queued:
            self._queued.add(key)
            self._queue.append(key)
            self._cond.notify()

    def add_after(self, key: K, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        with self._cond:
            due = self._clock() + delay
            current = self._due.get(key)
            if current is not None and current <= due:
                return
            self._due[key] = due
            self._counter += 1
            heapq.heappush(self._delayed, (due, self._counter, key))
            self._cond.notify_all()

    def _promote_due_locked(self) -> float | None:
        """Move due keys to the queue; return seconds until the next scheduled key."""
        now = self._clock()
        while self._delayed:
            due, _, key = self._delayed[0]
            if self._due.get(key) != due:
                heapq.heappop(self._delayed)  # superseded schedule
                continue
            if due > now:
                return due - now
            heapq.heappop(self._delayed)
            del self._due[key]
            self._add_locked(key)
        return None

    def get(self, timeout: float | None = None) -> K | None:
        """Next key to process (the caller must call :meth:`done`), or None on shutdown/timeout."""
        deadline = None if timeout is None else self._clock() + timeout
        with self._cond:
            while True:
                wait = self._promote_due_locked()
                if self._shutdown:
                    return None
                if self._queue:
                    key = self._queue.pop(0)
                    self._queued.discard(key)
                    self._processing.add(key)
                    return key
                if deadline is not None:
                    remaining = deadline - self._clock()
                    if remaining <= 0:
                        return None
                    wait = remaining if wait is None else min(wait, remaining)
                self._cond.wait(wait if wait is None else min(wait, 1.0))

    def done(self, key: K) -> None:
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                self._dirty.discard(key)
                self._add_locked(key)

    def forget(self, key: K) -> None:
        """Drop any schedule for ``key`` (its object was deleted)."""
        with self._cond:
            self._due.pop(key, None)

    def shutdown(self) -> None:
        with self._cond:
            self._shutdown = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._queue)

    def scheduled(self, key: K) -> float | None:
        """Seconds until ``key`` is due, or None when it has no schedule."""
        with self._cond:
            due = self._due.get(key)
            return None if due is None else due - self._clock()


class Backoff(Generic[K]):
    """Per-key exponential backoff: base, 2*base, ... capped at ``cap`` (5 s -> 60 s by default)."""

    def __init__(self, base: float = 5.0, cap: float = 60.0) -> None:
        self._base = base
        self._cap = cap
        self._failures: dict[K, int] = {}
        self._lock = threading.Lock()

    def next_delay(self, key: K) -> float:
        with self._lock:
            failures = self._failures.get(key, 0)
            self._failures[key] = failures + 1
        return float(min(self._cap, self._base * (2 ** min(failures, 16))))

    def reset(self, key: K) -> None:
        with self._lock:
            self._failures.pop(key, None)

    def failures(self, key: K) -> int:
        with self._lock:
            return self._failures.get(key, 0)
