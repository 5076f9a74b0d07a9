"""The devkit API server in a child process, for tests and benches that load it heavily.

A server holding hundreds of MiB of objects should not share a process (and a memory
measurement) with the code under test: this starts ``csi-vso devkit apiserver`` with the current
interpreter, waits for its one ready line and returns the process and its URL.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def spawn_apiserver(kubeconfig: Path, *extra_args: str) -> tuple[subprocess.Popen[str], str]:
    """(process, url) of a new devkit API server writing its admin kubeconfig to ``kubeconfig``.

    The caller terminates the process. Raises RuntimeError (after killing it) when the server
    does not report ready.
    """
    command = [sys.executable, "-m", "csi_vso", "devkit", "apiserver", "--port", "0"]
    proc = subprocess.Popen(
        [*command, "--kubeconfig", str(kubeconfig), *extra_args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("apiserver ready url="):
        proc.kill()
        proc.wait()
        raise RuntimeError(f"the devkit API server did not start: {line.strip()!r}")
    return proc, line.split()[2].removeprefix("url=")
