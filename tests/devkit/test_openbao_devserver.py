"""The OpenBao dev server wrapper: real ``bao``, same address after a restart, TLS mode, quiet output."""

from __future__ import annotations

import hvac
import pytest
import requests

from csi_vso.devkit.openbao import OpenBaoDevServer


def test_shared_server_is_active_and_root_token_works(openbao: OpenBaoDevServer) -> None:
    client = openbao.client()
    assert client.sys.read_health_status(method="GET")["initialized"] is True
    assert client.auth.token.lookup_self()["data"]["policies"] == ["root"]


def test_restart_keeps_address_and_loses_data(capfd: pytest.CaptureFixture[str]) -> None:
    with OpenBaoDevServer() as server:
        address = server.address
        server.client().sys.enable_secrets_engine("kv", path="before-restart")
        server.stop()
        assert not server.running
        with pytest.raises(requests.exceptions.ConnectionError):
            server.client().sys.list_mounted_secrets_engines()
        server.start()
        assert server.address == address
        mounts = server.client().sys.list_mounted_secrets_engines()["data"]
        assert "before-restart/" not in mounts  # dev mode is in-memory
        token = server.root_token
    out, err = capfd.readouterr()
    assert token not in out + err  # bao's banner (with the root token) went to the log file only


def test_tls_mode_serves_with_generated_ca() -> None:
    with OpenBaoDevServer(tls=True) as server:
        assert server.address.startswith("https://127.0.0.1:")
        assert "BEGIN CERTIFICATE" in server.ca_cert_pem
        assert server.client().sys.is_initialized() is True
        untrusted = hvac.Client(url=server.address, token=server.root_token, verify=True, timeout=5)
        with pytest.raises(requests.exceptions.SSLError):
            untrusted.sys.is_initialized()
