"""The lifecycle every real server the devkit starts shares (OpenBao, PostgreSQL).

Each server runs as a child process in a session of its own (a Ctrl-C in the terminal is ours
to handle, not the child's), writes its output to a log file in a temporary directory of its
own (OpenBao prints its root token: nothing may reach the test output), is waited on until it
answers, is stopped by :meth:`LocalServer.stop` or at interpreter exit, and keeps its port so
``stop()`` then ``start()`` brings it back at the same address ("the server is down, then
back" tests). Subclasses say how to start it (:meth:`start` builds the command and calls
:meth:`_spawn`) and how to tell it is ready (:meth:`_ready`).

A parent that is SIGKILLed (or crashes hard) runs neither ``stop()`` nor atexit, and a child in
a session of its own would then run forever: on Linux every child also asks the kernel to
signal it when its parent dies (:func:`die_with_parent`, also used by ``csi-vso demo``).
"""

from __future__ import annotations

import atexit
import ctypes
import functools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


@functools.cache
def _prctl() -> Any | None:
    """libc's ``prctl``, resolved in the parent (never looked up between fork and exec)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl


def die_with_parent(signum: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the kernel send ``signum`` to the child when this process dies.

    Why: children run in sessions of their own, so nothing else stops them when the parent is
    SIGKILLed or crashes without running its clean-up. Python 3.11's ``subprocess`` has no
    option for ``PR_SET_PDEATHSIG``, hence a ``preexec_fn``, kept to one ``prctl`` call and one
    ``getppid`` check (it runs between fork and exec). It runs after ``Popen``'s ``user=``
    switch, which matters: a credential change clears the setting. The ``getppid`` check closes
    the race where the parent died before ``prctl`` ran: the child then exits instead of exec-ing.

    Caveat: the kernel fires the signal when the *thread* that spawned the child exits, not the
    process; spawn only from long-lived threads (the demo and the test fixtures spawn from the
    main thread). Only the child itself is signalled, not processes it started. Returns ``None``
    (no ``preexec_fn``) off Linux.
    """
    prctl = _prctl()
    if prctl is None:
        return None
    parent = os.getpid()

    def in_child() -> None:
        prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return in_child


class LocalServer:
    """A child server process with a working directory, a log file and a readiness check."""

    #: How the server is named in error messages.
    display_name = "server"
    #: The signal that asks the server to shut down cleanly (SIGKILL follows after a timeout).
    stop_signal = signal.SIGTERM
    #: The exception raised when the server cannot be started.
    error: type[RuntimeError] = RuntimeError

    def __init__(self, *, workdir_prefix: str, log_name: str, start_timeout: float) -> None:
        self._workdir = Path(tempfile.mkdtemp(prefix=workdir_prefix))
        self.log_path = self._workdir / log_name
        self._start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    def _spawn(self, args: list[str], *, env: dict[str, str], user: str | None = None) -> None:
        """Start ``args`` logging into :attr:`log_path`, then wait until :meth:`_ready`."""
        self._log = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            user=user,
            cwd=self._workdir,
            start_new_session=True,
            preexec_fn=die_with_parent(self.stop_signal),
        )
        atexit.register(self.stop)  # an interrupted run must not leave the server behind
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self._start_timeout
        while time.monotonic() < deadline:
            proc = self._proc
            if proc is None or proc.poll() is not None:
                code = None if proc is None else proc.returncode
                raise self.error(
                    f"{self.display_name} exited with status {code} while starting; see {self.log_path}"
                )
            if self._ready():
                return
            time.sleep(0.05)
        raise self.error(
            f"{self.display_name} did not become ready within {self._start_timeout}s; see {self.log_path}"
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the server to stop, SIGKILL it after ``timeout``; the port stays ours for ``start()``."""
        proc, self._proc = self._proc, None
        atexit.unregister(self.stop)
        if proc is not None and proc.poll() is None:
            proc.send_signal(self.stop_signal)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def close(self) -> None:
        """Stop the server and remove its directory (data and logs)."""
        self.stop()
        shutil.rmtree(self._workdir, ignore_errors=True)

    def log_text(self) -> str:
        """The server's log so far, for failure messages (OpenBao's holds its root token)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()  # __exit__ will not run: remove the working directory here
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
