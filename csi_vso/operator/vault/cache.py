"""Logged-in sessions shared across reconciles, keyed by who logs in where.

Key: (VaultAuth uid + generation, VaultConnection uid + generation, ServiceAccount uid, digest of
the settings read from Secrets). Editing either CR bumps its generation, and rotating the CA or
AppRole Secret changes the digest, so the next ``get`` logs in with the new settings; the older
session is dropped then (not revoked: leases it issued must live out their grace).
A deleted and recreated ServiceAccount has a new uid, hence a new login.

A daemon thread (``start()``) calls ``maintain()`` at the earliest renewal time of any session
(two thirds into its token's TTL), and at least every ``interval`` seconds: it renews tokens
before they expire so that dynamic leases issued under them stay alive between reconciles. A
fixed tick alone is not enough: a 10 s token checked every 5 s can be seen at 6.5 s (not due yet)
and next at 11.5 s (expired, its leases revoked by Vault). A new session wakes the thread so its
deadline is counted at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from csi_vso.operator.vault.errors import VaultError
from csi_vso.operator.vault.session import JwtSource, VaultSession
from csi_vso.operator.vault.settings import AuthSettings, ConnectionSettings

__all__ = ["SessionCache", "SessionKey"]

log = logging.getLogger(__name__)

_MIN_WAIT = 0.5  # seconds: the upkeep never runs more often than this


@dataclass(frozen=True)
class SessionKey:
    auth_uid: str
    auth_generation: int
    connection_uid: str
    connection_generation: int
    service_account_uid: str = ""  # empty for appRole (no service account involved)
    # Digest of the values the caller read from Secrets (CA bundle, AppRole secret id): a rotated
    # Secret means a new login although no custom resource changed. Never the values themselves.
    settings_digest: str = ""

    def identity(self) -> tuple[str, str, str]:
        """The key without generations or digest: sessions with the same identity replace each other."""
        return (self.auth_uid, self.connection_uid, self.service_account_uid)


class SessionCache:
    def __init__(
        self,
        *,
        interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        on_relogin: Callable[[], None] | None = None,
    ) -> None:
        self._on_relogin = on_relogin  # a session replaced its token (see VaultSession)
        self._interval = interval
        self._clock = clock
        self._sessions: dict[SessionKey, VaultSession] = {}
        self._key_locks: dict[SessionKey, threading.Lock] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()  # a session was added: recompute the next deadline
        self._thread: threading.Thread | None = None

    def get(
        self,
        key: SessionKey,
        *,
        connection: ConnectionSettings,
        auth: AuthSettings,
        jwt_source: JwtSource | None = None,
    ) -> VaultSession:
        """The session for ``key``, logging in on first use (raises VaultError; nothing is cached then).

        ``jwt_source`` is kept by a new session and called at every later login too; it must return
        a fresh JWT each time (a TokenRequest, or the current value of a Secret).
        """
        with self._lock:
            session = self._sessions.get(key)
            if session is not None:
                return session
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:  # one login per key even when many reconciles ask at once
            with self._lock:
                session = self._sessions.get(key)
            if session is not None:
                return session
            session = VaultSession(
                connection=connection,
                auth=auth,
                jwt_source=jwt_source,
                clock=self._clock,
                on_relogin=self._on_relogin,
            )
            try:
                session.login()
            except BaseException:
                session.close()
                raise
            with self._lock:
                stale = [k for k in self._sessions if k.identity() == key.identity() and k != key]
                for old in stale:  # not closed: a reconcile may still be using it
                    self._sessions.pop(old)
                    self._key_locks.pop(old, None)
                self._sessions[key] = session
            self._wake.set()
            if stale and self._on_relogin is not None:
                self._on_relogin()  # the replaced session's token is no longer renewed
            return session

    def evict(self, predicate: Callable[[SessionKey], bool]) -> int:
        """Drop the sessions whose key matches (e.g. a deleted VaultAuth's uid); returns how many."""
        with self._lock:
            doomed = [k for k in self._sessions if predicate(k)]
            for key in doomed:  # not closed: a reconcile may still be using it
                self._sessions.pop(key)
                self._key_locks.pop(key, None)
        return len(doomed)

    def keys(self) -> list[SessionKey]:
        with self._lock:
            return list(self._sessions)

    def maintain(self) -> None:
        """Renew or replace tokens that are due; failures are logged and retried next time."""
        with self._lock:
            sessions = list(self._sessions.items())
        for key, session in sessions:
            try:
                session.maintain()
            except VaultError as exc:
                log.warning(
                    "Vault token upkeep failed; will retry",
                    extra={"auth_uid": key.auth_uid, "error": str(exc), "temporary": exc.temporary},
                )

    def next_wait(self) -> float:
        """Seconds until the next upkeep: the earliest session deadline, within
        [``_MIN_WAIT``, ``interval``] (the floor keeps a failing renewal from spinning)."""
        with self._lock:
            sessions = list(self._sessions.values())
        deadlines = [due for s in sessions if (due := s.upkeep_due_at()) is not None]
        if not deadlines:
            return self._interval
        return min(self._interval, max(_MIN_WAIT, min(deadlines) - self._clock()))

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="vault-token-upkeep", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the upkeep thread and close every session (tokens are left to expire, not revoked)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=self._interval + 5)
            self._thread = None
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), {}
            self._key_locks.clear()
        for session in sessions:
            session.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.next_wait())
            self._wake.clear()
            if self._stop.is_set():
                return
            self.maintain()  # cheap when nothing is due: no request is made then
