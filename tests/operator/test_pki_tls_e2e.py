"""A certificate rotating under a live TLS server: real OpenBao PKI, operator, provider, tmpfs, TLS.

The chain under test, all real: OpenBao's PKI engine issues a 40 s certificate (root CA made in
the test, role ``max_ttl`` 60 s); the operator renews it 32 s before expiry (every ~7-8 s) into
a ``kubernetes.io/tls`` Secret; the provider process (gRPC over its unix socket) has mounted
``tls.crt``, ``tls.key`` and ``ca.crt`` in provider write mode on a tmpfs; a TLS server process
(:mod:`csi_vso.demo.tlsserver`) serves from that volume and swaps its ``SSLContext`` when
``..data`` changes. A client opens a fresh TLS connection every ~20 ms and verifies the chain
against the root CA; a reader checks every certificate/key pair it can read from the volume.

Across at least three renewals: no failed handshake, no mismatched pair, at least three
distinct serials presented, and the same server process throughout.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from csi_vso.provider.atomic_writer import DATA_LINK
from tests.fixtures.kube import Kube
from tests.operator.conftest import Cluster, OperatorFactory, VaultAuthSetup, wait_for
from tests.operator.pki_support import HOST, PKIEngine, pki, pki_secret, pki_status  # noqa: F401
from tests.provider.driver_support import Cluster as DriverCluster
from tests.provider.driver_support import DriverClient, mount_request
from tests.provider.kubelet_support import KubeletDir, kubelet_fixture  # noqa: F401  (the kubelet fixture)
from tests.provider.provider_process import ROOT, ProviderProcess

pytestmark = [pytest.mark.slow, pytest.mark.root]

RENEWALS = 3
OBJECTS = [{"secretName": "web-tls", "key": k} for k in ("tls.crt", "tls.key", "ca.crt")]


@pytest.fixture
def provider(kube: Kube, tmp_path: Path, kubelet: KubeletDir) -> Iterator[ProviderProcess]:
    sockets = tmp_path / "sockets"
    sockets.mkdir()
    process = ProviderProcess(kube.kubeconfig, sockets, tmp_path / "state", kubelet_dir=kubelet.root)
    yield process
    process.stop()


class TLSServer:
    """``python -m csi_vso.demo.tlsserver`` on the volume; its JSON lines are collected."""

    def __init__(self, volume: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "csi_vso.demo.tlsserver", str(volume), "--poll", "0.02"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        first = json.loads(self.proc.stdout.readline())
        self.port: int = first["port"]
        self.pid: int = first["pid"]
        self.lines: list[dict[str, Any]] = [first]
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(json.loads(line))

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


class Client:
    """A fresh, fully verified TLS connection every ~20 ms; what each one saw."""

    def __init__(self, port: int, ca_pem: str) -> None:
        self.port = port
        self.context = ssl.create_default_context(cadata=ca_pem)  # the root only: chain checked
        self.serials: list[int] = []
        self.pids: set[int] = set()
        self.failures: list[str] = []
        self.inconsistent = 0  # the server said one serial and presented another
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                with (
                    socket.create_connection(("127.0.0.1", self.port), timeout=5) as raw,
                    self.context.wrap_socket(raw, server_hostname=HOST) as tls,
                ):
                    presented = int(str(tls.getpeercert()["serialNumber"]), 16)
                    line = tls.recv(200).decode()
                fields = dict(part.split("=", 1) for part in line.split())
                self.pids.add(int(fields["pid"]))
                self.inconsistent += int(fields["serial"], 16) != presented
                self.serials.append(presented)
            except (OSError, ssl.SSLError, ValueError, KeyError) as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")
            time.sleep(0.02)


class VolumeReader:
    """Reads the certificate/key pair from the volume as an app would; counts pairs that mismatch.

    A read is judged only when ``..data`` named the same version before and after it (a swap in
    between means the app reads again, as kubelet's layout intends).
    """

    def __init__(self, volume: Path) -> None:
        self.volume = volume
        self.judged = 0
        self.mismatches = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                before = os.readlink(self.volume / DATA_LINK)
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                try:
                    context.load_cert_chain(self.volume / "tls.crt", self.volume / "tls.key")
                    matched = True
                except ssl.SSLError:
                    matched = False
                if os.readlink(self.volume / DATA_LINK) == before:
                    self.judged += 1
                    self.mismatches += not matched
            except FileNotFoundError:
                pass  # a swap removed what we were reading: read again
            time.sleep(0.005)


def test_certificate_rotates_under_a_live_tls_server_without_a_failed_handshake(
    kube: Kube,
    cluster: Cluster,
    k8s_vault: VaultAuthSetup,
    pki: PKIEngine,  # noqa: F811
    operator: OperatorFactory,
    provider: ProviderProcess,
    kubelet: KubeletDir,
) -> None:
    ns = k8s_vault.namespace
    tls = {"name": "web-tls", "create": True, "type": "kubernetes.io/tls"}
    cluster.apply(pki_secret(ns, "web", engine=pki, destination="web-tls", ttl="40s", expiryOffset="32s"))
    cluster.patch_spec("VaultPKISecret", ns, "web", {"destination": tls})
    operator()
    wait_for(lambda: pki_status(cluster, ns, "web").get("serialNumber"), timeout=30, what="first certificate")

    pod = DriverCluster(cluster.api_client).pod(ns)
    provider.start().wait_serving()
    volume = kubelet.target(pod.uid, "tls")
    driver = DriverClient(provider.socket_path)
    try:
        response = driver.mount(mount_request(pod, OBJECTS, str(volume), write_mode="provider"))
    finally:
        driver.close()
    assert not response.error.code and len(response.files) == 0  # the provider wrote the files

    server = TLSServer(volume)
    client = Client(server.port, pki.ca_pem)
    reader = VolumeReader(volume)
    threads = [threading.Thread(target=t.run, daemon=True) for t in (client, reader)]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: len(set(client.serials)) >= RENEWALS + 1, timeout=120, what="three renewals served")
    finally:
        client.stop.set()
        reader.stop.set()
        for thread in threads:
            thread.join(10)
        server.stop()

    distinct = len(set(client.serials))
    print(
        f"TLS rotation: {len(client.serials)} handshakes, {distinct} serials, "
        f"{reader.judged} pairs read from the volume, {len(server.lines) - 1} reloads"
    )
    assert client.failures == []  # 0 failed handshakes
    assert reader.mismatches == 0 and reader.judged > 100  # 0 mismatched pairs from the volume
    assert distinct >= RENEWALS + 1  # the first certificate and at least three renewals
    assert client.pids == {server.pid}  # one server process throughout, never restarted
    assert client.inconsistent == 0
    assert server.proc.returncode == 0
    assert all(line.get("failed", 0) == 0 for line in server.lines)  # every reload loaded a pair
    assert len(client.serials) > 10 * distinct  # the client kept connecting across the swaps
