"""`csi-vso provider` as a process: flags, readiness, SIGTERM stops it cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest

from csi_vso.cli import build_parser
from csi_vso.provider.atomic_writer import FileToWrite, WriteResult, write_atomically
from csi_vso.provider.main import settings_from
from csi_vso.provider.server import ProviderServer
from csi_vso.provider.settings import ProviderSettings, parse_host_port
from tests.provider.driver_support import Cluster, DriverClient, mount_request
from tests.provider.kubelet_support import KubeletDir


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


def test_token_and_secret_access_flags() -> None:
    settings = settings_from(build_parser().parse_args(["provider"]))
    assert (settings.token_audience, settings.secret_access, settings.allow_unverified_pods) == (
        "csi-vso",
        "pod-token",
        False,
    )
    assert settings.token_dir == Path("/run/csi-vso/tokens")
    args = build_parser().parse_args(
        [
            "provider",
            "--token-audience",
            "vso-nodes",
            "--secret-access",
            "cluster",
            "--insecure-allow-unverified-pods",
            "--token-dir",
            "/t",
            "--require-pod-token",  # still accepted (older manifests); a token is required anyway
        ]
    )
    settings = settings_from(args)
    assert (
        settings.token_audience,
        settings.secret_access,
        settings.allow_unverified_pods,
        settings.token_dir,
    ) == (
        "vso-nodes",
        "cluster",
        True,
        Path("/t"),
    )
    with pytest.raises(ValueError, match="token audience must not be empty"):
        ProviderSettings(token_audience="")
    with pytest.raises(ValueError, match="only applies to --secret-access=cluster"):
        ProviderSettings(allow_unverified_pods=True)
    with pytest.raises(ValueError, match="must be one of pod-token, cluster"):
        ProviderSettings(secret_access="node")


def test_require_mounted_target_flag_is_off_by_default_and_documented(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert settings_from(build_parser().parse_args(["provider"])).require_mounted_target is False
    assert ProviderSettings().require_mounted_target is False
    args = build_parser().parse_args(["provider", "--require-mounted-target"])
    assert settings_from(args).require_mounted_target is True
    with pytest.raises(SystemExit):
        build_parser().parse_args(["provider", "--help"])
    assert "the DaemonSet turns it on" in " ".join(capsys.readouterr().out.split())


def test_rotation_workers_flag_defaults_to_one_and_is_bounded() -> None:
    assert settings_from(build_parser().parse_args(["provider"])).rotation_workers == 1
    args = build_parser().parse_args(["provider", "--rotation-workers", "4"])
    assert settings_from(args).rotation_workers == 4
    for bad in ("0", "33"):
        args = build_parser().parse_args(["provider", "--rotation-workers", bad])
        with pytest.raises(ValueError, match="--rotation-workers must be between 1 and 32"):
            settings_from(args)


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
            "--token-dir",
            str(tmp_path / "tokens"),
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


@pytest.mark.slow
def test_stop_lets_in_flight_mounts_finish_and_refuses_new_ones(kube: Any, tmp_path: Path) -> None:
    entered = threading.Event()
    release = threading.Event()

    def slow_writer(
        target: Path, files: Sequence[FileToWrite], *, require_mount: bool = False, root: Path = Path("/")
    ) -> WriteResult:
        entered.set()
        release.wait(20)
        return write_atomically(target, files, require_mount=require_mount, root=root)

    settings = ProviderSettings(
        socket_dir=tmp_path / "s",
        state_dir=tmp_path / "state",
        token_dir=tmp_path / "tokens",
        kubelet_dir=tmp_path / "kubelet",
        metrics_port=0,
        grace_seconds=20,
    )
    kubelet = KubeletDir(settings.kubelet_dir)
    server = ProviderServer(settings, kube.api_client(), writer=slow_writer)
    cluster = Cluster(kube.api_client())
    stopper = threading.Thread(target=server.stop)
    try:
        server.start()
        ns = cluster.namespace("grace")
        pod = cluster.pod(ns)
        cluster.secret(ns, "db", {"password": b"in-flight"})
        driver = DriverClient(str(settings.socket_path))
        target = kubelet.target(pod.uid)
        in_flight = driver.stub.Mount.future(
            mount_request(pod, [{"secretName": "db"}], str(target)), timeout=30
        )
        assert entered.wait(10)
        stopper.start()
        # Probe with driver-mode Mounts (they never reach the blocked writer) until one is refused.
        refused: grpc.RpcError | None = None
        deadline = time.monotonic() + 10
        while refused is None and time.monotonic() < deadline:
            try:
                probe = str(kubelet.target(pod.uid, create=False))
                driver.mount(mount_request(pod, [{"secretName": "db"}], probe, write_mode="driver"))
            except grpc.RpcError as exc:
                refused = exc
            time.sleep(0.05)
        # Depending on when the call meets the shutdown, gRPC reports it as one or the other.
        assert refused is not None and refused.code() in (
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.CANCELLED,
        )
        assert not in_flight.done()
        release.set()
        response = in_flight.result(timeout=10)
        assert [v.id for v in response.object_version] == ["password"]
        assert (target / "password").read_bytes() == b"in-flight"
        driver.close()
    finally:
        release.set()
        if stopper.ident is None:
            server.stop(1)
        else:
            stopper.join(30)
        cluster.cleanup()
    assert not settings.socket_path.exists()


def test_relative_socket_dir_binds_where_the_user_meant(
    kube: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--socket-dir ./s`` must not become the gRPC address ``unix://s/vso.sock`` (authority "s")."""
    monkeypatch.chdir(tmp_path)
    settings = settings_from(build_parser().parse_args(["provider", "--socket-dir", "s"]))
    assert settings.socket_path == tmp_path / "s" / "vso.sock"
    settings = ProviderSettings(
        socket_dir=Path("s"), state_dir=Path("state"), token_dir=Path("tokens"), metrics_port=0
    )
    server = ProviderServer(settings, kube.api_client())
    server.start()
    try:
        assert (tmp_path / "s" / "vso.sock").is_socket()
    finally:
        server.stop(1)


