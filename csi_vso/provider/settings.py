"""Process settings of ``csi-vso provider``: what the flags decide, separate from any request.

Request code never sees this type; :mod:`csi_vso.provider.server` reads it to build the
collaborators. Only :mod:`csi_vso.provider.main` builds it from argv.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from csi_vso.provider import cache_budget
from csi_vso.provider.targets import DEFAULT_KUBELET_DIR as DEFAULT_KUBELET_DIR  # re-exported for main

DEFAULT_SOCKET_DIR = Path("/var/run/secrets-store-csi-providers")
DEFAULT_PROVIDER_NAME = "vso"
DEFAULT_STATE_DIR = Path("/var/lib/csi-vso")
DEFAULT_METRICS_ADDR = "127.0.0.1:8095"
#: Audience of the pod token the CSIDriver's ``tokenRequests`` must ask for so the
#: provider verifies identity with a TokenReview.
DEFAULT_TOKEN_AUDIENCE = "csi-vso"  # noqa: S105 - an audience name
#: Where pod tokens are kept across restarts (pod-token mode): the host's /run, a tmpfs.
DEFAULT_TOKEN_DIR = Path("/run/csi-vso/tokens")
#: ``--secret-access`` values: read each Secret with the mounting pod's own token (default), or
#: cache every protected Secret of the cluster with the provider's own identity (weaker).
POD_TOKEN = "pod-token"  # noqa: S105 - a mode name
CLUSTER = "cluster"
SECRET_ACCESS_MODES = (POD_TOKEN, CLUSTER)
DEFAULT_CLUSTER_CACHE_MAX_BYTES = cache_budget.DEFAULT_MAX_BYTES

# The driver only dials providers whose name matches this (DESIGN.md section 2).
_PROVIDER_NAME = re.compile(r"^[a-zA-Z0-9_-]{0,30}$")


MAX_ROTATION_WORKERS = 32


@dataclass(frozen=True)
class ProviderSettings:
    socket_dir: Path = DEFAULT_SOCKET_DIR
    provider_name: str = DEFAULT_PROVIDER_NAME
    state_dir: Path = DEFAULT_STATE_DIR
    # Mounts write only into <kubelet_dir>/pods/<verified pod uid>/volumes/kubernetes.io~csi/<vol>/mount.
    kubelet_dir: Path = DEFAULT_KUBELET_DIR
    kubeconfig: str | None = None
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 8095
    token_audience: str = DEFAULT_TOKEN_AUDIENCE
    # How Secrets are read (see SECRET_ACCESS_MODES and csi_vso.provider.secret_watches).
    secret_access: str = POD_TOKEN
    # Accept Mounts without any pod token, on the attribute keys alone (cluster mode only):
    # --insecure-allow-unverified-pods. Off: a pod token is required (issue 10, finding 5).
    allow_unverified_pods: bool = False
    token_dir: Path = DEFAULT_TOKEN_DIR
    # Cluster mode: Secret data the cluster-wide cache may hold (csi_vso.provider.cache_budget);
    # 0: no cap and one unpaged list, as before the cap (forged Secrets can then exhaust memory).
    cluster_cache_max_bytes: int = DEFAULT_CLUSTER_CACHE_MAX_BYTES
    # Provider-mode writes only into a target that is a mount point (the driver's tmpfs), never
    # into a plain directory on the node's disk (a teardown racing a rotation). Off by default
    # so plain temp directories work in tests and the demo; the DaemonSet turns it on.
    require_mounted_target: bool = False
    # Threads rewriting small volumes on rotation (csi_vso.provider.rotation.Rotator: one is
    # fastest under the GIL); bulk volumes always have one thread of their own besides.
    rotation_workers: int = 1
    # Time in-flight Mounts get to finish after SIGTERM.
    grace_seconds: float = 20.0
    max_workers: int = 16

    def __post_init__(self) -> None:
        if self.secret_access not in SECRET_ACCESS_MODES:
            raise ValueError(
                f"secret access {self.secret_access!r} must be one of {', '.join(SECRET_ACCESS_MODES)}"
            )
        if self.allow_unverified_pods and self.secret_access == POD_TOKEN:
            raise ValueError(
                "--insecure-allow-unverified-pods only applies to --secret-access=cluster: "
                "pod-token mode reads every Secret with the pod's own token"
            )
        if not 1 <= self.rotation_workers <= MAX_ROTATION_WORKERS:
            raise ValueError(f"--rotation-workers must be between 1 and {MAX_ROTATION_WORKERS}")
        if self.cluster_cache_max_bytes < 0:
            raise ValueError("--cluster-cache-max-bytes must not be negative (0: no cap)")
        # Absolute: target paths are compared with it as strings.
        object.__setattr__(self, "kubelet_dir", self.kubelet_dir.absolute())
        if not self.token_audience:
            raise ValueError("the token audience must not be empty")
        if not self.provider_name or not _PROVIDER_NAME.match(self.provider_name):
            raise ValueError(
                f"provider name {self.provider_name!r} must match {_PROVIDER_NAME.pattern} and not be empty"
            )

    @property
    def socket_path(self) -> Path:
        # Absolute: gRPC reads "unix://run/vso.sock" as authority "run" plus path "/vso.sock".
        return (self.socket_dir / f"{self.provider_name}.sock").absolute()


def parse_host_port(text: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` too) -> (host, port); raises ValueError when malformed."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r} is not host:port")
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104 - ":8095" means every interface
