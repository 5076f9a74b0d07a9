"""The API server over HTTPS: the kubeconfig's CA verifies it, anything else does not."""

from __future__ import annotations

import ssl
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config, watch

from csi_vso.devkit.apiserver import APIServer


@pytest.fixture(scope="module")
def tls_server() -> Iterator[APIServer]:
    with APIServer(tls=True) as server:
        yield server


def test_client_verifies_the_server_with_the_kubeconfig_ca(tls_server: APIServer, tmp_path: Path) -> None:
    assert tls_server.url.startswith("https://127.0.0.1:")
    path = tls_server.write_kubeconfig(tmp_path / "kubeconfig")
    with config.new_client_from_config(config_file=str(path)) as api:
        core = client.CoreV1Api(api)
        assert [n.metadata.name for n in core.list_namespace().items] == ["default", "kube-system"]
        w = watch.Watch()
        seen = []
        for event in w.stream(core.list_namespace, timeout_seconds=5):
            seen.append(event["object"].metadata.name)
            if len(seen) == 2:
                w.stop()
        assert seen == ["default", "kube-system"]
    tls_server.wait_idle()


def test_an_unknown_ca_is_refused(tls_server: APIServer) -> None:
    with pytest.raises(urllib.request.URLError) as err:
        urllib.request.urlopen(f"{tls_server.url}/healthz", context=ssl.create_default_context(), timeout=5)
    assert isinstance(err.value.reason, ssl.SSLCertVerificationError)
    trusted = ssl.create_default_context(cadata=tls_server.tls.ca_pem.decode() if tls_server.tls else "")
    with urllib.request.urlopen(f"{tls_server.url}/healthz", context=trusted, timeout=5) as resp:
        assert resp.read() == b"ok"
