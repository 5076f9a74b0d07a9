"""A real OpenBao PKI engine for the VaultPKISecret tests: a root CA made in the test, a short-lived role."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from csi_vso.devkit.openbao import OpenBaoDevServer
from csi_vso.operator import api
from tests.operator.conftest import Cluster

DOMAIN = "example.com"
HOST = f"web.{DOMAIN}"


@dataclass(frozen=True)
class PKIEngine:
    mount: str
    role: str
    ca_pem: str  # the root CA, as the test generated it (what clients trust)


def enable_pki(openbao: OpenBaoDevServer, *, max_ttl: str = "60s") -> PKIEngine:
    root = openbao.client()
    mount = "pki-" + secrets.token_hex(3)
    root.sys.enable_secrets_engine("pki", path=mount, config={"max_lease_ttl": "87600h"})
    answer = root.write(
        f"{mount}/root/generate/internal", common_name="csi-vso test root", ttl="87600h", key_type="ec"
    )
    root.write(
        f"{mount}/roles/web",
        allowed_domains=DOMAIN,
        allow_subdomains=True,
        max_ttl=max_ttl,
        key_type="ec",
    )
    root.adapter.close()
    return PKIEngine(mount=mount, role="web", ca_pem=answer["data"]["certificate"])


@pytest.fixture
def pki(openbao: OpenBaoDevServer) -> Iterator[PKIEngine]:
    engine = enable_pki(openbao)
    yield engine
    root = openbao.client()
    root.sys.disable_secrets_engine(engine.mount)
    root.adapter.close()


def pki_secret(
    namespace: str, name: str, *, engine: PKIEngine, destination: str, **spec: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "mount": engine.mount,
        "role": engine.role,
        "commonName": HOST,
        "destination": {"name": destination, "create": True},
        **spec,
    }
    return {
        "apiVersion": api.API_VERSION,
        "kind": api.PKI_KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": body,
    }


def pki_status(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return dict((cluster.get_cr(api.PKI_KIND, namespace, name) or {}).get("status") or {})


def issued_serials(openbao: OpenBaoDevServer, engine: PKIEngine) -> set[str]:
    """Every certificate the mount has issued (``LIST <mount>/certs``), root included."""
    root = openbao.client()
    try:
        return set(root.list(f"{engine.mount}/certs")["data"]["keys"])
    finally:
        root.adapter.close()
