"""Keyed MAC of rendered Secret data: the operator's object version, without keeping plaintext.

Why keyed: ``status.secretMAC`` and the ``csi-vso.io/content-mac`` annotation are readable by
anyone who can read the custom resource or list Secret metadata. A plain hash of a low-entropy
secret (a short password) could be brute-forced offline; an HMAC under a key only the operator
holds cannot.

Why the owner's uid is mixed in: two custom resources syncing the same value must not get the
same MAC, or the MACs would reveal which Secrets hold equal content.

The key lives in a Secret in the operator's namespace (``--hmac-key-secret``, default
``csi-vso-hmac-key``, key ``key``: 32 random bytes). It is created on first start; concurrent
first starts (two replicas) race on *create* and the loser reads the winner's key, so every
replica uses the same key. Losing the key is harmless: every MAC mismatches once and each
destination Secret is rewritten with identical data once.

:func:`compute_mac` is pure; :func:`load_or_create_key` is the only I/O here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac as _hmac
import logging
import secrets
import struct
from collections.abc import Mapping
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)

KEY_FIELD = "key"
KEY_BYTES = 32
DEFAULT_KEY_SECRET = "csi-vso-hmac-key"  # noqa: S105 (a Secret name)


def _frame(value: bytes) -> bytes:
    # Length-prefix every field so ("ab","c") and ("a","bc") cannot collide.
    return struct.pack(">Q", len(value)) + value


def compute_mac(key: bytes, owner_uid: str, data: Mapping[str, bytes], secret_type: str = "Opaque") -> str:  # noqa: S107
    """HMAC-SHA256 over (owner uid, Secret type, sorted key/value pairs), base64 (standard, padded)."""
    mac = _hmac.new(key, digestmod=hashlib.sha256)
    mac.update(_frame(b"csi-vso/v1"))
    mac.update(_frame(owner_uid.encode()))
    mac.update(_frame(secret_type.encode()))
    for name in sorted(data):
        mac.update(_frame(name.encode()))
        mac.update(_frame(data[name]))
    return base64.b64encode(mac.digest()).decode()


def macs_equal(a: str | None, b: str | None) -> bool:
    """Constant-time comparison (the MAC is not secret, but there is no reason to leak timing)."""
    if a is None or b is None:
        return False
    return _hmac.compare_digest(a.encode(), b.encode())


def load_or_create_key(core: client.CoreV1Api, namespace: str, name: str = DEFAULT_KEY_SECRET) -> bytes:
    """Read the MAC key from Secret ``namespace/name``, creating it (random, 32 bytes) when missing."""
    for _ in range(3):
        try:
            secret = core.read_namespaced_secret(name, namespace)
            encoded = (secret.data or {}).get(KEY_FIELD)
            if not encoded:
                raise RuntimeError(f"Secret {namespace}/{name} has no {KEY_FIELD!r} field")
            key = base64.b64decode(encoded)
            if len(key) < 16:
                raise RuntimeError(f"Secret {namespace}/{name}: the HMAC key is shorter than 16 bytes")
            return key
        except ApiException as exc:
            if exc.status != 404:
                raise
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {
                    "app.kubernetes.io/managed-by": "csi-vso",
                    "app.kubernetes.io/component": "hmac-key",
                },
            },
            "type": "Opaque",
            "data": {KEY_FIELD: base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()},
        }
        try:
            core.create_namespaced_secret(namespace, body)
            log.info("created the HMAC key Secret", extra={"secret": f"{namespace}/{name}"})
        except ApiException as exc:
            if exc.status != 409:  # 409: another replica created it first; read theirs
                raise
    raise RuntimeError(f"could not read or create the HMAC key Secret {namespace}/{name}")
