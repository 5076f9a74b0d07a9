"""Point an OpenBao server's ``kubernetes`` auth method at a Kubernetes API server.

The demo, the tests and the benchmarks all log in to a real OpenBao with service-account
tokens minted by an API server (the devkit one, or a real cluster given a kubeconfig). They
configure the auth mount the same way, so it lives here once.

Facts this relies on (checked against OpenBao 2.7): OpenBao reviews a login JWT by calling the
API server's TokenReview. Without ``token_reviewer_jwt`` it would send that same JWT as its
bearer token, which a real API server refuses (401) unless the JWT carries the server's own
audience — and login tokens carry Vault's ("vault"): the known VSO/cert-manager failure. So a
reviewer is set up the way a real deployment does it: a ServiceAccount
(``kube-system/csi-vso-token-reviewer``) bound to ``system:auth-delegator``, whose TokenRequest
token (API audience) OpenBao calls TokenReview with. That works with any kubeconfig
(certificate users included) and never hands the kubeconfig's own credential to OpenBao.
``disable_local_ca_jwt`` is set because OpenBao does not run in a pod; and with that flag
OpenBao insists on ``kubernetes_ca_cert`` even for a plain-HTTP API server, where any PEM will
do — hence the placeholder certificate.
"""

from __future__ import annotations

import base64
import datetime
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kubernetes import client, config

__all__ = [
    "api_server_ca_pem",
    "api_server_url",
    "configure_kubernetes_auth",
    "mint_reviewer_token",
    "placeholder_ca_pem",
]


def placeholder_ca_pem() -> str:
    """A throwaway self-signed CA certificate, for an API server that serves plain HTTP."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "csi-vso placeholder CA (unused)")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _current_cluster(kubeconfig: str | Path) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(Path(kubeconfig).read_text()) or {}
    contexts = {c["name"]: c.get("context") or {} for c in config.get("contexts") or []}
    clusters = {c["name"]: c.get("cluster") or {} for c in config.get("clusters") or []}
    wanted = contexts.get(config.get("current-context") or "", {}).get("cluster")
    if wanted in clusters:
        return clusters[wanted]
    if clusters:
        return next(iter(clusters.values()))
    raise ValueError(f"kubeconfig {kubeconfig} names no cluster")


def api_server_url(kubeconfig: str | Path) -> str:
    """The ``server`` URL of the kubeconfig's current cluster."""
    return str(_current_cluster(kubeconfig)["server"])


def api_server_ca_pem(kubeconfig: str | Path) -> str | None:
    """The CA the kubeconfig's current cluster is served with, or None for plain HTTP."""
    cluster = _current_cluster(kubeconfig)
    if cluster.get("certificate-authority-data"):
        return base64.b64decode(cluster["certificate-authority-data"]).decode()
    if cluster.get("certificate-authority"):
        return Path(cluster["certificate-authority"]).read_text()
    return None


REVIEWER_NAMESPACE = "kube-system"
REVIEWER_NAME = "csi-vso-token-reviewer"
REVIEWER_TOKEN_SECONDS = 30 * 24 * 3600  # outlives any test run, benchmark or demo session


def _create_unless_exists(create: Callable[[], object]) -> None:
    try:
        create()
    except client.ApiException as exc:
        if exc.status != 409:
            raise


def cluster_role_binding(name: str, cluster_role: str, subjects: list[dict[str, str]]) -> dict[str, Any]:
    """A ClusterRoleBinding manifest granting ``cluster_role`` to ``subjects``."""
    return {
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_role},
        "subjects": subjects,
    }


def mint_reviewer_token(api: client.ApiClient) -> str:
    """A token allowed to call TokenReview: ServiceAccount + ``system:auth-delegator`` binding.

    Idempotent: the account and the binding are created when missing; each call mints a fresh
    token with the API server's own audience (the TokenRequest default).
    """
    core = client.CoreV1Api(api)
    _create_unless_exists(
        lambda: core.create_namespaced_service_account(
            REVIEWER_NAMESPACE, {"metadata": {"name": REVIEWER_NAME}}
        )
    )
    subject = {"kind": "ServiceAccount", "name": REVIEWER_NAME, "namespace": REVIEWER_NAMESPACE}
    _create_unless_exists(
        lambda: client.RbacAuthorizationV1Api(api).create_cluster_role_binding(
            cluster_role_binding(REVIEWER_NAME, "system:auth-delegator", [subject])
        )
    )
    request = core.create_namespaced_service_account_token(
        REVIEWER_NAME, REVIEWER_NAMESPACE, {"spec": {"expirationSeconds": REVIEWER_TOKEN_SECONDS}}
    )
    token: str = request.status.token
    return token


def configure_kubernetes_auth(root: Any, *, kubeconfig: str | Path, mount: str = "kubernetes") -> None:
    """Enable (when missing) and configure ``auth/<mount>`` to trust the kubeconfig's API server.

    The kubeconfig's user must be allowed to create a ServiceAccount and a ClusterRoleBinding
    (see :func:`mint_reviewer_token`). ``root`` is an hvac client with a token allowed to
    manage auth methods. Roles are the caller's business: each user of this binds its own
    service accounts and policies.
    """
    data: dict[str, Any] = {
        "kubernetes_host": api_server_url(kubeconfig),
        "kubernetes_ca_cert": api_server_ca_pem(kubeconfig) or placeholder_ca_pem(),
        "disable_local_ca_jwt": True,
    }
    with config.new_client_from_config(config_file=str(kubeconfig)) as api:
        data["token_reviewer_jwt"] = mint_reviewer_token(api)
    if f"{mount}/" not in root.sys.list_auth_methods()["data"]:
        root.sys.enable_auth_method("kubernetes", path=mount)
    root.write_data(f"auth/{mount}/config", data=data)
