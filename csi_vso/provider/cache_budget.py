"""How much Secret data the cluster-wide cache (``--secret-access=cluster``) may hold.

The cluster-wide cache selects on the protected label, and anyone who can create a Secret can
put that label on one: a thousand forged 700 KiB Secrets would otherwise be held on every node
until the provider is OOM-killed (issue 10, finding 2). Pod-token mode has no such cache; in
cluster mode every cached Secret's ``data`` is counted against ``--cluster-cache-max-bytes``,
and a Secret that does not fit is dropped from the cache and remembered by name (bounded), so a
Mount of it gets UNAVAILABLE naming the limit instead of NOT_FOUND, and the provider stays
within its memory limit and keeps serving what it holds. Pure bookkeeping; thread-safe.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping

SecretKey = tuple[str, str]

#: Default cap: leaves the DaemonSet's 256Mi limit room for the process itself (about 90 MiB)
#: and the cached objects' overhead beyond their base64 data.
DEFAULT_MAX_BYTES = 64 * 1024 * 1024


def data_bytes(data: Mapping[str, str] | None) -> int:
    """Size of a Secret's ``data`` as held (base64 strings, keys included)."""
    return sum(len(k) + len(v or "") for k, v in (data or {}).items())


class CacheBudget:
    """Bytes held per Secret, their total, and the Secrets that did not fit."""

    def __init__(self, max_bytes: int, *, max_remembered: int = 10_000) -> None:
        self.max_bytes = max_bytes
        self._sizes: dict[SecretKey, int] = {}
        self._skipped: OrderedDict[SecretKey, None] = OrderedDict()
        self._max_remembered = max_remembered
        self._used = 0
        self._lock = threading.Lock()

    @property
    def used(self) -> int:
        with self._lock:
            return self._used

    def reset(self) -> None:
        """Forget everything (a full re-list is about to replace the cache)."""
        with self._lock:
            self._sizes.clear()
            self._skipped.clear()
            self._used = 0

    def admit(self, key: SecretKey, size: int) -> bool:
        """Account ``size`` bytes for ``key`` (replacing what it held); False when over the cap."""
        with self._lock:
            self._used -= self._sizes.pop(key, 0)
            if self._used + size > self.max_bytes:
                self._skipped[key] = None
                self._skipped.move_to_end(key)
                while len(self._skipped) > self._max_remembered:
                    self._skipped.popitem(last=False)
                return False
            self._skipped.pop(key, None)
            self._sizes[key] = size
            self._used += size
            return True

    def release(self, key: SecretKey) -> None:
        with self._lock:
            self._used -= self._sizes.pop(key, 0)
            self._skipped.pop(key, None)

    def skipped(self, key: SecretKey) -> bool:
        with self._lock:
            return key in self._skipped
