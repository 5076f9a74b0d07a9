"""`csi-vso provider` with or without rotation, for the rotation bench's side-by-side.

``python -m tests.provider.rotating_provider [--without-rotation] provider --kubeconfig ...``
runs the real CLI (same flags, logging, signal handling, ProviderServer).
``--without-rotation`` drops every extension: the polling alternative in
bench/rotation_bench.py, where only the driver's re-Mounts update volumes. Without the flag
it is exactly ``csi-vso provider``.
"""

from __future__ import annotations

import sys
from typing import Any

from csi_vso import cli
from csi_vso.provider import main as provider_main
from csi_vso.provider.server import ProviderServer


def _without_rotation(settings: Any, api: Any, **kwargs: Any) -> ProviderServer:
    kwargs["extensions"] = []
    return ProviderServer(settings, api, **kwargs)


if __name__ == "__main__":
    argv = sys.argv[1:]
    if argv[:1] == ["--without-rotation"]:
        argv = argv[1:]
        provider_main.ProviderServer = _without_rotation  # type: ignore[assignment,misc]
    sys.exit(cli.main(argv))
