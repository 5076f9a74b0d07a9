"""The demo's child processes: each in its own session, logging to a file, stopped as a group.

A child's whole process group is signalled on stop, so nothing it spawned outlives the demo;
Ctrl-C in the terminal reaches only the demo (children are in other sessions), which then
stops them in order. A demo that is SIGKILLed stops nothing itself: on Linux each child is
started with ``csi_vso.devkit.process.die_with_parent`` so the kernel SIGTERMs it instead.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from csi_vso.demo.scenario import DemoError

# -- processes ---------------------------------------------------------------------------------


@dataclass
class Child:
    """A process the demo started, in its own session so Ctrl-C reaches only the demo."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    log: IO[bytes] | None = None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def check_alive(self) -> None:
        if not self.alive():
            raise DemoError(
                f"{self.name} exited with status {self.proc.returncode}; last lines of {self.log_path}:\n"
                + tail(self.log_path)
            )

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the whole process group, SIGKILL it after ``grace``; never raises."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        # Anything the child left in its group (it should have waited for its own children).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.log is not None:
            self.log.close()
            self.log = None


def tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join("    " + line for line in text.splitlines()[-lines:])


def csi_vso_command(*args: str) -> list[str]:
    """Run a csi-vso subcommand with this interpreter (works without the console script on PATH)."""
    return [sys.executable, "-m", "csi_vso", *args]


def free_port() -> int:
    from csi_vso.devkit.openbao import free_port as _free_port

    return _free_port()


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (our own 127.0.0.1 URL)
            return int(response.status) == 200
    except (urllib.error.URLError, OSError):
        return False


def read_line(stream: IO[bytes], timeout: float, child: Child) -> str:
    """First line a child prints (its ready line), without blocking past ``timeout``."""
    deadline = time.monotonic() + timeout
    buffered = b""
    fd = stream.fileno()
    while b"\n" not in buffered:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DemoError(f"{child.name} printed no ready line within {timeout:.0f}s")
        ready, _, _ = select.select([fd], [], [], min(remaining, 0.2))
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                child.proc.wait(5)
                child.check_alive()
                raise DemoError(f"{child.name} closed its output before printing a ready line")
            buffered += chunk
        else:
            child.check_alive()
    return buffered.split(b"\n", 1)[0].decode(errors="replace")
