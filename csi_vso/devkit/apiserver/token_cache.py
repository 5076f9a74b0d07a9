"""The API server's token authentication cache, as seen through TokenReview.

A real kube-apiserver caches successful token authentications for 10 seconds (its
``TokenSuccessCacheTTL``; failures are not cached), keyed by the token and the audiences
asked for. So a token reviewed successfully keeps being accepted until that entry expires
even if its service account, bound pod or bound Secret was deleted meanwhile — while a
token not reviewed in that window is refused at once. Code that revokes access by deleting
a pod or a service account must allow for that window, and so must tests; modelling it
here keeps both honest. A cache hit does not extend the entry.

Only hashes of tokens are kept as keys, and only the review status (no token) as values.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from typing import Any

Obj = dict[str, Any]

DEFAULT_TTL = 10.0  # seconds; the real server's default
_MAX_ENTRIES = 10_000


class TokenCache:
    def __init__(self, ttl: float = DEFAULT_TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[bytes, tuple[float, Obj]] = {}

    @staticmethod
    def _key(token: str, audiences: list[str]) -> bytes:
        digest = hashlib.sha256(token.encode())
        for audience in sorted(audiences):
            digest.update(b"\0" + audience.encode())
        return digest.digest()

    def remember(self, token: str, audiences: list[str], status: Obj) -> Obj:
        """The status to answer: a fresh cached one for (token, audiences), else ``status``
        (which is cached when it authenticated)."""
        if self.ttl <= 0:
            return status
        key = self._key(token, audiences)
        now = self._clock()
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None and hit[0] > now:
                return hit[1]
            if status.get("authenticated"):
                if len(self._entries) >= _MAX_ENTRIES:
                    self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
                    if len(self._entries) >= _MAX_ENTRIES:
                        self._entries.clear()
                self._entries[key] = (now + self.ttl, status)
        return status
