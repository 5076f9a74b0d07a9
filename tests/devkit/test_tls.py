"""The API server over HTTPS: the kubeconfig's CA verifies it, anything else does not."""

from __future__ import annotations

import ssl
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import hvac
import pytest
from kubernetes import client, config, watch

from csi_vso.devkit.apiserver import APIServer
from csi_vso.devkit.kubeauth import api_server_ca_pem, cluster_role_binding
from csi_vso.devkit.openbao import OpenBaoDevServer


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


def test_openbao_jwt_auth_reads_the_jwks_over_https_once_anonymous_may(
    tls_server: APIServer, openbao: OpenBaoDevServer, unique_path: str, tmp_path: Path
) -> None:
    """What a real cluster needs for OpenBao's jwt auth: the API server's CA, and the issuer
    discovery role bound to system:unauthenticated (OpenBao fetches the JWKS anonymously)."""
    kubeconfig = str(tls_server.write_kubeconfig(tmp_path / "kubeconfig"))
    ca = api_server_ca_pem(kubeconfig)
    assert ca is not None
    root: hvac.Client = openbao.client()
    root.sys.enable_auth_method("jwt", path=unique_path)
    config_path = f"auth/{unique_path}/config"
    jwks = {"jwks_url": f"{tls_server.url}/openid/v1/jwks", "jwks_ca_pem": ca}
    with pytest.raises(hvac.exceptions.InvalidRequest, match="error checking jwks URL"):
        root.write(config_path, **jwks)  # 403: anonymous may not read the JWKS yet
    with config.new_client_from_config(config_file=kubeconfig) as api:
        unauthenticated = {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Group",
            "name": "system:unauthenticated",
        }
        client.RbacAuthorizationV1Api(api).create_cluster_role_binding(
            cluster_role_binding(
                "oidc-anonymous", "system:service-account-issuer-discovery", [unauthenticated]
            )
        )
        core = client.CoreV1Api(api)
        core.create_namespaced_service_account("default", {"metadata": {"name": "ci"}})
        token = core.create_namespaced_service_account_token(
            "ci", "default", {"spec": {"audiences": ["ci"], "expirationSeconds": 600}}
        ).status.token
    with pytest.raises(hvac.exceptions.InvalidRequest, match="error checking jwks URL"):
        root.write(config_path, jwks_url=jwks["jwks_url"])  # without the CA: not trusted
    root.write(config_path, **jwks)
    root.write(
        f"auth/{unique_path}/role/ci",
        role_type="jwt",
        user_claim="sub",
        bound_audiences=["ci"],
        bound_subject="system:serviceaccount:default:ci",
        token_ttl="1m",
    )
    login = root.write(f"auth/{unique_path}/login", role="ci", jwt=token)
    assert login["auth"]["metadata"]["role"] == "ci"
    root.sys.disable_auth_method(unique_path)
