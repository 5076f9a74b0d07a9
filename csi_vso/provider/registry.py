"""The mount registry: which provider-mode volumes this node serves, kept on disk so rotation
survives a provider restart.

One JSON record per mount under ``<state-dir>/mounts/``, named by a hash of the target path
(target paths are long and full of slashes). A record holds what rotation needs to re-render
the volume without the driver: the target path, the pod identity the API confirmed at Mount
time, the validated objects, the permission, the versions last written, and the one-time-log
flags. Never file contents, never tokens: the state dir is on the node's disk and outlives
the pod.

Each record is written to a temp file, fsynced, renamed over the old one and the directory
fsynced, so a crash leaves the old record or the new one. New records and state changes are
written at once; a rotation that only moves a record's versions marks it dirty and the
rotator flushes dirty records a moment later, off the rotation's critical path (a thousand
fsyncs on the node's disk cost more than the rewrites themselves). Losing such an update in a
crash is harmless: versions only let rotation skip unchanged volumes, and the restart
reconcile compares bytes on disk anyway. At start every record is loaded;
one that does not parse is logged (by file name) and skipped, never a crash: the worst case
is a volume that stops rotating until its pod's next Mount re-registers it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from csi_vso.provider.authz import VerifiedPod
from csi_vso.provider.validation import ObjectSpec

log = logging.getLogger(__name__)

MOUNTS_DIR = "mounts"
_SCHEMA = 1
_SUFFIX = ".json"
_TMP_SUFFIX = ".tmp"


@dataclass(frozen=True)
class MountRecord:
    """Everything rotation needs to re-render one provider-mode volume; no content."""

    target_path: str
    pod: VerifiedPod
    objects: tuple[ObjectSpec, ...]
    permission: int
    secret_provider_class: str = ""
    # (file id, version) as last written; empty until the first write succeeded.
    versions: tuple[tuple[str, str], ...] = ()
    # One-time-log state, kept across restarts so a restart does not log again.
    missing: tuple[str, ...] = ()  # "namespace/name" of Secrets that are gone (files kept)
    denied: bool = False  # the policy no longer admits the pod (files removed)
    failing: str = ""  # the last render/write error's kind, "" when healthy

    def secrets(self) -> set[tuple[str, str]]:
        """The (namespace, name) of every Secret this volume reads."""
        return {(o.secret_namespace, o.secret_name) for o in self.objects}

    def with_outcome(
        self,
        *,
        versions: tuple[tuple[str, str], ...] | None = None,
        missing: tuple[str, ...] | None = None,
        denied: bool | None = None,
        failing: str | None = None,
    ) -> MountRecord:
        """A copy with the outcome of a rotation applied (None = keep)."""
        return replace(
            self,
            versions=self.versions if versions is None else versions,
            missing=self.missing if missing is None else missing,
            denied=self.denied if denied is None else denied,
            failing=self.failing if failing is None else failing,
        )

    def for_storage(self) -> dict[str, Any]:
        return {
            "schema": _SCHEMA,
            "targetPath": self.target_path,
            "pod": {
                "namespace": self.pod.namespace,
                "name": self.pod.name,
                "uid": self.pod.uid,
                "serviceAccount": self.pod.service_account,
            },
            "objects": [
                {
                    "secretNamespace": o.secret_namespace,
                    "secretName": o.secret_name,
                    "key": o.key,
                    "fileName": o.file_name,
                    "mode": o.mode,
                }
                for o in self.objects
            ],
            "permission": self.permission,
            "secretProviderClass": self.secret_provider_class,
            "versions": [[i, v] for i, v in self.versions],
            "missing": list(self.missing),
            "denied": self.denied,
            "failing": self.failing,
        }

    @classmethod
    def from_storage(cls, data: Mapping[str, Any]) -> MountRecord:
        """Rebuild a record; raises ValueError (or KeyError/TypeError) on anything malformed."""
        if data.get("schema") != _SCHEMA:
            raise ValueError(f"unknown schema {data.get('schema')!r}")
        pod = data["pod"]
        objects = tuple(
            ObjectSpec(
                secret_namespace=_str(o["secretNamespace"]),
                secret_name=_str(o["secretName"]),
                key=_opt_str(o.get("key")),
                file_name=_opt_str(o.get("fileName")),
                mode=_opt_int(o.get("mode")),
            )
            for o in data["objects"]
        )
        target = _str(data["targetPath"])
        if not target.startswith("/") or not objects:
            raise ValueError("record has no absolute target path or no objects")
        return cls(
            target_path=target,
            pod=VerifiedPod(
                namespace=_str(pod["namespace"]),
                name=_str(pod["name"]),
                uid=_str(pod["uid"]),
                service_account=_str(pod["serviceAccount"]),
            ),
            objects=objects,
            permission=int(data["permission"]),
            secret_provider_class=_str(data.get("secretProviderClass", "")),
            versions=tuple((_str(i), _str(v)) for i, v in data.get("versions", [])),
            missing=tuple(_str(m) for m in data.get("missing", [])),
            denied=bool(data.get("denied", False)),
            failing=_str(data.get("failing", "")),
        )


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("expected a string")
    return value


def _opt_str(value: Any) -> str | None:
    return None if value is None else _str(value)


def _opt_int(value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError("expected an integer")
    return value


def record_file_name(target_path: str) -> str:
    """The record's file name: a hash of the target path (fixed length, no slashes)."""
    return hashlib.sha256(target_path.encode()).hexdigest()[:40] + _SUFFIX


