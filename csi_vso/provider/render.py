"""Turn validated objects and the Secrets they name into files: pure, no I/O.

Authorization has already happened (:mod:`csi_vso.provider.authz`); this module only
decides paths, modes and bytes, and checks what could not be checked before the Secret's
keys were known: objects without ``key`` expand to one file per key, and the whole set of
paths must still be valid, distinct and no file may double as a directory. It also
enforces the driver's 4 MiB receive limit so that a too-large volume fails with a clear
RESOURCE_EXHAUSTED instead of a transport error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from csi_vso.provider.atomic_writer import FileToWrite, validate_payload
from csi_vso.provider.errors import InvalidArgument, NotFound, ResourceExhausted
from csi_vso.provider.validation import ObjectSpec
from csi_vso.provider.versions import object_version

#: The driver's gRPC receive limit. Provider-mode mounts obey it too, so that switching
#: writeMode never changes which volumes work.
MAX_TOTAL_BYTES = 4 * 1024 * 1024
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
) -> tuple[RenderedFile, ...]:
    """Files for ``objects``; ``secret_data`` maps (namespace, name) to the Secret's decoded data.

    Raises NotFound for a named key the Secret lacks, InvalidArgument when the expanded
    paths clash or are not valid, ResourceExhausted above :data:`MAX_TOTAL_BYTES`.
    """
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
            config = {**spec.config(), "key": key}
            files.append(RenderedFile(path=key, mode=mode, contents=data[key], config=config))
    problems = validate_payload([f.to_write() for f in files])
    if problems:
        raise InvalidArgument(problems)
    total = sum(len(f.contents) + len(f.path) + _PER_FILE_OVERHEAD for f in files)
    if total > MAX_TOTAL_BYTES:
        raise ResourceExhausted(
            f"the volume's {len(files)} files take about {total} bytes, over the "
            f"{MAX_TOTAL_BYTES}-byte limit of the CSI driver's gRPC receive buffer"
        )
    return tuple(files)


def versions(key: bytes, files: Sequence[RenderedFile]) -> tuple[ObjectVersion, ...]:
    """One version per file, id = the file's path (DESIGN.md section 2: at least one entry)."""
    return tuple(ObjectVersion(id=f.path, version=object_version(key, f.config, f.contents)) for f in files)
