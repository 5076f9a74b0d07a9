"""`csi-vso provider` with rotation plugged in, for the end-to-end rotation tests and the bench.

``python -m tests.provider.rotating_provider provider --kubeconfig ... --socket-dir ...`` runs
the real CLI (same flags, logging, signal handling, ProviderServer). While
``csi_vso.provider.main`` does not pass ``extensions=[RotationExtension()]`` itself, this
wrapper adds it; once it does, the wrapper changes nothing.

``--without-rotation`` as the first argument runs the provider with no extensions at all:
the polling alternative in bench/rotation_bench.py (the driver re-Mounts every volume).
"""

from __future__ import annotations

import inspect
import sys
from typing import Any

from csi_vso import cli
from csi_vso.provider import main as provider_main
from csi_vso.provider.rotation import RotationExtension
from csi_vso.provider.server import ProviderServer


def _with_rotation(settings: Any, api: Any, **kwargs: Any) -> ProviderServer:
    kwargs.setdefault("extensions", [RotationExtension()])
    return ProviderServer(settings, api, **kwargs)


def _without_rotation(settings: Any, api: Any, **kwargs: Any) -> ProviderServer:
    kwargs["extensions"] = []
    return ProviderServer(settings, api, **kwargs)


if __name__ == "__main__":
    argv = sys.argv[1:]
    if argv[:1] == ["--without-rotation"]:
        argv = argv[1:]
        provider_main.ProviderServer = _without_rotation  # type: ignore[assignment,misc]
    elif "RotationExtension" not in inspect.getsource(provider_main):
        provider_main.ProviderServer = _with_rotation  # type: ignore[assignment,misc]
    sys.exit(cli.main(argv))
