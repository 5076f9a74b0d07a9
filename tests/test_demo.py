"""``csi-vso demo --once`` end to end, as root (real tmpfs) and as a non-root user (plain directory).

Each run starts real OpenBao, the devkit API server, the operator and the provider, mounts a
volume through the provider's socket, rotates the secret once and must exit 0 having printed
the rotation. Afterwards nothing it started may remain: no process, no mount, no directory,
nothing listening on the addresses it printed.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

DEMO_USER = "csi-vso-demo"

pytestmark = pytest.mark.slow


def _ensure_user() -> None:
    if subprocess.run(["id", "-u", DEMO_USER], capture_output=True, check=False).returncode != 0:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", DEMO_USER],
            check=True,
            capture_output=True,
        )


def _as_user(command: list[str]) -> tuple[list[str], str]:
    """``command`` run as the demo user, and how (for the failure message).

    Plain ``runuser`` when the user can execute this interpreter. When the interpreter lives
    under a directory only root may enter (pyenv in /root is common on CI machines), the user
    keeps one capability, CAP_DAC_READ_SEARCH, to reach it: still uid != 0, still no
    CAP_SYS_ADMIN, so the demo takes its non-root path (no tmpfs) all the same.
    """
    probe = subprocess.run(
        ["runuser", "-u", DEMO_USER, "--", sys.executable, "-c", "import csi_vso"],
        capture_output=True,
        check=False,
    )
    if probe.returncode == 0:
        return ["runuser", "-u", DEMO_USER, "--", *command], "runuser"
    setpriv = [
        "setpriv",
        f"--reuid={DEMO_USER}",
        f"--regid={DEMO_USER}",
        "--clear-groups",
        "--inh-caps=+dac_read_search",
        "--ambient-caps=+dac_read_search",
    ]
    return [*setpriv, *command], "setpriv (uid != 0, ambient CAP_DAC_READ_SEARCH only)"


def _listening(url: str) -> bool:
    host, port = re.sub(r"^\w+://", "", url).rstrip("/").rsplit(":", 1)
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, int(port))) == 0


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{entry.name}: {cmdline}")
    return found


@pytest.mark.parametrize("user", ["root", "non-root"])
def test_demo_once_rotates_and_leaves_nothing_behind(user: str, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: the root run mounts tmpfs, the non-root run switches user")
    command = [sys.executable, "-m", "csi_vso", "demo", "--once", "--timeout", "90"]
    how = "root"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_", "KUBECONFIG"))}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if user == "non-root":
        _ensure_user()
        command, how = _as_user(command)
        home = tmp_path / "home"
        home.mkdir()
        shutil.chown(home, DEMO_USER, DEMO_USER)
        tmp_path.chmod(0o755)
        env["HOME"] = str(home)
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=280, cwd="/", env=env, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"demo as {how} exited {result.returncode}:\n{output}"

    first = re.search(r"workdir (\S+), uid (\d+)\)", result.stdout)
    assert first, output
    workdir, uid = first.group(1), int(first.group(2))
    assert (uid == 0) == (user == "root"), output
    # Both mount flavours, as the driver would make them.
    if user == "root":
        assert re.search(r"volume \S+ \(tmpfs", result.stdout), output
    else:
        assert "(a plain directory: not root" in result.stdout, output
    # The mounted file, then one rotation observed in place with its latency.
    assert re.search(r"mounted file \S+/db/password:\n  'v1-[0-9a-f]{8}'", result.stdout), output
    rotation = re.search(
        r"rotation 1: .*\n  db/password: 'v1-[0-9a-f]{8}' -> 'v2-[0-9a-f]{8}'\n"
        r"  changed in place: same volume yes, \.\.data -> (\S+) became \.\.data -> (\S+)\n"
        r"  end-to-end latency (\d+) ms",
        result.stdout,
    )
    assert rotation, output
    assert rotation.group(1) != rotation.group(2)
    assert "shut down: every process stopped, volume unmounted, temporary files removed" in result.stdout

    # Nothing left behind.
    assert not Path(workdir).exists(), f"{workdir} was not removed"
    assert workdir not in Path("/proc/mounts").read_text()
    # The API server, the operator and the provider all name files in the workdir on their
    # command lines; OpenBao and the API server must no longer accept connections.
    assert _processes_mentioning(workdir) == []
    urls = re.findall(r"started (?:OpenBao|the in-memory API server) (https?://[\d.:]+)", result.stdout)
    assert len(urls) == 2, output
    for url in urls:
        assert not _listening(url), f"{url} still accepts connections after the demo exited"
