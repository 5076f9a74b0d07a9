"""Where a Mount may write: kubelet's directory for one CSI volume of one pod, and nothing else.

Kubelet hands the driver (and the driver us) ``target_path`` =
``<kubelet dir>/pods/<pod uid>/volumes/kubernetes.io~csi/<volume>/mount``. The path arrives
over a socket any local root process can reach, and a provider that writes wherever it is
told wrote ``/..data`` and ``/password`` into the root once. So the path must have exactly
this shape under the configured kubelet dir (``--kubelet-dir``), spelled plainly (no ``.``,
``..`` or empty component), and its pod UID must be the pod whose identity the Mount
verified (checked by :mod:`csi_vso.provider.service` after identity). Opening it without
following a symlink in any component is :func:`~csi_vso.provider.atomic_writer.open_beneath`'s
job. Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

DEFAULT_KUBELET_DIR = Path("/var/lib/kubelet")
CSI_PLUGIN_DIR = "kubernetes.io~csi"
SHAPE = f"<kubelet dir>/pods/<pod uid>/volumes/{CSI_PLUGIN_DIR}/<volume>/mount"

# A pod UID is a UUID; a volume directory is a volume or PersistentVolume name (DNS rules).
_UID = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9-]{0,63}$")
_VOLUME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{0,252}$")


@dataclass(frozen=True)
class VolumeTarget:
    """A target path that has kubelet's shape: whose pod and which volume it is."""

    path: Path
    pod_uid: str
    volume: str


def parse_target(kubelet_dir: Path, target_path: str) -> VolumeTarget | list[str]:
    """The target as a :class:`VolumeTarget`, or the problems (words, the path quoted)."""
    wrong = [f"target_path {target_path!r} is not {SHAPE} with --kubelet-dir {str(kubelet_dir)!r}"]
    root = str(kubelet_dir).rstrip("/") + "/"
    if not target_path.startswith(root):
        return wrong
    parts = target_path[len(root) :].split("/")
    if len(parts) != 6 or [parts[0], *parts[2:4], parts[5]] != ["pods", "volumes", CSI_PLUGIN_DIR, "mount"]:
        return wrong
    uid, volume = parts[1], parts[4]
    if not _UID.match(uid):
        return [f"target_path {target_path!r}: {uid!r} is not a pod UID"]
    if not _VOLUME.match(volume) or volume in (".", ".."):
        return [f"target_path {target_path!r}: {volume!r} is not a volume name"]
    return VolumeTarget(path=Path(target_path), pod_uid=uid, volume=volume)
