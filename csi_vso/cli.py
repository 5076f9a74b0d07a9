"""The ``csi-vso`` command line: the only module that reads argv and the environment.

Each subcommand lives in the module that owns it, which exposes
``add_arguments(parser)`` and ``run(args) -> int``; this module wires them together,
adds the conventional flags every process shares and configures logging once.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Protocol, cast

from csi_vso import __version__, logs


class _Command(Protocol):
    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...
    def run(self, args: argparse.Namespace) -> int: ...


# subcommand -> (module that owns it, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "provider": ("csi_vso.provider.main", "run the Secrets Store CSI driver provider (node DaemonSet)"),
    "operator": ("csi_vso.operator.main", "run the operator that syncs Vault into protected Secrets"),
    "demo": ("csi_vso.demo", "run everything on embedded defaults and show a live rotation"),
    "devkit": ("csi_vso.devkit.main", "development tools: the in-memory Kubernetes API server"),
}


def _add_common_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kubeconfig",
        default=os.environ.get("KUBECONFIG") or None,
        help="kubeconfig file (default: $KUBECONFIG, else in-cluster configuration)",
    )
    parser.add_argument(
        "--log-level",
        default=os.environ.get("CSI_VSO_LOG_LEVEL", "info"),
        choices=["debug", "info", "warning", "error"],
        help="minimum level logged (default: info)",
    )
    parser.add_argument(
        "--log-format",
        default=os.environ.get("CSI_VSO_LOG_FORMAT", "text"),
        choices=["json", "text"],
        help="log line format (default: text)",
    )


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; with ``only``, import just that subcommand's module.

    Importing a subcommand pulls in its dependencies (the provider never needs hvac or the
    devkit API server), so ``main`` loads only the one being run: a smaller, faster process.
    """
    parser = argparse.ArgumentParser(
        prog="csi-vso",
        description="Vault/OpenBao secrets as files that rotate in place: "
        "a VSO-compatible operator and a Secrets Store CSI driver provider.",
    )
    parser.add_argument("--version", action="version", version=f"csi-vso {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        if only is not None and name != only:
            continue
        _add_common_flags(sp)
        command = cast(_Command, importlib.import_module(module_name))
        command.add_arguments(sp)
        sp.set_defaults(_command=command)
    sub.add_parser("version", help="print the version and exit").set_defaults(_command=None)
    return parser


def _requested_command(argv: Sequence[str]) -> str | None:
    """The subcommand named in argv (the first word that is one), before parsing."""
    return next((word for word in argv if word in SUBCOMMANDS or word == "version"), None)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(only=_requested_command(argv) or "").parse_args(argv)
    if args.command == "version":
        print(__version__)
        return 0
    logs.configure(level=args.log_level, fmt=args.log_format)
    command = cast(_Command, args._command)
    try:
        return command.run(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
