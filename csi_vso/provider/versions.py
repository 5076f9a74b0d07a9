"""Object versions: a keyed MAC per file that changes exactly when the file's content does.

The driver records the versions a Mount returns in the SecretProviderClassPodStatus,
which any user with read access to that CR can see. A plain hash of a short secret is
reversible by guessing, and equal hashes would show that two Secrets hold the same value;
so the version is HMAC-SHA256 under a node-local key, over the object's configuration and
the file's bytes. The configuration is part of the input so that equal contents mounted
from different Secrets (or under different names or modes) still get unrelated versions.

The key lives in the state dir, created once with mode 0600 and reused across restarts so
that a restarted provider reports the same versions for the same content.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Mapping
from pathlib import Path

KEY_FILE = "version-mac.key"
KEY_BYTES = 32
# 128 bits of MAC is plenty to detect change; shorter versions keep the pod status small.
_VERSION_BYTES = 16


def object_version(key: bytes, config: Mapping[str, object], contents: bytes) -> str:
    """The version of one file: hex HMAC of its canonical config and its bytes."""
    mac = hmac.new(key, digestmod=hashlib.sha256)
    config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    # Length-prefix the config so no (config, contents) pair can collide with another split.
    mac.update(len(config_bytes).to_bytes(8, "big"))
    mac.update(config_bytes)
    mac.update(contents)
    return mac.hexdigest()[: _VERSION_BYTES * 2]


def load_or_create_key(state_dir: Path) -> bytes:
    """Read the node's version key, creating it (0600, exactly once even when racing) if absent."""
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = state_dir / KEY_FILE
    for _ in range(50):
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            _create_key(path)
            continue
        if len(data) == KEY_BYTES:
            return data
        raise ValueError(f"{path} holds {len(data)} bytes, expected {KEY_BYTES}; remove it to make a new key")
    raise RuntimeError(f"could not create {path}")  # pragma: no cover - needs 50 lost races


def _create_key(path: Path) -> None:
    """Write the key to a private temp file, then link(2) it into place: readers never see half a key."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, secrets.token_bytes(KEY_BYTES))
        os.fchmod(fd, 0o600)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        with contextlib.suppress(FileExistsError):  # someone else won: use theirs
            os.link(tmp, path)
    finally:
        tmp.unlink()
