"""Pod tokens kept across a provider restart, so rotation resumes before the next republish.

In pod-token mode the provider can read a Secret only with the token of a pod that mounts it.
Kubelet hands those tokens over at Mount time only; a provider that restarts (upgrade, OOM
kill) would otherwise wait for every volume's next republish (60-90 s, or never without
``requiresRepublish``) before it could watch anything again. So each pod's newest token is
kept in ``--token-dir``: one file per pod (named by a hash of its UID), mode 0600 in a 0700
directory, written to a temp file and renamed. The DaemonSet puts that directory on the
host's ``/run`` (a tmpfs on every systemd host), the same place kubelet keeps the pods'
projected tokens: never on the node's disk, gone at reboot, when those pods are gone too.

A file holds the pod's identity (as verified at Mount), the token, its expiry and the
Secrets it was used for. Expired and unreadable files are removed at load.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from csi_vso.provider.authz import VerifiedPod

log = logging.getLogger(__name__)

SecretKey = tuple[str, str]
_SUFFIX = ".json"


@dataclass(frozen=True)
class Credential:
    """A pod's token for the API server's audiences, and until when it is good."""

    pod: VerifiedPod
    token: str = field(repr=False)
    expires_at: float  # unix seconds


def _file_name(pod_uid: str) -> str:
    return hashlib.sha256(pod_uid.encode()).hexdigest()[:40] + _SUFFIX


class TokenStore:
    """Credentials by pod UID under one directory (see the module docstring)."""

    def __init__(self, directory: Path) -> None:
        self._dir = directory
        self._lock = threading.Lock()

    def save(self, credential: Credential, secrets: Iterable[SecretKey]) -> None:
        pod = credential.pod
        data = {
            "pod": {
                "namespace": pod.namespace,
                "name": pod.name,
                "uid": pod.uid,
                "serviceAccount": pod.service_account,
            },
            "token": credential.token,
            "expiresAt": credential.expires_at,
            "secrets": sorted([ns, name] for ns, name in secrets),
        }
        payload = json.dumps(data, separators=(",", ":")).encode()
        name = _file_name(pod.uid)
        with self._lock:
            self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp = self._dir / f"{name}.{threading.get_ident()}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                view = memoryview(payload)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            os.rename(tmp, self._dir / name)

    def remove(self, pod_uid: str) -> None:
        with self._lock, contextlib.suppress(FileNotFoundError):
            (self._dir / _file_name(pod_uid)).unlink()

    def load(self, now: float) -> list[tuple[Credential, list[SecretKey]]]:
        """Every stored credential still valid at ``now``; expired or unreadable files are removed."""
        out: list[tuple[Credential, list[SecretKey]]] = []
        if not self._dir.is_dir():
            return out
        for entry in sorted(os.listdir(self._dir)):
            path = self._dir / entry
            if not entry.endswith(_SUFFIX):
                path.unlink(missing_ok=True)  # a write that crashed before its rename
                continue
            try:
                data = json.loads(path.read_bytes())
                pod = data["pod"]
                credential = Credential(
                    pod=VerifiedPod(
                        namespace=str(pod["namespace"]),
                        name=str(pod["name"]),
                        uid=str(pod["uid"]),
                        service_account=str(pod["serviceAccount"]),
                    ),
                    token=str(data["token"]),
                    expires_at=float(data["expiresAt"]),
                )
                secrets = [(str(ns), str(name)) for ns, name in data["secrets"]]
                if _file_name(credential.pod.uid) != entry:
                    raise ValueError("file name does not match the pod")
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning(
                    "removing unreadable pod token file", extra={"file": entry, "error": type(exc).__name__}
                )
                path.unlink(missing_ok=True)
                continue
            if credential.expires_at <= now:
                path.unlink(missing_ok=True)
                continue
            out.append((credential, secrets))
        return out
