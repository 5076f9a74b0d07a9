"""Write a set of files into a volume so that readers see the old set or the new set, never a mix.

This is the kubelet's ``..data`` layout, which tools that watch ``..data`` already understand::

    target/
      ..2026_11_27_23_50_01.k3j9x2/     the files of one version (nested paths allowed)
        password
        db/user
      ..data -> ..2026_11_27_23_50_01.k3j9x2
      password -> ..data/password     one symlink per top-level name
      db -> ..data/db

A reader that opens ``target/password`` resolves ``..data`` once, inside one ``open(2)``, so it
gets either the whole old file or the whole new one. A reader that needs several files from one
version reads ``..data`` (``readlink``) before and after and retries when it moved.

The volume is writable by whoever else can reach it, so nothing here follows a symlink it did
not create: the target itself is opened beneath a trusted ``root`` (the kubelet dir) with no
symlink followed in any component (:func:`open_beneath`), so a symlink swapped in for any
parent directory is refused, not followed; every step then works relative
to that directory file descriptor, files are created with ``O_EXCL | O_NOFOLLOW`` inside a
directory this module just made, and existing entries are inspected with ``lstat`` before they
are touched or removed.
An entry this module did not create is never removed; one that is in the way raises
:class:`UnsafeTargetError`. The writer only writes into a target that is empty or carries its
marker ``..csi-vso`` (left by its first write): a kubelet secret volume, or any other
directory with a ``..data`` of someone else's, is refused rather than taken over, and
cleanup (:func:`remove_all`, :func:`sweep`) does nothing in a target without the marker.

The replaced version directory is not removed at the swap but a grace period later (by the next
write or by :func:`sweep`). Opening ``target/name`` walks ``name`` -> ``..data`` -> the version
directory -> the file inside the kernel, and a reader preempted in that walk just before the swap
would find the old file already unlinked and fail with ENOENT if the old directory went at once
(the torn-read test saw exactly this on 2 busy cores). Readers that resolved the old directory
finish their walk in microseconds; a grace of a second keeps every such open whole, while the old
contents stay reachable only through the same volume, by whoever could already read them.

Concurrent writers to one target are serialised in two steps. Within the process (a Mount
republish racing a rotation) by a lock per target path. Across processes (a restarted provider
racing an old one) by ``flock(2)`` on the target directory, waited for at most ``lock_wait``
seconds (:data:`LOCK_WAIT_SECONDS` by default; the rotation does not wait at all and retries
later): the directory is the root of the pod's volume, so the pod itself can open it and hold
a flock on it forever. A blocking wait would let a tenant park the node's rotation writer on
its volume; a bounded one fails that volume's write with :class:`TargetBusyError`.

Only the functions here touch the volume; the rest of the provider hands over plain
:class:`FileToWrite` values (the protobuf ``File`` is converted before it gets here).
"""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
import stat
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from csi_vso.provider import openat2
from csi_vso.provider.keyed_locks import KeyedLocks
from csi_vso.provider.limits import MAX_NAME_BYTES, MAX_PATH_BYTES, MAX_PATH_DEPTH, MAX_REPLACED_VERSIONS

DATA_LINK = "..data"
GRACE_SECONDS = 1.0
#: How long a write waits for another process's flock on the target (a provider's own write
#: holds it for milliseconds; anything longer is someone else's, maybe the pod's).
LOCK_WAIT_SECONDS = 0.25
_LOCK_POLL_SECONDS = 0.005
_PROCESS_LOCKS = KeyedLocks()  # this process's writers, one lock per target path
TEMP_DATA_LINK = "..data_tmp"
#: An empty file the first write leaves in the target: "this layout is the writer's own".
MARKER = "..csi-vso"
#: Where targets are opened from when the caller gives no root: every component is checked.
FILESYSTEM_ROOT = Path("/")
_DIR_MODE = 0o755


@dataclass(frozen=True)
class FileToWrite:
    """One file of the payload: a relative path (may contain ``/``), its mode and its bytes."""

    path: str
    mode: int
    contents: bytes

    def __repr__(self) -> str:
        # Never let a secret reach a log line or a traceback through repr().
        return (
            f"FileToWrite(path={self.path!r}, mode={oct(self.mode)}, contents=<{len(self.contents)} bytes>)"
        )


