"""csi-vso: Vault/OpenBao secrets as files that rotate in place.

Two processes come from this package: the operator (``csi_vso.operator``), which syncs
Vault into protected Kubernetes Secrets, and the Secrets Store CSI driver provider
(``csi_vso.provider``), which serves those Secrets to authorized pods as files and
rewrites them when they change. ``csi_vso.devkit`` holds what tests and the demo run
against when no real cluster is at hand.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("csi-vso")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
