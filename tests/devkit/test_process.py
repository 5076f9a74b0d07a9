"""The shared child-server lifecycle: a server that dies or never answers is a clear error, and
a server never outlives a parent that was SIGKILLed."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from csi_vso.devkit.openbao import OpenBaoDevServer, OpenBaoError


def test_a_server_that_exits_while_starting_names_its_status_and_log() -> None:
    server = OpenBaoDevServer(binary="/bin/false")
    with pytest.raises(OpenBaoError, match=r"bao server exited with status 1 while starting; see .*bao\.log"):
        server.start()
    assert not server.running
    server.close()


def test_a_server_that_never_answers_times_out_and_is_stopped(tmp_path: Path) -> None:
    silent = tmp_path / "silent-bao"
    silent.write_text("#!/bin/sh\nexec sleep 60\n")
    silent.chmod(0o755)
    server = OpenBaoDevServer(binary=str(silent), start_timeout=0.5)
    with pytest.raises(OpenBaoError, match=r"bao server did not become ready within 0\.5s"):
        server.start()
    assert not server.running  # the stray child was stopped, not left behind
    server.close()


_ORPHANING_PARENT = """
import os, sys, time
from csi_vso.devkit.process import LocalServer

class Sleeper(LocalServer):
    display_name = "sleeper"

    def start(self):
        self._workdir.chmod(0o755)  # enterable as the unprivileged user too
        self._spawn(["sleep", "120"], env=dict(os.environ), user=sys.argv[1] or None)

    def _ready(self):
        return True

server = Sleeper(workdir_prefix="csi-vso-test-sleeper-", log_name="sleep.log", start_timeout=10)
server.start()
print(server._proc.pid, server._workdir, flush=True)
time.sleep(300)
"""


def _exited(pid: int) -> bool:
    """True when ``pid`` is gone or a zombie (exited; a non-reaping pid 1 may leave it listed)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def wait_until_exited(pids: list[int], timeout: float = 15.0) -> list[int]:
    """The pids of ``pids`` still running after ``timeout`` (polled, so no timing assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not all(_exited(pid) for pid in pids):
        time.sleep(0.1)
    return [pid for pid in pids if not _exited(pid)]


@pytest.mark.parametrize("user", ["", "nobody"], ids=["same-user", "user-switch"])
def test_a_child_server_stops_when_its_parent_is_sigkilled(user: str) -> None:
    """A parent killed without clean-up (no stop(), no atexit) must not leave its server running.

    The user switch matters: a credential change clears the kernel's parent-death setting, so it
    must be made after ``Popen``'s ``user=``.
    """
    if user and os.geteuid() != 0:
        pytest.skip("switching user needs root")
    parent = subprocess.Popen(
        [sys.executable, "-c", _ORPHANING_PARENT, user],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    child_pid = 0
    workdir = ""
    try:
        assert parent.stdout is not None
        child_pid_text, workdir = parent.stdout.readline().split()
        child_pid = int(child_pid_text)
        assert not _exited(child_pid)
        parent.kill()
        parent.wait()
        assert wait_until_exited([child_pid]) == [], f"sleep (pid {child_pid}) outlived its SIGKILLed parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if child_pid and not _exited(child_pid):
            os.kill(child_pid, signal.SIGKILL)
        if workdir:
            shutil.rmtree(workdir, ignore_errors=True)


def test_a_server_that_fails_to_start_in_a_with_block_leaves_no_directory() -> None:
    server = OpenBaoDevServer(binary="/bin/false")
    with pytest.raises(OpenBaoError), server:
        pass
    assert not server.log_path.parent.exists()
