"""``csi-vso provider``: flags -> settings -> a running :class:`ProviderServer` until SIGTERM.

Only this module (with :mod:`csi_vso.cli`) sees argv. It turns the flags into
:class:`~csi_vso.provider.settings.ProviderSettings`, builds the API client, runs the
server, and on SIGTERM or SIGINT stops it gracefully: new Mounts are refused, in-flight
ones finish, then the process exits 0.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from kubernetes.config.config_exception import ConfigException

from csi_vso.kube import api_client
from csi_vso.provider.rotation import RotationExtension
from csi_vso.provider.server import ProviderServer
from csi_vso.provider.settings import (
    DEFAULT_CLUSTER_CACHE_MAX_BYTES,
    DEFAULT_KUBELET_DIR,
    DEFAULT_METRICS_ADDR,
    DEFAULT_PROVIDER_NAME,
    DEFAULT_SOCKET_DIR,
    DEFAULT_STATE_DIR,
    DEFAULT_TOKEN_AUDIENCE,
    DEFAULT_TOKEN_DIR,
    POD_TOKEN,
    SECRET_ACCESS_MODES,
    ProviderSettings,
    parse_host_port,
)

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--socket-dir",
        type=Path,
        default=DEFAULT_SOCKET_DIR,
        help=f"directory the Secrets Store CSI driver dials providers in (default: {DEFAULT_SOCKET_DIR})",
    )
    parser.add_argument(
        "--provider-name",
        default=DEFAULT_PROVIDER_NAME,
        help=f"socket name and SecretProviderClass spec.provider (default: {DEFAULT_PROVIDER_NAME})",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=DEFAULT_STATE_DIR,
        help=f"node-local state: version key and mount registry (default: {DEFAULT_STATE_DIR})",
    )
    parser.add_argument(
        "--secret-access",
        choices=SECRET_ACCESS_MODES,
        default=POD_TOKEN,
        help="pod-token (default): read each mounted Secret with the mounting pod's own token "
        '(the CSIDriver needs a tokenRequests entry with audience ""), so this node can read only '
        "what its pods may; cluster: cache every protected Secret of the cluster with the "
        "provider's own identity (weaker: needs cluster-wide list/watch on secrets, checked at start)",
    )
    parser.add_argument(
        "--cluster-cache-max-bytes",
        type=int,
        default=DEFAULT_CLUSTER_CACHE_MAX_BYTES,
        help="cluster mode: Secret data the cluster-wide cache may hold; Secrets beyond it are not "
        "served (UNAVAILABLE naming this limit), so forged labelled Secrets cannot exhaust memory; "
        f"0: no cap, one unpaged list (unsafe) (default: {DEFAULT_CLUSTER_CACHE_MAX_BYTES})",
    )
    parser.add_argument(
        "--token-dir",
        type=Path,
        default=DEFAULT_TOKEN_DIR,
        help="pod-token mode: where pods' tokens are kept (mode 0600) so rotation resumes right "
        f"after a restart; put it on a tmpfs (default: {DEFAULT_TOKEN_DIR})",
    )
    parser.add_argument(
        "--kubelet-dir",
        type=Path,
        default=DEFAULT_KUBELET_DIR,
        help="kubelet's root directory: Mounts are served only for target paths "
        "<kubelet-dir>/pods/<pod uid>/volumes/kubernetes.io~csi/<volume>/mount of the verified pod, "
        f"opened without following symlinks below it (default: {DEFAULT_KUBELET_DIR})",
    )
    parser.add_argument(
        "--token-audience",
        default=DEFAULT_TOKEN_AUDIENCE,
        help="audience of a second pod token the CSIDriver's tokenRequests may pass; verified with "
        f"a TokenReview when present and no API-audience token is (default: {DEFAULT_TOKEN_AUDIENCE})",
    )
    parser.add_argument(
        "--insecure-allow-unverified-pods",
        action="store_true",
        help="cluster mode only: accept Mounts that carry no pod token, trusting the pod attribute "
        "keys checked against the API (any pod could then claim to be another if podInfoOnMount "
        "is off). Without it a pod token is required",
    )
    parser.add_argument(
        "--require-pod-token",
        action="store_true",
        help="accepted for older manifests; a pod token is always required now "
        "(see --insecure-allow-unverified-pods)",
    )
    parser.add_argument(
        "--require-mounted-target",
        action="store_true",
        help="in provider write mode, write only into a target_path that is a mount point (the "
        "driver's tmpfs): Mount refuses a plain directory with FAILED_PRECONDITION and rotation "
        "drops a volume whose tmpfs was unmounted, so secrets never land on the node's disk. "
        "Off by default for plain directories (tests, demo); the DaemonSet turns it on",
    )
    parser.add_argument(
        "--rotation-workers",
        type=int,
        default=1,
        help="threads that rewrite small volumes when their Secret changes (default: 1, the "
        "fastest under Python's GIL; volumes of more than 32 files always rotate on a thread of "
        "their own)",
    )
    parser.add_argument(
        "--metrics-addr",
        default=DEFAULT_METRICS_ADDR,
        help=f"host:port for /metrics, /healthz and /readyz (default: {DEFAULT_METRICS_ADDR})",
    )


def settings_from(args: argparse.Namespace) -> ProviderSettings:
    host, port = parse_host_port(args.metrics_addr)
    return ProviderSettings(
        socket_dir=args.socket_dir,
        provider_name=args.provider_name,
        state_dir=args.state_dir,
        kubelet_dir=args.kubelet_dir,
        kubeconfig=args.kubeconfig,
        metrics_host=host,
        metrics_port=port,
        token_audience=args.token_audience,
        secret_access=args.secret_access,
        allow_unverified_pods=args.insecure_allow_unverified_pods,
        token_dir=args.token_dir,
        cluster_cache_max_bytes=args.cluster_cache_max_bytes,
        require_mounted_target=args.require_mounted_target,
        rotation_workers=args.rotation_workers,
    )


def run(args: argparse.Namespace) -> int:
    try:
        settings = settings_from(args)
    except ValueError as exc:
        print(f"csi-vso provider: {exc}", file=sys.stderr)
        return 2
    try:
        # Rotation (issue 4) rides on the Mount service and the Secret cache as an extension.
        server = ProviderServer(
            settings,
            api_client(settings.kubeconfig),
            extensions=[RotationExtension(workers=settings.rotation_workers)],
        )
    except (OSError, ValueError, ConfigException) as exc:
        # A metrics port in use, an unusable state dir or kubeconfig: one line, not a traceback.
        log.error("provider could not start", extra={"error": str(exc)})
        return 1
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("stopping on signal", extra={"signal": signal.Signals(signum).name})
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        server.start()
    except (OSError, RuntimeError) as exc:
        log.error("provider could not start", extra={"error": str(exc)})
        server.stop(0)
        return 1
    stop.wait()
    server.stop()
    server.wait()
    return 0
