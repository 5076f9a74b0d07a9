"""Linux ``openat2(2)`` for one job: open a directory beneath another without following symlinks.

The provider opens every volume target beneath the kubelet dir with no symlink followed on
the way. Walking the path one ``O_NOFOLLOW`` component at a time does that on any kernel but
costs two syscalls per component (an open and a close): some fourteen for kubelet's
``pods/<uid>/volumes/kubernetes.io~csi/<volume>/mount``, twice per rotated volume. Since
Linux 5.6, ``openat2`` with ``RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`` makes the kernel apply
the same rule to the whole path in one call. Python has no binding for it, so this calls
``syscall(2)`` through ctypes (which releases the GIL for the call like any other syscall).

:func:`open_dir_beneath` returns None where the call is unavailable (older kernels, or a
seccomp profile that refuses it with ENOSYS or EPERM); the caller then walks the path itself.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform

__all__ = ["open_dir_beneath"]

# The same number on every architecture: openat2 came after the syscall tables were unified.
_SYS_OPENAT2 = 437
# include/uapi/linux/openat2.h
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_NO_SYMLINKS = 0x04
_RESOLVE_BENEATH = 0x08
_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_RESOLVE = _RESOLVE_BENEATH | _RESOLVE_NO_SYMLINKS | _RESOLVE_NO_MAGICLINKS


class _OpenHow(ctypes.Structure):
    _fields_ = (("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64))


_HOW = _OpenHow(_FLAGS, 0, _RESOLVE)


def _load_syscall() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    if platform.system() != "Linux":
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function = libc.syscall
    except (OSError, AttributeError):
        return None
    function.restype = ctypes.c_long
    return function


_syscall = _load_syscall()
_available = _syscall is not None


def open_dir_beneath(dir_fd: int, relative: str) -> int | None:
    """An ``O_RDONLY|O_DIRECTORY|O_CLOEXEC`` fd of ``relative`` beneath ``dir_fd``, no symlink
    followed in any component (the last included); None when openat2 is unavailable here.

    Raises OSError as the kernel reports it: ELOOP for a symlink on the way, ENOTDIR for a
    component that is not a directory, ENOENT for a missing one, EXDEV for a path leaving
    ``dir_fd`` (an absolute path or ``..``), EAGAIN when a concurrent rename made the kernel
    give up (callers retry or treat it as a failed write).
    """
    global _available
    if not _available or _syscall is None:
        return None
    fd = int(
        _syscall(
            ctypes.c_long(_SYS_OPENAT2),
            ctypes.c_int(dir_fd),
            ctypes.c_char_p(os.fsencode(relative)),
            ctypes.byref(_HOW),
            ctypes.c_size_t(ctypes.sizeof(_HOW)),
        )
    )
    if fd >= 0:
        return fd
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EPERM):  # not in this kernel, or refused by seccomp
        _available = False
        return None
    raise OSError(err, os.strerror(err), relative)
