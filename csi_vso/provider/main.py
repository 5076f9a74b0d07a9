"""`csi-vso provider`: not built yet (see the open issues)."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No flags yet."""


def run(args: argparse.Namespace) -> int:
    print("csi-vso provider is not implemented yet", file=sys.stderr)
    return 2
