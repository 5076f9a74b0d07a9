"""openat2 with RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS, and open_beneath with and without it."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from csi_vso.provider import atomic_writer, openat2
from csi_vso.provider.atomic_writer import UnsafeTargetError, open_beneath

_UNAVAILABLE = "openat2 is refused here (kernel before 5.6, or seccomp): open_beneath walks instead"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """root/a/b/c (directories), root/a/file, root/a/up -> .. , root/a/out -> /tmp, root/a/link -> b."""
    (tmp_path / "a" / "b" / "c").mkdir(parents=True)
    (tmp_path / "a" / "file").write_bytes(b"x")
    (tmp_path / "a" / "link").symlink_to("b")
    (tmp_path / "a" / "out").symlink_to("/tmp")
    (tmp_path / "a" / "dangling").symlink_to("missing")
    return tmp_path


@pytest.fixture
def root_fd(tree: Path) -> Iterator[int]:
    fd = os.open(tree, os.O_RDONLY | os.O_DIRECTORY)
    yield fd
    os.close(fd)


def _same_dir(fd: int, path: Path) -> bool:
    st, expected = os.fstat(fd), os.stat(path)
    return (st.st_dev, st.st_ino) == (expected.st_dev, expected.st_ino)


def _openat2(root_fd: int, relative: str) -> int:
    fd = openat2.open_dir_beneath(root_fd, relative)
    if fd is None:
        pytest.skip(_UNAVAILABLE)
    return fd


def test_opens_a_directory_beneath(tree: Path, root_fd: int) -> None:
    fd = _openat2(root_fd, "a/b/c")
    try:
        assert _same_dir(fd, tree / "a" / "b" / "c")
        assert os.get_inheritable(fd) is False
    finally:
        os.close(fd)


@pytest.mark.parametrize(
    ("relative", "code"),
    [
        ("a/link/c", errno.ELOOP),  # a symlinked parent
        ("a/out/x", errno.ELOOP),  # one pointing out of root
        # The last component: O_NOFOLLOW leaves the link itself, which is no directory.
        ("a/link", errno.ENOTDIR),
        ("a/dangling", errno.ENOTDIR),
        ("a/out", errno.ENOTDIR),
        ("a/file/x", errno.ENOTDIR),
        ("a/file", errno.ENOTDIR),
        ("a/missing", errno.ENOENT),
        ("a/../../etc", errno.EXDEV),  # leaving root
        ("/etc", errno.EXDEV),
    ],
)
def test_refuses_what_the_component_walk_refuses(root_fd: int, relative: str, code: int) -> None:
    os.close(_openat2(root_fd, "a"))
    with pytest.raises(OSError) as raised:
        openat2.open_dir_beneath(root_fd, relative)
    assert raised.value.errno == code


@pytest.fixture(params=["openat2", "walk"])
def way(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """open_beneath through openat2, and with it unavailable (the fallback walk)."""
    if request.param == "walk":
        monkeypatch.setattr(openat2, "_available", False)
    return str(request.param)


def test_open_beneath_opens_the_same_directory_either_way(tree: Path, way: str) -> None:
    fd = open_beneath(tree, tree / "a" / "b" / "c")
    try:
        assert _same_dir(fd, tree / "a" / "b" / "c")
    finally:
        os.close(fd)


@pytest.mark.parametrize(
    ("relative", "error", "message"),
    [
        ("a/link/c", UnsafeTargetError, "'link' is not a directory (or is a symlink)"),
        ("a/dangling", UnsafeTargetError, "'dangling' is not a directory (or is a symlink)"),
        ("a/file", UnsafeTargetError, "'file' is not a directory (or is a symlink)"),
        ("a/missing/c", FileNotFoundError, "No such file or directory"),
    ],
)
def test_open_beneath_names_the_component_at_fault_either_way(
    tree: Path, way: str, relative: str, error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as raised:
        open_beneath(tree, tree / relative)
    assert message in str(raised.value)


def test_open_beneath_with_openat2_makes_one_open_below_root(
    tree: Path, root_fd: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The point of openat2: one call instead of an open and a close per component."""
    os.close(_openat2(root_fd, "a"))
    opens: list[object] = []
    real_open = os.open

    def counting_open(*args: object, **kwargs: object) -> int:
        opens.append(args[0])
        return real_open(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(atomic_writer.os, "open", counting_open)
    os.close(open_beneath(tree, tree / "a" / "b" / "c"))
    assert opens == [tree]  # root only; the rest was the single openat2