def test_extensions_are_in_place_before_the_socket_serves(kube: Any, tmp_path: Path) -> None:
    """A Mount served before the rotation registered its observer would never be rotated."""
    settings = ProviderSettings(
        socket_dir=tmp_path / "s", state_dir=tmp_path / "state", token_dir=tmp_path / "tokens", metrics_port=0
    )
    socket_at_start: list[bool] = []

    class Probe:
        def start(self, server: ProviderServer) -> None:
            socket_at_start.append(server.socket_path.exists())

        def stop(self) -> None:
            pass

    server = ProviderServer(settings, kube.api_client(), extensions=[Probe()])
    server.start()
    try:
        assert socket_at_start == [False]
        assert server.settings.socket_path.is_socket()
        assert server.identity.require_api_token  # pod-token mode reaches the identity check
    finally:
        server.stop(1)


@pytest.mark.parametrize("problem", ["metrics-port-in-use", "state-dir-is-a-file", "no-kubeconfig"])
def test_startup_failures_are_one_log_line_and_exit_1(kube: Any, tmp_path: Path, problem: str) -> None:
    state = tmp_path / "state"
    kubeconfig = kube.kubeconfig
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1] if problem == "metrics-port-in-use" else 0
    if problem == "state-dir-is-a-file":
        state.write_text("not a directory")
    if problem == "no-kubeconfig":
        kubeconfig = str(tmp_path / "missing-kubeconfig")
    expected = {
        "metrics-port-in-use": "Address already in use",
        "state-dir-is-a-file": str(state),
        "no-kubeconfig": "kube-config",
    }[problem]
    try:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "csi_vso",
                "provider",
                "--kubeconfig",
                kubeconfig,
                "--socket-dir",
                str(tmp_path / "s"),
                "--state-dir",
                str(state),
                "--token-dir",
                str(tmp_path / "tokens"),
                "--metrics-addr",
                f"127.0.0.1:{port}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        busy.close()
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "provider could not start" in proc.stderr and expected in proc.stderr, proc.stderr
