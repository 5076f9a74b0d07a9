"""Check a parsed Mount request and turn it into a :class:`MountSpec`, reporting every problem at once.

Parsing (:mod:`csi_vso.provider.params`) already decoded the strings; this module decides
whether the values make sense: kubelet's identity keys are present, each object names a
Secret, paths stay inside the volume, modes are real modes, no two objects claim one
path. Paths that depend on a Secret's keys (an object without ``key``) can only be checked
once the Secret is known; :mod:`csi_vso.provider.render` checks those with the same rules.
Pure: no I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from csi_vso.provider import params
from csi_vso.provider.atomic_writer import is_utf8, validate_relative_path
from csi_vso.provider.errors import InvalidArgument
from csi_vso.provider.params import ParsedRequest, PodClaim, RawObject
from csi_vso.provider.targets import parse_target

# Fields of one entry of ``objects`` (DESIGN.md section 4).
SECRET_NAME = "secretName"  # noqa: S105 - a field name
SECRET_NAMESPACE = "secretNamespace"  # noqa: S105 - a field name
KEY = "key"
FILE_NAME = "fileName"
MODE = "mode"
OBJECT_FIELDS = (SECRET_NAME, SECRET_NAMESPACE, KEY, FILE_NAME, MODE)

_MAX_MODE = 0o777


class WriteMode(enum.Enum):
    """Who writes the files: the provider itself (default, rotates in place) or the driver."""

    PROVIDER = "provider"
    DRIVER = "driver"


@dataclass(frozen=True)
class ObjectSpec:
    """One validated object: which Secret (and key) goes to which file, with which mode."""

    secret_namespace: str
    secret_name: str
    key: str | None  # None: every key of the Secret, one file each
    file_name: str | None  # None: the key's name
    mode: int | None  # None: the request's permission

    def config(self) -> dict[str, str | int | None]:
        """The object's configuration, as fed into its version MAC (no content)."""
        return {
            "secretNamespace": self.secret_namespace,
            "secretName": self.secret_name,
            "key": self.key,
            "fileName": self.file_name,
            "mode": self.mode,
        }


@dataclass(frozen=True)
class MountSpec:
    """A Mount request that passed validation; what the rest of the provider works from."""

    pod: PodClaim
    objects: tuple[ObjectSpec, ...]
    write_mode: WriteMode
    permission: int
    target_path: str
    secret_provider_class: str


def _parse_mode(text: str) -> int | None:
    """An octal mode string: ``"0600"``, ``"600"`` or ``"0o600"``; None when it is not one."""
    digits = text.strip().lower().removeprefix("0o")
    if not digits or any(c not in "01234567" for c in digits):
        return None
    value = int(digits, 8)
    return value if value <= _MAX_MODE else None


def _validate_object(raw: RawObject, pod_namespace: str, problems: list[str]) -> ObjectSpec | None:
    where = f"objects[{raw.index}]"
    before = len(problems)
    for name in raw.non_strings:
        if name == MODE:
            problems.append(f'{where}.{MODE} must be a quoted octal string such as "0600"')
        elif name in OBJECT_FIELDS:
            problems.append(f"{where}.{name} must be a string")
    for name in sorted((set(raw.fields) | set(raw.non_strings)) - set(OBJECT_FIELDS)):
        problems.append(f"{where} has unknown key {name!r} (known: {', '.join(OBJECT_FIELDS)})")
    fields: Mapping[str, str] = raw.fields
    secret_name = fields.get(SECRET_NAME, "")
    if not secret_name and SECRET_NAME not in raw.non_strings:
        problems.append(f"{where}.{SECRET_NAME} is required")
    key = fields.get(KEY) or None
    file_name = fields.get(FILE_NAME) or None
    if file_name is not None:
        problems.extend(f"{where}.{FILE_NAME}: {p}" for p in validate_relative_path(file_name))
        if key is None and KEY not in raw.non_strings:
            problems.append(f"{where}.{FILE_NAME} needs {KEY} (without it every key becomes its own file)")
    elif key is not None:
        problems.extend(f"{where}.{KEY}: {p}" for p in validate_relative_path(key))
    mode: int | None = None
    if MODE in fields:
        mode = _parse_mode(fields[MODE])
        if mode is None:
            problems.append(
                f'{where}.{MODE} must be an octal file mode between 0000 and 0777, such as "0600"'
            )
    if len(problems) > before:
        return None
    return ObjectSpec(
        secret_namespace=fields.get(SECRET_NAMESPACE) or pod_namespace,
        secret_name=secret_name,
        key=key,
        file_name=file_name,
        mode=mode,
    )


def target_path_problems(target_path: str) -> list[str]:
    """What is wrong with ``target_path`` as a path at all (where it may lie is checked later)."""
    problems = []
    if not target_path.startswith("/"):
        problems.append("target_path must be an absolute path")
    if "\x00" in target_path:
        problems.append("target_path contains a NUL byte")
    if not is_utf8(target_path):
        problems.append("target_path is not valid UTF-8")
    return problems


def _identity_problems(pod: PodClaim) -> list[str]:
    required = {
        params.POD_NAME: pod.name,
        params.POD_NAMESPACE: pod.namespace,
        params.POD_UID: pod.uid,
        params.SERVICE_ACCOUNT: pod.service_account,
    }
    return [
        f"attributes lack {key} (is podInfoOnMount enabled on the CSIDriver?)"
        for key, value in required.items()
        if not value
    ]


def validate(parsed: ParsedRequest, *, kubelet_dir: Path | None = None) -> MountSpec:
    """Return the request as a :class:`MountSpec`, or raise InvalidArgument listing every problem.

    With ``kubelet_dir`` the target must also have kubelet's shape under it
    (:func:`~csi_vso.provider.targets.parse_target`); the Mount service always passes it.
    """
    problems = list(parsed.problems)
    if parsed.attributes_readable:
        problems.extend(_identity_problems(parsed.pod))
    write_mode = WriteMode.PROVIDER
    if parsed.write_mode is not None:
        try:
            write_mode = WriteMode(parsed.write_mode)
        except ValueError:
            problems.append(f"{params.WRITE_MODE} must be 'provider' or 'driver'")
    permission = params.DEFAULT_PERMISSION if parsed.permission is None else parsed.permission
    if not 0 <= permission <= _MAX_MODE:
        problems.append("permission must be a file mode between 0 and 511 (0777)")
    path_problems = target_path_problems(parsed.target_path)
    problems.extend(path_problems)
    if kubelet_dir is not None and not path_problems:
        target = parse_target(kubelet_dir, parsed.target_path)
        if isinstance(target, list):
            problems.extend(target)
    if not parsed.objects and not parsed.problems:
        problems.append("objects is empty: nothing to mount")
    specs: list[ObjectSpec] = []
    claimed: dict[str, int] = {}
    for raw in parsed.objects:
        spec = _validate_object(raw, parsed.pod.namespace, problems)
        if spec is None:
            continue
        specs.append(spec)
        path = spec.file_name or spec.key
        if path is None:
            continue  # every key: checked once the Secret's keys are known (render)
        if path in claimed:
            problems.append(f"objects[{claimed[path]}] and objects[{raw.index}] both write {path!r}")
        else:
            claimed[path] = raw.index
    if problems:
        raise InvalidArgument(problems)
    return MountSpec(
        pod=parsed.pod,
        objects=tuple(specs),
        write_mode=write_mode,
        permission=permission,
        target_path=parsed.target_path,
        secret_provider_class=parsed.secret_provider_class,
    )