@dataclass(frozen=True)
class WriteResult:
    """What a write did. ``changed`` is False when the volume already held exactly this payload."""

    changed: bool
    data_dir: str
    leftovers_removed: int = 0


class AtomicWriteError(Exception):
    """Base of the writer's errors; messages name paths, never contents."""


class InvalidPayloadError(AtomicWriteError, ValueError):
    """The payload itself is wrong (bad paths, duplicates, a file where a directory must be)."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


class UnsafeTargetError(AtomicWriteError):
    """The target holds something the writer did not create where it must write (e.g. a planted symlink)."""


class TargetBusyError(AtomicWriteError):
    """Another process holds flock(2) on the target for longer than a write takes (see the module
    docstring); nothing was written. Safe to retry."""


class NotMountedError(AtomicWriteError):
    """The target was required to be a mounted volume and is a plain directory of its parent's filesystem.

    On a node the driver mounts a tmpfs exactly at the target before Mount and unmounts it at
    teardown; a plain directory there means the tmpfs is gone (or never came), and writing would
    put secrets onto the node's disk and keep kubelet from removing the directory.
    """


# ---------------------------------------------------------------------------------------------
# Pure validation


def validate_relative_path(path: str) -> list[str]:
    """Return every problem with ``path`` as a payload path, in words; empty when it is fine.

    The rules:
      1. not empty;
      2. no NUL byte (the kernel would cut the name there);
      3. not absolute (it must stay under the target);
      4. at most 4096 bytes (PATH_MAX);
      5. no empty element (``a//b``, a trailing ``/``);
      6. no ``.`` or ``..`` element (``..`` escapes the target, ``.`` makes two spellings of one file);
      7. every element at most 255 bytes (NAME_MAX);
      8. the first element does not start with ``..`` (reserved for ``..data`` and the version dirs);
      9. valid UTF-8: no lone surrogate (JSON's ``"\ud800"``), which would become a file name
         that is not UTF-8, or no file at all, and could not travel back in a response;
     10. at most :data:`MAX_PATH_DEPTH` elements.
    """
    if path == "":
        return [f"path {path!r} is empty"]
    problems: list[str] = []
    if "\x00" in path:
        problems.append(f"path {path!r} contains a NUL byte")
    if not is_utf8(path):
        problems.append(f"path {path!r} is not valid UTF-8 (it holds a lone surrogate)")
    if path.startswith("/"):
        problems.append(f"path {path!r} is absolute")
    if len(path.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        problems.append(f"path {path[:40]!r}... is longer than {MAX_PATH_BYTES} bytes")
    elements = path.split("/")
    if path.startswith("/"):
        elements = elements[1:]
    if any(e == "" for e in elements):
        problems.append(f"path {path!r} has an empty element")
    if any(e == ".." for e in elements):
        problems.append(f"path {path!r} contains a '..' element")
    if any(e == "." for e in elements):
        problems.append(f"path {path!r} contains a '.' element")
    if any(len(e.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES for e in elements):
        problems.append(f"path {path[:40]!r}... has an element longer than {MAX_NAME_BYTES} bytes")
    if elements and elements[0].startswith("..") and elements[0] != "..":
        problems.append(f"path {path!r} starts with '..', which is reserved for the writer")
    if len(elements) > MAX_PATH_DEPTH:
        problems.append(f"path {path[:40]!r}... is nested deeper than {MAX_PATH_DEPTH} levels")
    return problems


def is_utf8(text: str) -> bool:
    """Whether ``text`` encodes as UTF-8 (Python strings from JSON may hold lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def validate_payload(files: Sequence[FileToWrite], checkpoint: Callable[[], None] | None = None) -> list[str]:
    """Every problem with a whole payload: each path's, duplicates, a file used as a directory, modes.

    ``checkpoint`` is called per file (the rotation lets small volumes go first there).
    """
    problems: list[str] = []
    seen: set[str] = set()
    for f in files:
        if checkpoint is not None:
            checkpoint()
        path_problems = validate_relative_path(f.path)
        problems.extend(path_problems)
        if not path_problems:
            if f.path in seen:
                problems.append(f"path {f.path!r} appears more than once")
            seen.add(f.path)
        if not 0 <= f.mode <= 0o7777:
            problems.append(f"path {f.path!r} has invalid mode {f.mode!r}")
    for p in sorted(seen):
        parts = p.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if parent in seen:
                problems.append(f"path {parent!r} is a file but {p!r} needs it to be a directory")
    return problems


def top_level_names(files: Sequence[FileToWrite]) -> set[str]:
    """The names that appear directly in the target as symlinks into ``..data``."""
    return {f.path.split("/", 1)[0] for f in files}


# ---------------------------------------------------------------------------------------------
# The write


def write_atomically(
    target_dir: Path,
    files: Sequence[FileToWrite],
    *,
    grace: float = GRACE_SECONDS,
    known_changed: bool = False,
    require_mount: bool = False,
    checkpoint: Callable[[], None] | None = None,
    root: Path = FILESYSTEM_ROOT,
    adopt: bool = False,
    lock_wait: float = LOCK_WAIT_SECONDS,
) -> WriteResult:
    """Make ``target_dir`` hold exactly ``files``; readers see the old set or the new one.

    Steps (the code below carries the same numbers):
      1. Validate the payload; report every problem at once (InvalidPayloadError).
      2. Open the target beneath ``root``, every component with O_DIRECTORY|O_NOFOLLOW (a
         symlinked target or parent is refused), and take an exclusive flock on it, so
         concurrent writers to one target run one after another. It must be empty or carry
         the writer's marker (else UnsafeTargetError); an empty one gets the marker. With
         ``require_mount``, refuse (NotMountedError) unless the opened directory is the root of
         a mount (:func:`is_mount_root`). Checked on the held fd, so it cannot go stale: the
         writes below land in the directory that was checked, and a mount we hold an fd in
         cannot be unmounted under us except lazily, which still leaves our writes in its tmpfs.
      3. Remove leftovers: whatever sits at ``..data_tmp`` (a crashed write's symlink, or
         anything planted there: the name is the writer's own), and every ``..*``
         directory ``..data`` does not point to (crashed writes, replaced versions) once the last
         swap is more than ``grace`` seconds old (see the module docstring); inside the grace
         period, all but the newest :data:`MAX_REPLACED_VERSIONS` replaced ones.
      4. Check every top-level name: it must be absent or our own symlink ``..data/<name>``;
         anything else (a planted symlink, a file, a directory) raises UnsafeTargetError before
         anything is written.
      5. Compare the payload with the directory ``..data`` points to (bytes, modes, exact file set,
         read without following symlinks). When equal, only create missing top-level symlinks and
         return changed=False: unchanged files keep their mtime. Skipped when the caller says
         ``known_changed`` (rotation knows from the versions; reading every file back costs more
         than the write).
      6. Create a new ``..<timestamp>.<random>`` directory and write every file into it with
         O_CREAT|O_EXCL|O_NOFOLLOW, then fchmod to the exact mode (the process umask applied at
         creation would otherwise strip bits), then fsync each file and each new directory.
      7. Create the top-level symlinks for new names *before* the swap. Until the swap they
         dangle, which to a reader is the same as absent, so the visible set is still the old one.
      8. Point a temporary symlink ``..data_tmp`` at the new directory and rename(2) it over
         ``..data``: the one atomic step that switches every visible name at once. fsync the target.
      9. Remove top-level symlinks of ours whose names the new payload no longer has.
     10. Leave the replaced version directory: step 3 of a later write, or sweep(), removes it
         after the grace period.
    A crash before step 8 leaves the old set whole (plus leftovers removed by step 3 next time); a
    crash after it leaves the new set whole (plus dangling names and the old directory, also
    removed next time).

    ``checkpoint`` is called per file or directory entry in every step that loops over them
    (1, 3, 4, 6, 7, 9), under the target's lock: the rotation pauses big rewrites there while
    small volumes rotate. ``adopt`` claims a target that has
    no marker but is not empty: only for a target the caller knows it wrote (the rotation's
    registry), such as a volume written before the marker existed.
    """
    # 1. Validate the payload.
    problems = validate_payload(files, checkpoint)
    if problems:
        raise InvalidPayloadError(problems)
    wanted = {f.path: f for f in files}
    names = top_level_names(files)

    # 2. Open the target without following a symlink, and lock it.
    with _locked(open_beneath(root, target_dir), target_dir, lock_wait) as dfd:
        if require_mount and not is_mount_root(dfd):
            raise NotMountedError(not_mounted_message(target_dir))
        _claim(dfd, target_dir, adopt=adopt)
        current = _current_data_dir(dfd, target_dir)
        # 3. Remove leftovers of a crashed write.
        removed = _remove_leftovers(
            dfd, keep=current, grace=grace, checkpoint=checkpoint, replaced_room=MAX_REPLACED_VERSIONS - 1
        )
        # 4. Every top-level name must be absent or our own symlink.
        missing_links = _check_top_level(dfd, target_dir, names, checkpoint)
        # 5. Nothing changed: repair missing links only, keep mtimes.
        if current is not None and not known_changed and _dir_matches(dfd, current, wanted):
            for name in sorted(missing_links):
                os.symlink(f"{DATA_LINK}/{name}", name, dir_fd=dfd)
            if missing_links:
                os.fsync(dfd)
            return WriteResult(changed=False, data_dir=current, leftovers_removed=removed)
        # 6. Write the new version directory.
        new_dir = _make_version_dir(dfd)
        _write_tree(dfd, new_dir, files, checkpoint)
        # 7. New top-level names before the swap (dangling = absent until step 8).
        for name in sorted(missing_links):
            if checkpoint is not None:
                checkpoint()
            os.symlink(f"{DATA_LINK}/{name}", name, dir_fd=dfd)
        # 8. The swap.
        os.symlink(new_dir, TEMP_DATA_LINK, dir_fd=dfd)
        os.rename(TEMP_DATA_LINK, DATA_LINK, src_dir_fd=dfd, dst_dir_fd=dfd)
        os.fsync(dfd)
        # 9. Stale top-level names.
        _remove_stale_links(dfd, keep=names, checkpoint=checkpoint)
        # 10. The replaced directory stays for the grace period.
        return WriteResult(changed=True, data_dir=new_dir, leftovers_removed=removed)


def is_mount_root(dfd: int) -> bool:
    """Whether the directory open as ``dfd`` is the root of a mount: its device differs from its parent's.

    ``..`` is resolved from the fd, so it is the parent of that very directory (across the mount
    boundary when it is a mount root). Two stats, no /proc parsing. A bind mount of the same
    filesystem keeps the device and reads as not mounted; the driver mounts a tmpfs, which
    always has a device of its own.
    """
    return os.fstat(dfd).st_dev != os.stat("..", dir_fd=dfd, follow_symlinks=False).st_dev


def is_mounted_target(target_dir: Path, *, root: Path = FILESYSTEM_ROOT) -> bool:
    """:func:`is_mount_root` for a path (opened without following a symlink); False when missing."""
    try:
        dfd = open_beneath(root, target_dir)
    except (FileNotFoundError, UnsafeTargetError):
        return False
    try:
        return is_mount_root(dfd)
    finally:
        os.close(dfd)


def not_mounted_message(target_dir: Path) -> str:
    """The words for a target that is not a mounted volume (a path only, never content)."""
    return f"target_path {target_dir} is not a mounted volume; refusing to write secrets onto the node's disk"


def remove_all(
    target_dir: Path,
    *,
    root: Path = FILESYSTEM_ROOT,
    adopt: bool = False,
    lock_wait: float = LOCK_WAIT_SECONDS,
) -> int:
    """Remove everything the writer created in ``target_dir`` (access revoked); return the count.

    Visible names go first so readers stop finding files immediately, then ``..data``, then the
    version directories. Entries the writer did not create are left alone; the target directory
    itself belongs to the driver and stays, and so does the marker (a later write may serve the
    volume again). A missing target, or one without the marker, is not an error: nothing of
    the writer's is there to remove (``adopt``: the caller knows it wrote there, see
    :func:`write_atomically`).
    """
    try:
        dfd = open_beneath(root, target_dir)
    except FileNotFoundError:
        return 0
    with _locked(dfd, target_dir, lock_wait):
        if not adopt and not _has_marker(dfd):
            return 0
        count = _remove_stale_links(dfd, keep=set())
        if _is_link(dfd, DATA_LINK):
            os.unlink(DATA_LINK, dir_fd=dfd)
            count += 1
        count += _remove_leftovers(dfd, keep=None, grace=0.0)
        os.fsync(dfd)
        return count


@dataclass(frozen=True)
class SweepResult:
    """What a sweep did: ``removed`` entries, and ``retry_after`` seconds until the replaced
    version directories it had to leave (inside the grace period) may go; None when none is left."""

    removed: int
    retry_after: float | None


def sweep(
    target_dir: Path,
    *,
    grace: float = GRACE_SECONDS,
    root: Path = FILESYSTEM_ROOT,
    checkpoint: Callable[[], None] | None = None,
    lock_wait: float = LOCK_WAIT_SECONDS,
) -> SweepResult:
    """Remove replaced version directories and crash leftovers once the grace period has passed.

    A missing target is not an error (nothing to remove). The rotation calls this a grace
    period after a write and again after ``retry_after`` until nothing is left: a second write
    inside the grace period restarts it, and old versions must not wait for a third write.
    """
    try:
        dfd = open_beneath(root, target_dir)
    except FileNotFoundError:
        return SweepResult(0, None)
    with _locked(dfd, target_dir, lock_wait):
        if not _has_marker(dfd):
            return SweepResult(0, None)
        current = _current_data_dir(dfd, target_dir)
        count = _remove_leftovers(dfd, keep=current, grace=grace, checkpoint=checkpoint)
        if count:
            os.fsync(dfd)
        left = [name for name in _version_dirs(dfd) if name != current]
        retry_after = max(0.0, grace - _swap_age(dfd)) if left else None
        return SweepResult(count, retry_after)


def read_current(target_dir: Path, *, root: Path = FILESYSTEM_ROOT) -> dict[str, tuple[int, bytes]] | None:
    """The payload ``..data`` points to, as {path: (mode, bytes)}; None when nothing was written.

    For tests and diagnostics: it reads without following symlinks, like step 5 of the write.
    """
    try:
        dfd = open_beneath(root, target_dir)
    except FileNotFoundError:
        return None
    try:
        current = _current_data_dir(dfd, target_dir)
        if current is None:
            return None
        return dict(_read_tree(dfd, current))
    finally:
        os.close(dfd)


# ---------------------------------------------------------------------------------------------
# Steps, each working relative to the locked target's directory fd


def open_beneath(root: Path, target_dir: Path) -> int:
    """Open ``target_dir``, a directory beneath ``root``, following no symlink below ``root``.

    ``root`` itself is opened normally: it is the operator's choice (``--kubelet-dir``, which may
    be a symlink on some distributions). Below it no symlink is followed, so one anywhere on the
    way, also one swapped in after the Mount, raises UnsafeTargetError instead of leading
    elsewhere. Where the kernel has it, one ``openat2`` with RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS
    applies that rule to the whole path (:mod:`csi_vso.provider.openat2`); otherwise, and to
    name the component at fault when it refuses, every component is opened relative to its
    parent's fd with O_DIRECTORY|O_NOFOLLOW. A missing component raises FileNotFoundError.
    """
    try:
        parts = target_dir.relative_to(root).parts
    except ValueError:
        raise UnsafeTargetError(f"target {str(target_dir)!r} is not beneath {str(root)!r}") from None
    if any(part in (".", "..") for part in parts):
        raise UnsafeTargetError(f"target {str(target_dir)!r} has a '.' or '..' component")
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if parts:
            try:
                whole = openat2.open_dir_beneath(fd, "/".join(parts))
            except OSError:
                whole = None  # the walk below says which component is at fault
            if whole is not None:
                os.close(fd)
                return whole
        for part in parts:
            try:
                child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise UnsafeTargetError(
                        f"target {str(target_dir)!r}: {part!r} is not a directory (or is a symlink)"
                    ) from e
                raise
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def _has_marker(dfd: int) -> bool:
    try:
        return stat.S_ISREG(os.stat(MARKER, dir_fd=dfd, follow_symlinks=False).st_mode)
    except FileNotFoundError:
        return False


def _claim(dfd: int, target_dir: Path, *, adopt: bool = False) -> None:
    """Step 2's ownership rule: the target carries the marker, or is empty (or adopted) and gets it now."""
    if _has_marker(dfd):
        return
    foreign = sorted(os.listdir(dfd))
    if foreign and not adopt:
        shown = "; ".join(
            f"{str(target_dir / name)!r} exists and was not created by the writer" for name in foreign[:3]
        )
        more = f" (and {len(foreign) - 3} more)" if len(foreign) > 3 else ""
        raise UnsafeTargetError(f"{shown}{more}: the target is neither empty nor the writer's own")
    fd = os.open(
        MARKER, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o444, dir_fd=dfd
    )
    os.close(fd)


@contextmanager
def _locked(dfd: int, target_dir: Path, wait: float) -> Iterator[int]:
    """Own ``dfd`` (closed at the end, which releases the flock): this process's lock for the
    target, then an exclusive flock on it within ``wait`` seconds (else TargetBusyError)."""
    try:
        with _PROCESS_LOCKS.hold(str(target_dir)):
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(dfd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise TargetBusyError(
                            f"target {str(target_dir)!r} is locked (flock) by another process"
                            + (f" for more than {wait:g}s" if wait > 0 else "")
                            + "; nothing was written"
                        ) from None
                    time.sleep(_LOCK_POLL_SECONDS)
            yield dfd
    finally:
        os.close(dfd)


def _is_link(dfd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dfd, follow_symlinks=False).st_mode)
    except FileNotFoundError:
        return False


def _is_version_dir_name(name: str) -> bool:
    return name.startswith("..") and "/" not in name and name not in ("..", DATA_LINK, TEMP_DATA_LINK, MARKER)


def _current_data_dir(dfd: int, target_dir: Path) -> str | None:
    """Where ``..data`` points, or None when it does not exist. Anything unexpected is refused."""
    try:
        st = os.stat(DATA_LINK, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if not stat.S_ISLNK(st.st_mode):
        raise UnsafeTargetError(f"{str(target_dir / DATA_LINK)!r} exists and is not a symlink")
    dest = os.readlink(DATA_LINK, dir_fd=dfd)
    if not _is_version_dir_name(dest):
        raise UnsafeTargetError(f"{str(target_dir / DATA_LINK)!r} points outside the writer's directories")
    try:
        dst = os.stat(dest, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        return None  # dangling: treat as never written; the swap will replace it
    if not stat.S_ISDIR(dst.st_mode):
        raise UnsafeTargetError(f"{str(target_dir / dest)!r} is not a directory")
    return dest


def _swap_age(dfd: int) -> float:
    """Seconds since ``..data`` was last renamed into place (infinite when there is none)."""
    try:
        st = os.stat(DATA_LINK, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        return float("inf")
    return time.time() - max(st.st_mtime, st.st_ctime)


def _version_dirs(dfd: int) -> list[str]:
    """The version directories in the target (by name and type, without following anything)."""
    return [
        name
        for name in os.listdir(dfd)
        if _is_version_dir_name(name)
        and stat.S_ISDIR(os.stat(name, dir_fd=dfd, follow_symlinks=False).st_mode)
    ]


def _remove_leftovers(
    dfd: int,
    *,
    keep: str | None,
    grace: float,
    checkpoint: Callable[[], None] | None = None,
    replaced_room: int = MAX_REPLACED_VERSIONS,
) -> int:
    """Step 3: the temporary link, then replaced versions past their grace period, and inside
    it all but the newest :data:`MAX_REPLACED_VERSIONS` (a volume rewritten faster than its
    grace period would otherwise pile versions up in the node's memory until sweeps caught up:
    its tmpfs pages are charged to the provider). A write passes ``replaced_room`` one lower:
    the version it keeps now is replaced by the write itself."""
    count = 0
    old_dirs_ok = grace <= 0 or _swap_age(dfd) >= grace
    recent: list[tuple[int, str]] = []  # (mtime, name) of replaced versions inside the grace period
    for name in os.listdir(dfd):
        if name == TEMP_DATA_LINK:
            # The writer's own temporary name: whatever is there (a crash's symlink, or a
            # directory or file planted to wedge step 8) goes, or no write could ever swap again.
            _remove_entry(dfd, name)
            count += 1
        elif _is_version_dir_name(name) and name != keep:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            if not stat.S_ISDIR(st.st_mode):
                continue
            if old_dirs_ok:
                _remove_version_dir(dfd, name, checkpoint)
                count += 1
            else:
                recent.append((st.st_mtime_ns, name))  # names break ties within a clock tick
    for _, name in sorted(recent)[: max(0, len(recent) - replaced_room)]:
        _remove_version_dir(dfd, name, checkpoint)  # oldest first
        count += 1
    return count


def _check_top_level(
    dfd: int, target_dir: Path, names: set[str], checkpoint: Callable[[], None] | None = None
) -> set[str]:
    """Refuse anything in the way; return the names whose symlink does not exist yet."""
    missing: set[str] = set()
    problems: list[str] = []
    for name in sorted(names):
        if checkpoint is not None:
            checkpoint()
        try:
            link: str | None = os.readlink(name, dir_fd=dfd)  # never follows: it reads the link
        except FileNotFoundError:
            missing.add(name)
            continue
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            link = None  # there, and not a symlink
        if link != f"{DATA_LINK}/{name}":
            problems.append(f"{str(target_dir / name)!r} exists and was not created by the writer")
    if problems:
        raise UnsafeTargetError("; ".join(problems))
    return missing


def _read_tree(dfd: int, rel: str) -> Iterator[tuple[str, tuple[int, bytes]]]:
    """Yield (path, (mode, bytes)) for every regular file under ``rel``; refuse anything else."""
    sub = os.open(rel, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
    try:
        yield from _read_tree_fd(sub, "")
    finally:
        os.close(sub)


def _read_tree_fd(fd: int, prefix: str) -> Iterator[tuple[str, tuple[int, bytes]]]:
    for name in sorted(os.listdir(fd)):
        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        path = f"{prefix}{name}"
        if stat.S_ISDIR(st.st_mode):
            sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            try:
                yield from _read_tree_fd(sub, path + "/")
            finally:
                os.close(sub)
        elif stat.S_ISREG(st.st_mode):
            ffd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            try:
                yield path, (stat.S_IMODE(st.st_mode), _read_all(ffd, st.st_size))
            finally:
                os.close(ffd)
        else:
            raise _Mismatch(path)


class _Mismatch(Exception):
    """Something in a version directory the writer would never have put there."""


def _read_all(fd: int, size_hint: int) -> bytes:
    chunks: list[bytes] = []
    while True:
        chunk = os.read(fd, max(size_hint, 65536))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _dir_matches(dfd: int, rel: str, wanted: dict[str, FileToWrite]) -> bool:
    try:
        seen = 0
        for path, (mode, data) in _read_tree(dfd, rel):
            f = wanted.get(path)
            if f is None or f.mode != mode or f.contents != data:
                return False
            seen += 1
        return seen == len(wanted)
    except (_Mismatch, OSError):
        return False


def _make_version_dir(dfd: int) -> str:
    """A new ``..<UTC time>.<nanoseconds>.<random>`` directory: names sort by creation time
    (tmpfs mtimes tie within a clock tick), which the cap on replaced versions relies on."""
    now = time.time_ns()
    stamp = time.strftime("%Y_%m_%d_%H_%M_%S", time.gmtime(now // 1_000_000_000))
    while True:
        name = f"..{stamp}.{now % 1_000_000_000:09d}.{secrets.token_hex(4)}"
        try:
            os.mkdir(name, _DIR_MODE, dir_fd=dfd)
        except FileExistsError:
            continue
        _chmod_dir(dfd, name)
        return name


def _chmod_dir(parent_fd: int, name: str) -> None:
    fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
    try:
        os.fchmod(fd, _DIR_MODE)  # mkdir's mode is masked by the umask; readers need r-x
    finally:
        os.close(fd)


def _write_tree(
    dfd: int, new_dir: str, files: Sequence[FileToWrite], checkpoint: Callable[[], None] | None = None
) -> None:
    root = os.open(new_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
    dir_fds: dict[str, int] = {"": root}
    try:
        for f in files:
            if checkpoint is not None:
                checkpoint()
            parent, _, base = f.path.rpartition("/")
            pfd = _ensure_dir(dir_fds, parent)
            fd = os.open(
                base,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o600,
                dir_fd=pfd,
            )
            try:
                view = memoryview(f.contents)
                while view:
                    view = view[os.write(fd, view) :]
                os.fchmod(fd, f.mode)  # exact mode: creation was masked by the umask
                os.fsync(fd)
            finally:
                os.close(fd)
        # Deepest first, so each directory is durable after its entries.
        for rel in sorted(dir_fds, key=len, reverse=True):
            os.fsync(dir_fds[rel])
    finally:
        for fd in dir_fds.values():
            os.close(fd)


def _ensure_dir(dir_fds: dict[str, int], rel: str) -> int:
    """The fd of ``rel`` inside the new version directory, creating missing parents (never following).

    A loop, not recursion: the depth is capped by validation, but no depth may hit Python's
    recursion limit here.
    """
    parts = rel.split("/") if rel else []
    pfd = dir_fds[""]
    for i, base in enumerate(parts):
        sub = "/".join(parts[: i + 1])
        fd = dir_fds.get(sub)
        if fd is None:
            os.mkdir(base, _DIR_MODE, dir_fd=pfd)
            _chmod_dir(pfd, base)
            fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
            dir_fds[sub] = fd
        pfd = fd
    return pfd


def _remove_stale_links(dfd: int, *, keep: set[str], checkpoint: Callable[[], None] | None = None) -> int:
    """Unlink top-level symlinks of ours (``..data/<name>``) whose name is not in ``keep``."""
    count = 0
    for name in os.listdir(dfd):
        if checkpoint is not None:
            checkpoint()
        if name.startswith("..") or name in keep or not _is_link(dfd, name):
            continue
        if os.readlink(name, dir_fd=dfd) == f"{DATA_LINK}/{name}":
            os.unlink(name, dir_fd=dfd)
            count += 1
    return count


def _remove_entry(dfd: int, name: str) -> None:
    """Remove ``name`` whatever it is, never following a symlink (a directory goes with its content)."""
    if stat.S_ISDIR(os.stat(name, dir_fd=dfd, follow_symlinks=False).st_mode):
        _remove_version_dir(dfd, name)
    else:
        os.unlink(name, dir_fd=dfd)


def _remove_version_dir(dfd: int, name: str, checkpoint: Callable[[], None] | None = None) -> None:
    """Remove a directory tree relative to ``dfd``, never following a symlink inside it.

    Our own fd-based walk rather than shutil.rmtree, so that ``checkpoint`` runs before each
    entry (the rotation pauses sweeps of big volumes while small ones rotate). A loop with an
    explicit stack, not recursion: a directory planted at one of the writer's names may be
    nested deeper than Python's recursion limit.
    """
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    stack: list[tuple[int, int, str]] = [(os.open(name, flags, dir_fd=dfd), dfd, name)]  # (fd, parent, name)
    try:
        while stack:
            fd, parent, current = stack[-1]
            subdir = None
            for entry in os.listdir(fd):
                if checkpoint is not None:
                    checkpoint()
                if stat.S_ISDIR(os.stat(entry, dir_fd=fd, follow_symlinks=False).st_mode):
                    subdir = entry
                    break
                os.unlink(entry, dir_fd=fd)
            if subdir is not None:
                stack.append((os.open(subdir, flags, dir_fd=fd), fd, subdir))
                continue
            stack.pop()
            os.close(fd)
            os.rmdir(current, dir_fd=parent)
    finally:
        for fd, _, _ in stack:
            os.close(fd)
