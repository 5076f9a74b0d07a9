"""A kubelet directory under a temp dir, for tests that Mount through the provider.

The provider only writes into ``<kubelet dir>/pods/<pod uid>/volumes/kubernetes.io~csi/<volume>/mount``
(``--kubelet-dir``), so tests build that layout here and hand the provider the root. As root the
whole kubelet dir is one real tmpfs (what the driver mounts per volume, close enough for the
writer), a plain temp dir otherwise.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.provider.tmpfs_support import make_tmpfs

CSI_VOLUMES = Path("volumes") / "kubernetes.io~csi"


class KubeletDir:
    """The root handed to ``--kubelet-dir`` and the targets under it."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def target(self, pod_uid: str, volume: str | None = None, *, create: bool = True) -> Path:
        """``<root>/pods/<uid>/volumes/kubernetes.io~csi/<volume>/mount`` (a fresh volume name by default)."""
        path = self.root / "pods" / pod_uid / CSI_VOLUMES / (volume or secrets.token_hex(4)) / "mount"
        if create:
            path.mkdir(parents=True)
        return path


def make_kubelet_dir() -> Iterator[KubeletDir]:
    tmpfs = make_tmpfs("csi-vso-kubelet-")
    try:
        yield KubeletDir(next(tmpfs))
    finally:
        tmpfs.close()  # unmounts and removes it now, not when collected


@pytest.fixture(name="kubelet")
def kubelet_fixture() -> Iterator[KubeletDir]:
    """A fresh kubelet dir for one test."""
    yield from make_kubelet_dir()


@pytest.fixture(name="module_kubelet", scope="module")
def module_kubelet_fixture() -> Iterator[KubeletDir]:
    """One kubelet dir for a module whose provider lives as long as the module."""
    yield from make_kubelet_dir()
