"""`csi-vso provider` as a process: flags, readiness, SIGTERM stops it cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from csi_vso.cli import build_parser
from csi_vso.provider.main import settings_from
from csi_vso.provider.settings import ProviderSettings, parse_host_port
from tests.provider.driver_support import DriverClient


def test_flags_and_defaults() -> None:
    args = build_parser().parse_args(["provider"])
    settings = settings_from(args)
    assert settings.socket_path == Path("/var/run/secrets-store-csi-providers/vso.sock")
    assert settings.state_dir == Path("/var/lib/csi-vso")
    assert (settings.metrics_host, settings.metrics_port) == ("127.0.0.1", 8095)
    args = build_parser().parse_args(
        [
            "provider",
            "--socket-dir",
            "/s",
            "--provider-name",
            "x_1",
            "--state-dir",
            "/st",
            "--metrics-addr",
            ":9",
        ]
    )
    settings = settings_from(args)
    assert (settings.socket_path, settings.state_dir, settings.metrics_host, settings.metrics_port) == (
        Path("/s/x_1.sock"),
        Path("/st"),
        "0.0.0.0",
        9,
    )


@pytest.mark.parametrize(("text", "problem"), [("8095", "is not host:port"), ("h:port", "is not host:port")])
def test_bad_metrics_addr(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_host_port(text)


@pytest.mark.parametrize("name", ["", "a.b", "x" * 31, "vso/../x"])
def test_provider_name_must_be_what_the_driver_dials(name: str) -> None:
    with pytest.raises(ValueError, match="must match"):
        ProviderSettings(provider_name=name)


@pytest.mark.slow
def test_process_serves_then_stops_on_sigterm(kube: Any, tmp_path: Path) -> None:
    socket_dir = tmp_path / "sockets"
    socket_dir.mkdir()
    stale = socket_dir / "vso.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(stale))  # a socket left by a crashed run
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "csi_vso",
            "provider",
            "--kubeconfig",
            kube.kubeconfig,
            "--socket-dir",
            str(socket_dir),
            "--state-dir",
            str(tmp_path / "state"),
            "--metrics-addr",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        driver = DriverClient(str(stale))
        while True:
            try:
                assert driver.version().runtime_name == "csi-vso"
                break
            except Exception:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
        driver.close()
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "stopping on signal" in err and "provider stopped" in err
    assert not os.path.exists(stale)
