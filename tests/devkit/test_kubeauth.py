"""OpenBao's kubernetes auth setup: the API server's address and CA from a kubeconfig, the reviewer."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from kubernetes import client, config

from csi_vso.devkit.kubeauth import (
    REVIEWER_NAME,
    REVIEWER_NAMESPACE,
    api_server_ca_pem,
    api_server_url,
    mint_reviewer_token,
    placeholder_ca_pem,
)
from tests.fixtures.kube import Kube

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


def test_reviewer_token_is_a_service_account_allowed_to_review(kube: Kube) -> None:
    """OpenBao's reviewer: an API-audience token of a ServiceAccount bound to system:auth-delegator."""
    with kube.api_client() as api:
        token = mint_reviewer_token(api)
        assert mint_reviewer_token(api)  # idempotent: account and binding already exist
        binding = client.RbacAuthorizationV1Api(api).read_cluster_role_binding(REVIEWER_NAME)
    assert binding.role_ref.name == "system:auth-delegator"
    assert [(s.kind, s.namespace, s.name) for s in binding.subjects] == [
        ("ServiceAccount", REVIEWER_NAMESPACE, REVIEWER_NAME)
    ]
    cfg = client.Configuration()
    config.load_kube_config(config_file=kube.kubeconfig, client_configuration=cfg)
    cfg.refresh_api_key_hook = None
    cfg.api_key = {"BearerToken": f"Bearer {token}"}
    with client.ApiClient(cfg) as as_reviewer:
        review = client.AuthenticationV1Api(as_reviewer).create_token_review({"spec": {"token": token}})
    assert review.status.authenticated is True
    assert review.status.user.username == f"system:serviceaccount:{REVIEWER_NAMESPACE}:{REVIEWER_NAME}"
