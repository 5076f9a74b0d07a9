"""A real tmpfs for the writer and rotation tests (a plain temp dir when not root).

Kept in its own module (not conftest.py, which the provider tests own) and imported by name.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def make_tmpfs(prefix: str = "csi-vso-tmpfs-") -> Iterator[Path]:
    """A fresh tmpfs mount (root) or temp dir, unmounted and removed when the generator ends."""
    base = Path(tempfile.mkdtemp(prefix=prefix))
    mounted = False
    if os.geteuid() == 0:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256m,mode=0755", "tmpfs", str(base)], check=True)
        mounted = True
    try:
        yield base
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(base)], check=False)
        subprocess.run(["rm", "-rf", str(base)], check=False)


@pytest.fixture(name="tmpfs")
def tmpfs_fixture() -> Iterator[Path]:
    """A fresh tmpfs mount (root) or temp dir, unmounted and removed afterwards."""
    yield from make_tmpfs()
