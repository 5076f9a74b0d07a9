"""The demo's certificate scene as data (``csi-vso demo --pki``): names, manifests, report lines. Pure.

A VaultPKISecret asks OpenBao's PKI engine (a root CA the demo generates) for a 30 s
certificate renewed 20 s before expiry, so a renewal comes every ~8-10 s; the shapes follow
``deploy/examples/07-pki-secret.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from csi_vso.demo.scenario import APP_NAMESPACE, APP_SERVICE_ACCOUNT, GROUP, VERSION

PKI_MOUNT = "pki"
PKI_ROLE = "demo-web"
PKI_DOMAIN = "demo.svc.cluster.local"
COMMON_NAME = f"web.{PKI_DOMAIN}"
TLS_SECRET = "demo-tls"  # noqa: S105 (a name)
TLS_VOLUME = "tls"
CERT_TTL = "30s"
EXPIRY_OFFSET = "20s"
ROLE_MAX_TTL = "60s"


def pki_manifest() -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "VaultPKISecret",
        "metadata": {"name": TLS_SECRET, "namespace": APP_NAMESPACE},
        "spec": {
            "vaultAuthRef": "default",
            "mount": PKI_MOUNT,
            "role": PKI_ROLE,
            "commonName": COMMON_NAME,
            "ttl": CERT_TTL,
            "expiryOffset": EXPIRY_OFFSET,
            "revoke": True,
            "destination": {"name": TLS_SECRET, "create": True, "type": "kubernetes.io/tls"},
            "allowedServiceAccounts": [APP_SERVICE_ACCOUNT],
        },
    }


def pki_spc_parameters() -> dict[str, str]:
    """The SecretProviderClass of the TLS volume: tls.crt, tls.key and ca.crt, provider write mode."""
    objects = [{"secretName": TLS_SECRET, "key": key} for key in ("tls.crt", "tls.key", "ca.crt")]
    return {"writeMode": "provider", "objects": yaml.safe_dump(objects, sort_keys=False)}


def pki_policy() -> str:
    """What the operator's role needs for the scene: issue with the role, revoke on delete."""
    return (
        f'path "{PKI_MOUNT}/issue/{PKI_ROLE}" {{\n  capabilities = ["update"]\n}}\n'
        f'path "{PKI_MOUNT}/revoke" {{\n  capabilities = ["update"]\n}}\n'
    )


@dataclass(frozen=True)
class CertificateRotation:
    number: int
    pid_before: int
    pid_after: int
    serial_before: str
    serial_after: str
    handshakes: int
    failed: int
    waited: float


def format_certificate_rotation(r: CertificateRotation) -> list[str]:
    same = "the same process" if r.pid_before == r.pid_after else f"A NEW PROCESS (was {r.pid_before})"
    return [
        f"certificate rotation {r.number}: the operator renewed {APP_NAMESPACE}/{TLS_SECRET} "
        f"({r.waited:.1f} s after the previous serial was first seen)",
        f"  TLS server pid {r.pid_after} ({same}) presents serial {r.serial_before} -> {r.serial_after}",
        f"  {r.handshakes} verified TLS handshakes while waiting, {r.failed} failed",
    ]
