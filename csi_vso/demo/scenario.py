"""The demo's scenario as data: names, manifests, Mount attributes and the rotation report.

Pure: no I/O. The manifests have the shapes of ``deploy/examples/`` (which a test checks against
the CRD schemas) with this machine's addresses filled in; they are built here rather than read
from ``deploy/`` so the demo works from an installed package, not only from a checkout.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import yaml

# Names used in the demo cluster (the shapes of deploy/examples/, in a namespace of its own).
OPERATOR_NAMESPACE = "vault-secrets-operator"
APP_NAMESPACE = "demo"
LOGIN_SERVICE_ACCOUNT = "vault-login"
APP_SERVICE_ACCOUNT = "app"
VAULT_ROLE = "demo-app"
VAULT_POLICY = "demo-app"
KV_MOUNT = "secret"  # dev mode mounts KV v2 here
KV_PATH = "demo/db"
SECRET_NAME = "demo-db"  # noqa: S105 (a name, not a secret)
SECRET_KEY = "password"  # noqa: S105 (a key name)
FILE_NAME = "db/password"
SPC_NAME = "demo-secrets"
POD_NAME = "demo-app"
VOLUME_NAME = "secrets"
PROVIDER_NAME = "vso"
# The operator re-reads Vault at 80-90 % of this: the largest part of the end-to-end latency.
REFRESH_AFTER = "1s"

GROUP = "secrets.hashicorp.com"
VERSION = "v1beta1"

T = TypeVar("T")


class DemoError(RuntimeError):
    """A step of the demo failed; the message says which and what to look at."""


# -- pure pieces: manifests, attributes, reports -----------------------------------------------


def demo_manifests(vault_address: str) -> list[dict[str, Any]]:
    """The custom resources of deploy/examples/ (connection, auth, static secret) for this demo."""
    meta = {"apiVersion": f"{GROUP}/{VERSION}"}
    return [
        {
            **meta,
            "kind": "VaultConnection",
            "metadata": {"name": "default", "namespace": OPERATOR_NAMESPACE},
            "spec": {"address": vault_address, "skipTLSVerify": False, "timeout": "10s"},
        },
        {
            **meta,
            "kind": "VaultAuth",
            "metadata": {"name": "default", "namespace": APP_NAMESPACE},
            "spec": {
                "vaultConnectionRef": f"{OPERATOR_NAMESPACE}/default",
                "method": "kubernetes",
                "mount": "kubernetes",
                "kubernetes": {
                    "role": VAULT_ROLE,
                    "serviceAccount": LOGIN_SERVICE_ACCOUNT,
                    "tokenExpirationSeconds": 600,
                },
            },
        },
        {
            **meta,
            "kind": "VaultStaticSecret",
            "metadata": {"name": SECRET_NAME, "namespace": APP_NAMESPACE},
            "spec": {
                "vaultAuthRef": "default",
                "mount": KV_MOUNT,
                "path": KV_PATH,
                "type": "kv-v2",
                "refreshAfter": REFRESH_AFTER,
                "destination": {"name": SECRET_NAME, "create": True},
                "allowedServiceAccounts": [APP_SERVICE_ACCOUNT],
            },
        },
    ]


def spc_parameters() -> dict[str, str]:
    """``spec.parameters`` of the demo's SecretProviderClass (``provider: vso``)."""
    objects = [{"secretName": SECRET_NAME, "key": SECRET_KEY, "fileName": FILE_NAME, "mode": "0444"}]
    return {"writeMode": "provider", "objects": yaml.safe_dump(objects, sort_keys=False)}


def mount_attributes(
    pod: dict[str, str], parameters: dict[str, str], tokens: dict[str, dict[str, str]] | None = None
) -> dict[str, str]:
    """What the CSI driver sends: SPC parameters, then kubelet's keys about the pod.

    ``tokens`` (audience -> {token, expirationTimestamp}) is what kubelet adds when the
    CSIDriver has ``tokenRequests``: the pod's own service-account token, which the provider
    verifies with a TokenReview.
    """
    attributes = {
        **parameters,
        "secretProviderClass": SPC_NAME,
        "csi.storage.k8s.io/pod.name": pod["name"],
        "csi.storage.k8s.io/pod.namespace": pod["namespace"],
        "csi.storage.k8s.io/pod.uid": pod["uid"],
        "csi.storage.k8s.io/serviceAccount.name": pod["serviceAccount"],
        "csi.storage.k8s.io/ephemeral": "true",
    }
    if tokens:
        attributes["csi.storage.k8s.io/serviceAccount.tokens"] = json.dumps(tokens)
    return attributes


def pod_manifest() -> dict[str, Any]:
    """The pod of deploy/examples/06-pod.yaml, reduced to what the API server needs."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": POD_NAME, "namespace": APP_NAMESPACE},
        "spec": {
            "serviceAccountName": APP_SERVICE_ACCOUNT,
            "containers": [
                {
                    "name": "app",
                    "image": "busybox:1.36",
                    "command": ["sh", "-c", "sleep infinity"],
                    "volumeMounts": [{"name": VOLUME_NAME, "mountPath": "/mnt/secrets", "readOnly": True}],
                }
            ],
            "volumes": [
                {
                    "name": VOLUME_NAME,
                    "csi": {
                        "driver": "secrets-store.csi.k8s.io",
                        "readOnly": True,
                        "volumeAttributes": {"secretProviderClass": SPC_NAME},
                    },
                }
            ],
        },
    }


def vault_policy() -> str:
    """Read-only access to the demo's KV path (KV v2 keeps data under ``data/``)."""
    return f'path "{KV_MOUNT}/data/{KV_PATH}" {{\n  capabilities = ["read"]\n}}\n'


@dataclass(frozen=True)
class Rotation:
    """One measured rotation. Times are seconds; ``secret_written`` may be unknown."""

    number: int
    old: str
    new: str
    end_to_end: float
    secret_written: float | None
    data_link_before: str
    data_link_after: str
    same_volume: bool


def format_rotation(r: Rotation) -> list[str]:
    lines = [
        f"rotation {r.number}: wrote a new version of {KV_MOUNT}/{KV_PATH} in OpenBao",
        f"  {FILE_NAME}: {r.old!r} -> {r.new!r}",
        f"  changed in place: same volume {'yes' if r.same_volume else 'NO'}, "
        f"..data -> {r.data_link_before} became ..data -> {r.data_link_after}",
    ]
    if r.secret_written is not None:
        lines.append(
            f"  end-to-end latency {r.end_to_end * 1000:.0f} ms "
            f"(OpenBao write -> operator wrote the Secret: {r.secret_written * 1000:.0f} ms; "
            f"Secret -> provider rewrote the file: {(r.end_to_end - r.secret_written) * 1000:.0f} ms)"
        )
    else:
        lines.append(f"  end-to-end latency {r.end_to_end * 1000:.0f} ms (OpenBao write -> file changed)")
    return lines


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, interval: float = 0.05) -> T:
    """Call ``probe`` until it returns something other than None; DemoError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result is not None:
            return result
        if time.monotonic() >= deadline:
            raise DemoError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
