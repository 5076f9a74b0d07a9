"""`csi-vso operator`: flags, then run the controllers (under leader election by default).

The only operator module that reads the environment or the filesystem for settings: the
operator namespace defaults to the pod's own (the service-account namespace file), and the
leader identity to ``$POD_NAME`` (else host name and pid). Everything below gets explicit values.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import threading
import types
from pathlib import Path

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from csi_vso import kube
from csi_vso.operator import addresses, hmac, metrics
from csi_vso.operator.controller import Controller, ControllerSettings
from csi_vso.operator.leader import ElectionSettings, release, run_elected

log = logging.getLogger(__name__)

SA_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
FALLBACK_NAMESPACE = "vault-secrets-operator"


def _default_namespace() -> str:
    try:
        return SA_NAMESPACE_FILE.read_text().strip() or FALLBACK_NAMESPACE
    except OSError:
        return FALLBACK_NAMESPACE


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--operator-namespace",
        default=None,
        help="namespace for unqualified references' fallback, the HMAC key and the leader Lease "
        f"(default: the pod's namespace, else {FALLBACK_NAMESPACE})",
    )
    parser.add_argument(
        "--leader-elect",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run controllers only while holding the leader Lease (default: on)",
    )
    parser.add_argument("--leader-election-id", default="csi-vso-operator", help="name of the leader Lease")
    parser.add_argument("--leader-election-identity", default=None, help="this replica's identity")
    parser.add_argument("--leader-elect-lease-duration", type=int, default=15, help="seconds (default 15)")
    parser.add_argument("--leader-elect-renew-deadline", type=int, default=10, help="seconds (default 10)")
    parser.add_argument("--leader-elect-retry-period", type=int, default=2, help="seconds (default 2)")
    parser.add_argument(
        "--metrics-addr",
        default="127.0.0.1:8096",
        help="host:port for /metrics, /healthz, /readyz ('0': off)",
    )
    parser.add_argument(
        "--max-concurrent-reconciles",
        type=int,
        default=10,
        help="objects reconciled in parallel (default 10)",
    )
    parser.add_argument(
        "--hmac-key-secret",
        default=hmac.DEFAULT_KEY_SECRET,
        help="Secret in the operator namespace holding the MAC key (created if missing)",
    )
    parser.add_argument(
        "--backoff-base", type=float, default=5.0, help="first retry delay, seconds (default 5)"
    )
    parser.add_argument(
        "--backoff-max", type=float, default=60.0, help="longest retry delay, seconds (default 60)"
    )
    parser.add_argument(
        "--informer-resync", type=float, default=300.0, help="full re-list of the watch caches, seconds"
    )
    parser.add_argument(
        "--allowed-vault-addresses",
        action="append",
        default=[],
        metavar="PATTERNS",
        help="where VaultConnections may send logins and requests: URL prefixes "
        "(https://vault.example.com:8200) or host patterns (vault.example.com, *.vault.svc, host:port), "
        "comma-separated or repeated (default: any address)",
    )
    parser.add_argument(
        "--rollout-debounce", type=float, default=2.0, help="minimum seconds between restarts of one workload"
    )
    parser.add_argument(
        "--global-transformation-options",
        type=_transformation_options,
        default=frozenset(),
        help="VSO's option list for every transformation; 'exclude-raw': never write the _raw key",
    )


TRANSFORMATION_OPTIONS = ("exclude-raw",)


def _transformation_options(text: str) -> frozenset[str]:
    options = frozenset(o.strip() for o in text.split(",") if o.strip())
    unknown = sorted(options - set(TRANSFORMATION_OPTIONS))
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown option(s) {', '.join(unknown)}; known: {', '.join(TRANSFORMATION_OPTIONS)}"
        )
    return options


def run(args: argparse.Namespace) -> int:
    namespace = args.operator_namespace or _default_namespace()
    try:
        allowed_addresses = addresses.parse_patterns(args.allowed_vault_addresses)
    except ValueError as exc:
        log.error("invalid --allowed-vault-addresses", extra={"error": str(exc)})
        return 2
    identity = (
        args.leader_election_identity or os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"
    )
    health = metrics.Health()
    try:
        api_client = kube.api_client(args.kubeconfig)
        server = metrics.serve(args.metrics_addr, health)
    except (OSError, ValueError, ConfigException) as exc:
        # An unusable kubeconfig or a metrics port in use: one line, not a traceback.
        log.error("operator could not start", extra={"error": str(exc)})
        return 1
    stop = threading.Event()

    def on_signal(signum: int, _frame: types.FrameType | None) -> None:
        log.info("stopping", extra={"signal": signal.Signals(signum).name})
        stop.set()
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    try:
        key = hmac.load_or_create_key(client.CoreV1Api(api_client), namespace, args.hmac_key_secret)
    except (ApiException, urllib3.exceptions.HTTPError, OSError, RuntimeError) as exc:
        # The API server unreachable or RBAC missing at start: say which Secret and why, then exit
        # (the Deployment restarts us). An API error is reduced to its status: no response body.
        reason = f"{exc.status} {exc.reason}" if isinstance(exc, ApiException) else str(exc)
        log.error(
            "operator could not read or create its HMAC key Secret",
            extra={"secret": f"{namespace}/{args.hmac_key_secret}", "error": reason},
        )
        if server is not None:
            server.shutdown()
        return 1
    controller = Controller(
        api_client,
        ControllerSettings(
            operator_namespace=namespace,
            max_concurrent_reconciles=args.max_concurrent_reconciles,
            informer_resync=args.informer_resync,
            backoff_base=args.backoff_base,
            backoff_cap=args.backoff_max,
            rollout_debounce=args.rollout_debounce,
            identity=identity,
            allowed_vault_addresses=allowed_addresses,
            exclude_raw="exclude-raw" in args.global_transformation_options,
        ),
        hmac_key=key,
    )
    lost = threading.Event()
    leading = threading.Event()
    election = ElectionSettings(
        namespace=namespace,
        name=args.leader_election_id,
        identity=identity,
        lease_duration=args.leader_elect_lease_duration,
        renew_deadline=args.leader_elect_renew_deadline,
        retry_period=args.leader_elect_retry_period,
    )

    def start_leading() -> None:
        leading.set()
        controller.start()

    try:
        if args.leader_elect:
            health.ready.set()  # a standby is a healthy, ready replica
            run_elected(api_client, election, on_started=start_leading, on_stopped=lost.set)
            return 1 if lost.is_set() else 0
        controller.start()
        health.ready.set()
        stop.wait()
        return 0
    except SystemExit:
        return 0
    finally:
        health.ready.clear()
        controller.stop()
        if leading.is_set() and not lost.is_set():
            release(api_client, election)  # a standby need not wait out the lease
        if server is not None:
            server.shutdown()
