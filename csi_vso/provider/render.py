"""Turn validated objects and the Secrets they name into files: pure, no I/O.

Authorization has already happened (:mod:`csi_vso.provider.authz`); this module only
decides paths, modes and bytes, and checks what could not be checked before the Secret's
keys were known: objects without ``key`` expand to one file per key, and the whole set of
paths must still be valid, distinct and no file may double as a directory. It also
enforces the per-volume limits of :mod:`~csi_vso.provider.limits` (files, tmpfs pages, the
driver's 4 MiB receive limit), so that a too-large volume fails with a clear
RESOURCE_EXHAUSTED naming the limit instead of a transport error or an OOM-killed provider.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from csi_vso.provider.atomic_writer import FileToWrite, validate_payload
from csi_vso.provider.errors import InvalidArgument, NotFound, ResourceExhausted
from csi_vso.provider.limits import (
    MAX_FILES_PER_VOLUME,
    MAX_RESPONSE_BYTES,
    MAX_VOLUME_PAGES,
    PAGE_SIZE,
    pages,
)
from csi_vso.provider.validation import ObjectSpec
from csi_vso.provider.versions import object_version

#: The driver's gRPC receive limit (see :mod:`~csi_vso.provider.limits`).
MAX_TOTAL_BYTES = MAX_RESPONSE_BYTES
# Per-file protobuf framing (tags, lengths, mode, version entry): a safe over-estimate.
_PER_FILE_OVERHEAD = 64


@dataclass(frozen=True)
class RenderedFile:
    """One file of a volume, with the configuration of the object it came from."""

    path: str
    mode: int
    contents: bytes = field(repr=False)
    config: Mapping[str, object] = field(repr=False)

    def to_write(self) -> FileToWrite:
        return FileToWrite(path=self.path, mode=self.mode, contents=self.contents)


@dataclass(frozen=True)
class ObjectVersion:
    """Wire-free twin of the proto ObjectVersion: file id and its keyed MAC."""

    id: str
    version: str


def render(
    objects: Sequence[ObjectSpec],
    secret_data: Mapping[tuple[str, str], Mapping[str, bytes]],
    permission: int,
    checkpoint: Callable[[], None] | None = None,
) -> tuple[RenderedFile, ...]:
    """Files for ``objects``; ``secret_data`` maps (namespace, name) to the Secret's decoded data.

    Raises NotFound for a named key the Secret lacks, InvalidArgument when the expanded
    paths clash or are not valid, ResourceExhausted over a limit (files, pages, bytes).
    ``checkpoint`` is called per file (the rotation lets small volumes go first there).
    """
    # Counted before anything is built: a Secret of 20,000 one-byte keys is refused here.
    count = sum(
        1 if spec.key is not None else len(secret_data[(spec.secret_namespace, spec.secret_name)])
        for spec in objects
    )
    if count > MAX_FILES_PER_VOLUME:
        raise ResourceExhausted(
            f"the volume would have {count} files, over the limit of {MAX_FILES_PER_VOLUME} files per volume"
        )
    files: list[RenderedFile] = []
    for spec in objects:
        data = secret_data[(spec.secret_namespace, spec.secret_name)]
        mode = permission if spec.mode is None else spec.mode
        if spec.key is not None:
            if spec.key not in data:
                where = f"{spec.secret_namespace}/{spec.secret_name}"
                raise NotFound(f"key {spec.key!r} not found in protected Secret {where}")
            path = spec.file_name or spec.key
            files.append(RenderedFile(path=path, mode=mode, contents=data[spec.key], config=spec.config()))
            continue
        for key in sorted(data):
            if checkpoint is not None:
                checkpoint()
            config = {**spec.config(), "key": key}
            files.append(RenderedFile(path=key, mode=mode, contents=data[key], config=config))
    problems = validate_payload(payload(files, checkpoint), checkpoint)
    if problems:
        raise InvalidArgument(problems)
    total = sum(len(f.contents) + len(f.path) + _PER_FILE_OVERHEAD for f in files)
    if total > MAX_TOTAL_BYTES:
        raise ResourceExhausted(
            f"the volume's {len(files)} files take about {total} bytes, over the "
            f"{MAX_TOTAL_BYTES}-byte limit of the CSI driver's gRPC receive buffer"
        )
    cost = volume_pages(files)
    if cost > MAX_VOLUME_PAGES:
        raise ResourceExhausted(
            f"the volume's {len(files)} files and their directories take {cost} pages of tmpfs, over the "
            f"limit of {MAX_VOLUME_PAGES} pages ({MAX_VOLUME_PAGES * PAGE_SIZE // 1024} KiB) per volume"
        )
    return tuple(files)


def payload(files: Sequence[RenderedFile], checkpoint: Callable[[], None] | None = None) -> list[FileToWrite]:
    """What the atomic writer takes for ``files`` (``checkpoint`` called per file)."""
    out = []
    for f in files:
        if checkpoint is not None:
            checkpoint()
        out.append(f.to_write())
    return out


def volume_pages(files: Sequence[RenderedFile]) -> int:
    """What the volume costs the node's tmpfs, in pages: each file rounded up to whole pages
    (at least one), plus one page per directory (the version directory and every nested one)."""
    directories = {f.path.rsplit("/", 1)[0] for f in files if "/" in f.path}
    nested = {"/".join(d.split("/")[: i + 1]) for d in directories for i in range(d.count("/") + 1)}
    return sum(pages(len(f.contents)) for f in files) + len(nested) + 1


def versions(
    key: bytes, files: Sequence[RenderedFile], checkpoint: Callable[[], None] | None = None
) -> tuple[ObjectVersion, ...]:
    """One version per file, id = the file's path (DESIGN.md section 2: at least one entry)."""
    out = []
    for f in files:
        if checkpoint is not None:
            checkpoint()
        out.append(ObjectVersion(id=f.path, version=object_version(key, f.config, f.contents)))
    return tuple(out)
