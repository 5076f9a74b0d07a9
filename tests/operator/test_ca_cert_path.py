"""VaultConnection.caCertPath: a CA bundle file on the operator's filesystem (VSO's field)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from csi_vso.devkit.openbao import OpenBaoDevServer
from csi_vso.operator import api
from csi_vso.operator.refs import RefError
from csi_vso.operator.sessions import read_ca_file
from tests.operator.conftest import Cluster, OperatorFactory, configure_k8s_auth, static_secret, wait_for
from tests.operator.test_transformations import not_ready


def test_parse_rules() -> None:
    spec = api.parse_connection({"spec": {"address": "https://v:8200", "caCertPath": "/etc/vault/ca.pem"}})
    assert spec.ca_cert_path == "/etc/vault/ca.pem"
    with pytest.raises(api.SpecError) as caught:
        api.parse_connection(
            {"spec": {"address": "https://v", "caCertPath": "ca.pem", "caCertSecretRef": "s"}}
        )
    assert caught.value.problems == (
        "caCertPath and caCertSecretRef are mutually exclusive; set one",
        "caCertPath 'ca.pem' must be an absolute path",
    )


def test_a_file_that_is_not_a_certificate_is_named_never_shown(tmp_path: Path) -> None:
    secret_file = tmp_path / "token"
    secret_file.write_text("eyJhbGciOi-a-service-account-token")
    for path in (str(secret_file), str(tmp_path / "missing.pem")):
        with pytest.raises(RefError) as caught:
            read_ca_file(path, "ns/default")
        assert caught.value.reason == "CACertPathUnreadable" and path in str(caught.value)
        assert "eyJhbGciOi" not in str(caught.value)


def test_tls_connection_trusts_the_ca_file(
    kube: Any, cluster: Cluster, namespace: str, operator: OperatorFactory, tmp_path: Path
) -> None:
    with OpenBaoDevServer(tls=True) as bao:
        root = bao.client()
        configure_k8s_auth(root, kube, mount="kubernetes", role="app", sa="app", namespaces=[namespace])
        root.sys.enable_secrets_engine("kv", path="kv", options={"version": "2"})
        root.secrets.kv.v2.create_or_update_secret(mount_point="kv", path="tls", secret={"v": "over-tls"})
        cluster.service_account(namespace, "app")
        ca_file = tmp_path / "ca.pem"
        ca_file.write_text(bao.ca_cert_pem)
        for kind, spec in (
            ("VaultConnection", {"address": bao.address, "caCertPath": str(tmp_path / "nothing-here.pem")}),
            ("VaultAuth", {"method": "kubernetes", "kubernetes": {"role": "app", "serviceAccount": "app"}}),
        ):
            cluster.apply(
                {
                    "apiVersion": api.API_VERSION,
                    "kind": kind,
                    "metadata": {"name": "default", "namespace": namespace},
                    "spec": spec,
                }
            )
        operator()
        cluster.apply(static_secret(namespace, "t", mount="kv", path="tls", destination="t", type="kv-v2"))
        failed = not_ready(cluster, "t", namespace)
        assert failed["reason"] == "CACertPathUnreadable"
        cluster.patch_spec("VaultConnection", namespace, "default", {"caCertPath": str(ca_file)})
        assert wait_for(lambda: cluster.secret_data(namespace, "t"), timeout=15) == {"v": "over-tls"}
