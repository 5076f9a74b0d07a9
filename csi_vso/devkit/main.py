"""`csi-vso devkit`: development tools; today the in-memory Kubernetes API server.

``csi-vso devkit apiserver --port 0 --kubeconfig PATH [--token-file FILE]`` serves the
API on 127.0.0.1, writes an admin kubeconfig to PATH, prints exactly one ready line on
stdout (``apiserver ready url=http://127.0.0.1:PORT kubeconfig=PATH``) so a parent process
can wait for it, and serves until SIGTERM or SIGINT. ``--token-file`` adds bearer tokens in
kube-apiserver's ``--token-auth-file`` CSV format (``token,user,uid,"group1,group2"``).
"""

from __future__ import annotations

import argparse
import csv
import logging
import signal
import sys
from pathlib import Path

from csi_vso.devkit.apiserver import APIServer, User

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # Not required at parse time, so `csi-vso devkit --help`-style checks of the common flags parse;
    # run() reports a missing tool.
    sub = parser.add_subparsers(dest="devkit_command", metavar="TOOL")
    api = sub.add_parser("apiserver", help="serve an in-memory Kubernetes API server on 127.0.0.1")
    api.add_argument("--port", type=int, default=0, help="TCP port (default 0: any free port)")
    # `devkit` already has --kubeconfig (cli.py adds it to every subcommand); accept it here too so
    # it may follow `apiserver`, without overriding a value given before it.
    api.add_argument("--kubeconfig", default=argparse.SUPPRESS, help="where to write the admin kubeconfig")
    api.add_argument(
        "--tls", action="store_true", help="serve HTTPS with a generated CA (kubeconfig carries it)"
    )
    api.add_argument("--token-file", help='static bearer tokens, CSV lines: token,user,uid,"group1,group2"')
    api.add_argument(
        "--watch-window", type=int, default=25_000, help="watch events retained for resumes (older: 410)"
    )
    api.add_argument(
        "--token-cache-ttl",
        type=float,
        default=10.0,
        help="seconds a successful TokenReview is answered from cache (the real server's default: 10)",
    )


def parse_token_file(text: str) -> dict[str, User]:
    """Parse kube-apiserver token-auth-file CSV (pure); raises ValueError naming the bad line."""
    users: dict[str, User] = {}
    for number, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or row[0].startswith("#"):
            continue
        if len(row) < 2 or not row[0] or not row[1]:
            raise ValueError(f"token file line {number}: need at least token,user")
        groups = tuple(g.strip() for g in row[3].split(",") if g.strip()) if len(row) > 3 else ()
        users[row[0]] = User(row[1], (*groups, "system:authenticated"), row[2] if len(row) > 2 else "")
    return users


def run(args: argparse.Namespace) -> int:
    if args.devkit_command != "apiserver":
        print(
            "usage: csi-vso devkit apiserver --port 0 --kubeconfig PATH [--token-file FILE]", file=sys.stderr
        )
        return 2
    if not args.kubeconfig:
        print("csi-vso devkit apiserver: --kubeconfig PATH is required (where to write it)", file=sys.stderr)
        return 2
    tokens: dict[str, User] = {}
    if args.token_file:
        try:
            tokens = parse_token_file(Path(args.token_file).read_text())
        except (OSError, ValueError) as exc:
            print(f"csi-vso devkit apiserver: {exc}", file=sys.stderr)
            return 2
    # Block the stop signals before any thread starts (threads inherit the mask) and wait for
    # them synchronously: no handler runs inside a lock the main thread might hold.
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    try:
        return _serve(args, tokens, stop_signals)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)


def _serve(args: argparse.Namespace, tokens: dict[str, User], stop_signals: set[signal.Signals]) -> int:
    try:
        server = APIServer(
            port=args.port,
            tokens=tokens,
            watch_window=args.watch_window,
            tls=args.tls,
            token_cache_ttl=args.token_cache_ttl,
        )
        server.start()
    except OSError as exc:  # e.g. the port is taken: one line for the operator, not a traceback
        print(f"csi-vso devkit apiserver: cannot listen on 127.0.0.1:{args.port}: {exc}", file=sys.stderr)
        return 1
    try:
        try:
            path = server.write_kubeconfig(args.kubeconfig)
        except OSError as exc:
            print(f"csi-vso devkit apiserver: cannot write the kubeconfig: {exc}", file=sys.stderr)
            return 1
        print(f"apiserver ready url={server.url} kubeconfig={path}", flush=True)
        log.info("apiserver serving", extra={"url": server.url, "kubeconfig": str(path)})
        received = signal.sigwait(stop_signals)
        log.info("apiserver stopping", extra={"signal": signal.Signals(received).name})
    finally:
        server.stop()
    return 0
