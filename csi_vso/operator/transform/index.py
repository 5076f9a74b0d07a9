"""Which secret custom resources reference which SecretTransformation (thread-safe, in memory).

A SecretTransformation edit must re-render exactly the secrets that use it, without listing every
secret of the cluster: each secret's references are recorded whenever the watch delivers it
(:meth:`ReferenceIndex.set`), and an edit asks :meth:`ReferenceIndex.referrers`. The index is
rebuilt from the watch caches' initial list after a restart, so it needs no storage.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

Referrer = TypeVar("Referrer", bound=Hashable)
Reference = TypeVar("Reference", bound=Hashable)


class ReferenceIndex(Generic[Referrer, Reference]):
    def __init__(self) -> None:
        self._forward: dict[Referrer, frozenset[Reference]] = {}
        self._reverse: dict[Reference, set[Referrer]] = {}
        self._lock = threading.Lock()

    def set(self, referrer: Referrer, references: Iterable[Reference]) -> None:
        """Record ``referrer``'s current references (replacing what it referenced before)."""
        new = frozenset(references)
        with self._lock:
            old = self._forward.get(referrer, frozenset())
            for reference in old - new:
                holders = self._reverse.get(reference)
                if holders is not None:
                    holders.discard(referrer)
                    if not holders:
                        del self._reverse[reference]
            for reference in new - old:
                self._reverse.setdefault(reference, set()).add(referrer)
            if new:
                self._forward[referrer] = new
            else:
                self._forward.pop(referrer, None)

    def remove(self, referrer: Referrer) -> None:
        self.set(referrer, ())

    def referrers(self, reference: Reference) -> builtins.set[Referrer]:
        with self._lock:
            return set(self._reverse.get(reference, ()))
