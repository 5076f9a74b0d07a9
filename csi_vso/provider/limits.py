"""Every limit the provider puts on what a tenant can ask of it, in one place (README "Limits").

A tenant controls a volume's ``objects`` (SPC parameters, the pod's volumeAttributes) and the
Secrets it names, so every size below is something a tenant will push. Each limit protects
the node's provider (one process serves every pod of the node, under the DaemonSet's memory
limit) and the other tenants on that node; going over one fails that Mount with a message
naming the limit, and nothing is written.
"""

from __future__ import annotations

#: The Mount request's ``attributes`` blob. Far above any real request (a few KiB).
MAX_ATTRIBUTES_BYTES = 1024 * 1024

#: Files in one volume: entries of ``objects`` and the files key-less objects expand to. Each
#: file costs a tmpfs page, an open/write/fsync and a version entry on every rotation; tens is
#: typical. Over it: INVALID_ARGUMENT (too many objects) or RESOURCE_EXHAUSTED (a Secret with
#: too many keys).
MAX_FILES_PER_VOLUME = 512

#: tmpfs charges whole pages: a one-byte file costs 4 KiB of node memory, and so does every
#: directory. A volume's cost is counted in these pages, not in bytes.
PAGE_SIZE = 4096

#: Pages one volume may take (files rounded up to whole pages, at least one each, plus one per
#: directory): 4 MiB of tmpfs. Over it: RESOURCE_EXHAUSTED.
MAX_VOLUME_PAGES = 1024

#: The CSI driver's gRPC receive limit; provider-mode volumes obey it too, so that switching
#: ``writeMode`` never changes which volumes work. Over it: RESOURCE_EXHAUSTED.
MAX_RESPONSE_BYTES = 4 * 1024 * 1024

#: One file path (PATH_MAX), one path element (NAME_MAX), and path elements per file.
MAX_PATH_BYTES = 4096
MAX_NAME_BYTES = 255
MAX_PATH_DEPTH = 32

#: Replaced versions a volume keeps inside their grace period (readers mid-open may still need
#: the newest; older ones only pile up when a Secret changes faster than the grace period, and
#: their tmpfs pages are charged to the provider). The oldest beyond it go at the next write.
MAX_REPLACED_VERSIONS = 3

#: Rotation: volumes of more files than this are bulk work (one at a time, yielding to small ones).
SMALL_VOLUME_FILES = 32


def pages(size: int) -> int:
    """tmpfs pages a file of ``size`` bytes takes: whole pages, at least one."""
    return max(1, -(-size // PAGE_SIZE))
