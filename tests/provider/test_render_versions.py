"""Rendering Secrets into files, and the keyed versions that describe them."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from csi_vso.provider import versions
from csi_vso.provider.errors import InvalidArgument, NotFound, ResourceExhausted
from csi_vso.provider.render import MAX_TOTAL_BYTES, render
from csi_vso.provider.render import versions as file_versions
from csi_vso.provider.validation import ObjectSpec

DATA = {
    ("team-a", "db"): {"password": b"hunter2", "user": b"app"},
    ("team-a", "tls"): {"tls.crt": b"CERT", "tls.key": b"KEY"},
}


def obj(
    name: str = "db", key: str | None = None, file_name: str | None = None, mode: int | None = None
) -> ObjectSpec:
    return ObjectSpec("team-a", name, key, file_name, mode)


@pytest.mark.parametrize(
    ("objects", "expected"),
    [
        ([obj(key="password")], [("password", 0o644, b"hunter2")]),
        ([obj()], [("password", 0o644, b"hunter2"), ("user", 0o644, b"app")]),
        ([obj(key="password", file_name="db/password", mode=0o400)], [("db/password", 0o400, b"hunter2")]),
        (
            [obj(key="user", file_name="u"), obj("tls", mode=0o600)],
            [("u", 0o644, b"app"), ("tls.crt", 0o600, b"CERT"), ("tls.key", 0o600, b"KEY")],
        ),
    ],
    ids=["one-key", "all-keys", "nested-mode", "mixed"],
)
def test_render(objects: list[ObjectSpec], expected: list[tuple[str, int, bytes]]) -> None:
    files = render(objects, DATA, 0o644)
    assert [(f.path, f.mode, f.contents) for f in files] == expected
    assert all("hunter2" not in repr(f) for f in files)


@pytest.mark.parametrize(
    ("objects", "error", "message"),
    [
        ([obj(key="nope")], NotFound, "key 'nope' not found in protected Secret team-a/db"),
        (
            [obj(), obj(key="password", file_name="user")],
            InvalidArgument,
            "path 'user' appears more than once",
        ),
        (
            [obj(key="password", file_name="user/x"), obj(key="user")],
            InvalidArgument,
            "path 'user' is a file but 'user/x' needs it to be a directory",
        ),
    ],
)
def test_render_errors(objects: list[ObjectSpec], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        render(objects, DATA, 0o644)


def test_render_refuses_more_than_the_driver_can_receive() -> None:
    big = {("team-a", "big"): {"blob": b"x" * (MAX_TOTAL_BYTES // 4)}}
    objects = [ObjectSpec("team-a", "big", "blob", f"f{i}", None) for i in range(4)]
    with pytest.raises(ResourceExhausted, match="over the 4194304-byte limit"):
        render(objects, big, 0o644)
    assert len(render(objects[:3], big, 0o644)) == 3


KEY = bytes(range(32))


def test_rendering_a_whole_secret_offers_a_checkpoint_per_file_in_every_pass() -> None:
    """A bulk volume renders with the rotation's checkpoint: building the files, converting them
    for the writer and validating them each pause per file for small volumes."""
    n = 50
    data = {("team-a", "big"): {f"k{i:03d}": b"v" for i in range(n)}}
    calls: list[int] = []
    files = render([obj("big")], data, 0o644, checkpoint=lambda: calls.append(1))
    assert len(files) == n
    assert len(calls) >= 3 * n, len(calls)


def test_versions_change_iff_content_changes() -> None:
    config = obj(key="password").config()
    v1 = versions.object_version(KEY, config, b"hunter2")
    assert versions.object_version(KEY, config, b"hunter2") == v1
    assert versions.object_version(KEY, config, b"hunter3") != v1
    assert len(v1) == 32 and all(c in "0123456789abcdef" for c in v1)


def test_versions_reveal_nothing_without_the_key() -> None:
    """Equal contents in different Secrets get unrelated versions; so does another node key."""
    same = b"same-value"
    a = versions.object_version(KEY, obj("db", key="k").config(), same)
    b = versions.object_version(KEY, obj("tls", key="k").config(), same)
    c = versions.object_version(bytes(32), obj("db", key="k").config(), same)
    assert len({a, b, c}) == 3
    files = render([obj(key="password")], DATA, 0o644)
    (v,) = file_versions(KEY, files)
    assert v.id == "password"


def test_key_is_created_once_private_and_reused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    results: list[bytes] = []
    threads = [
        threading.Thread(target=lambda: results.append(versions.load_or_create_key(state))) for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1 and len(results[0]) == 32
    key_file = state / versions.KEY_FILE
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert sorted(p.name for p in state.iterdir()) == [versions.KEY_FILE]  # no temp files left
    assert versions.load_or_create_key(state) == results[0]


def test_truncated_key_is_refused(tmp_path: Path) -> None:
    (tmp_path / versions.KEY_FILE).write_bytes(b"short")
    with pytest.raises(ValueError, match="holds 5 bytes, expected 32"):
        versions.load_or_create_key(tmp_path)