class Registry:
    """Records by target path, with an index from Secret to the targets that read it.

    Thread-safe: Mount handlers and rotation workers use it concurrently. Disk writes happen
    outside the lock; callers serialise writes per target (the rotator's target lock).
    """

    def __init__(self, state_dir: Path) -> None:
        self._dir = state_dir / MOUNTS_DIR
        self._lock = threading.Lock()
        self._records: dict[str, MountRecord] = {}
        self._by_secret: dict[tuple[str, str], set[str]] = {}
        self._dirty: set[str] = set()

    # -- loading --------------------------------------------------------------------------

    def load(self) -> int:
        """Read every record from disk; skip (and log) those that do not parse. Returns the count."""
        self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        loaded = 0
        for entry in sorted(os.listdir(self._dir)):
            path = self._dir / entry
            if entry.endswith(_TMP_SUFFIX):
                path.unlink(missing_ok=True)  # a write that crashed before its rename
                continue
            if not entry.endswith(_SUFFIX):
                continue
            try:
                record = MountRecord.from_storage(json.loads(path.read_bytes()))
                if record_file_name(record.target_path) != entry:
                    raise ValueError("file name does not match the target path")
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning(
                    "skipping unreadable mount record",
                    extra={"record": entry, "error": type(exc).__name__},
                )
                continue
            self._index(record)
            loaded += 1
        return loaded

    # -- queries --------------------------------------------------------------------------

    def get(self, target_path: str) -> MountRecord | None:
        with self._lock:
            return self._records.get(target_path)

    def targets_for(self, namespace: str, name: str) -> list[str]:
        with self._lock:
            return sorted(self._by_secret.get((namespace, name), ()))

    def targets(self) -> list[str]:
        with self._lock:
            return sorted(self._records)

    def pod_secrets(self) -> set[tuple[str, str, str]]:
        """(pod uid, namespace, name) for every Secret a registered volume reads."""
        with self._lock:
            records = list(self._records.values())
        return {(r.pod.uid, ns, name) for r in records for ns, name in r.secrets()}

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)

    # -- changes --------------------------------------------------------------------------

    def put(self, record: MountRecord, *, durable: bool = True) -> None:
        """Store ``record`` (replacing any record for its target); on disk now, or at the next flush."""
        if durable:
            self._write(record)
            with self._lock:
                self._dirty.discard(record.target_path)
        self._index(record)
        if not durable:
            with self._lock:
                self._dirty.add(record.target_path)

    def flush(self, *, guard: Callable[[str], AbstractContextManager[None]] | None = None) -> int:
        """Write every record changed with ``durable=False`` since the last flush; return how many.

        ``guard(target)`` is held around each write (the rotator's target lock), so a flush
        cannot rename an older record over one a rotation worker just wrote. A record that
        fails to write stays dirty.
        """
        with self._lock:
            dirty, self._dirty = self._dirty, set()
        written = 0
        for target in sorted(dirty):
            with guard(target) if guard is not None else nullcontext():
                record = self.get(target)
                if record is None:
                    continue
                try:
                    self._write(record, sync_dir=False)
                except OSError:
                    with self._lock:
                        self._dirty.update(t for t in dirty if t in self._records)
                    raise
                written += 1
        if written:
            self._sync_dir()  # one directory fsync for the whole batch of renames
        return written

    def remove(self, target_path: str) -> bool:
        """Forget a target; False when it was not registered."""
        with self._lock:
            old = self._records.pop(target_path, None)
            self._dirty.discard(target_path)
            if old is not None:
                self._unindex(old)
        (self._dir / record_file_name(target_path)).unlink(missing_ok=True)
        return old is not None

    def _index(self, record: MountRecord) -> None:
        with self._lock:
            old = self._records.get(record.target_path)
            if old is not None:
                self._unindex(old)
            self._records[record.target_path] = record
            for key in record.secrets():
                self._by_secret.setdefault(key, set()).add(record.target_path)

    def _unindex(self, record: MountRecord) -> None:
        for key in record.secrets():
            targets = self._by_secret.get(key)
            if targets is not None:
                targets.discard(record.target_path)
                if not targets:
                    del self._by_secret[key]

    def _write(self, record: MountRecord, *, sync_dir: bool = True) -> None:
        """temp + fsync + rename + fsync(dir): a crash leaves the old record or the new one."""
        self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        name = record_file_name(record.target_path)
        tmp = self._dir / f"{name}.{threading.get_ident()}{_TMP_SUFFIX}"
        data = json.dumps(record.for_storage(), separators=(",", ":"), sort_keys=True).encode()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, self._dir / name)
        if sync_dir:
            self._sync_dir()

    def _sync_dir(self) -> None:
        dfd = os.open(self._dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
