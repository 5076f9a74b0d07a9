"""Reading the API server's address and CA out of a kubeconfig for OpenBao's kubernetes auth."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from csi_vso.devkit.kubeauth import (
    api_server_bearer_token,
    api_server_ca_pem,
    api_server_url,
    placeholder_ca_pem,
)

CA = placeholder_ca_pem()


def _kubeconfig(tmp_path: Path, clusters: list[dict[str, object]], current: str | None) -> Path:
    path = tmp_path / "kubeconfig"
    contexts = [
        {"name": f"ctx-{c['name']}", "context": {"cluster": c["name"], "user": "u"}} for c in clusters
    ]
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": clusters,
                "contexts": contexts,
                "current-context": current,
                "users": [{"name": "u", "user": {"token": "t"}}],
            }
        )
    )
    return path


def test_placeholder_is_a_parseable_ca_certificate() -> None:
    cert = x509.load_pem_x509_certificate(CA.encode())
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


@pytest.mark.parametrize(
    ("cluster", "expected_ca"),
    [
        ({"server": "http://127.0.0.1:1"}, None),
        (
            {
                "server": "https://127.0.0.1:1",
                "certificate-authority-data": base64.b64encode(CA.encode()).decode(),
            },
            CA,
        ),
        ({"server": "https://127.0.0.1:1", "certificate-authority": "FILE"}, CA),
    ],
)
def test_ca_and_url_of_the_current_cluster(
    tmp_path: Path, cluster: dict[str, str], expected_ca: str | None
) -> None:
    if cluster.get("certificate-authority") == "FILE":
        (tmp_path / "ca.crt").write_text(CA)
        cluster = {**cluster, "certificate-authority": str(tmp_path / "ca.crt")}
    other = {"name": "other", "cluster": {"server": "https://other.invalid"}}
    path = _kubeconfig(tmp_path, [other, {"name": "main", "cluster": cluster}], current="ctx-main")
    assert api_server_url(path) == cluster["server"]
    assert api_server_ca_pem(path) == expected_ca


def test_kubeconfig_without_clusters_is_a_clear_error(tmp_path: Path) -> None:
    path = _kubeconfig(tmp_path, [], current=None)
    with pytest.raises(ValueError, match="names no cluster"):
        api_server_url(path)


def test_bearer_token_of_the_current_user(tmp_path: Path) -> None:
    """OpenBao's reviewer token: the kubeconfig user's own token, or None for certificate users."""
    path = _kubeconfig(tmp_path, [{"name": "main", "cluster": {"server": "http://127.0.0.1:1"}}], "ctx-main")
    assert api_server_bearer_token(path) == "t"
    config = yaml.safe_load(path.read_text())
    (tmp_path / "token").write_text("from-file\n")
    config["users"] = [{"name": "u", "user": {"tokenFile": str(tmp_path / "token")}}]
    path.write_text(yaml.safe_dump(config))
    assert api_server_bearer_token(path) == "from-file"
    config["users"] = [{"name": "u", "user": {"username": "cert-user"}}]
    path.write_text(yaml.safe_dump(config))
    assert api_server_bearer_token(path) is None
