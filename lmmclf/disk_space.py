"""Disk space claimed before HDF5 writes a large artifact in place (the frozen-trunk cache, embeddings).

Why: HDF5 (as bundled with h5py) does not survive a write that fails with "no space left":
the failed write leaves its caches in a state that crashes the process with a segmentation
fault when the dataset or file is closed, or at interpreter exit, whatever Python does with
the exception. So the space is claimed first, with ``fallocate`` (Linux; the file's size is
unchanged, its blocks are reserved), and a full disk becomes one sentence before HDF5 has
written anything large. Where ``fallocate`` is not available the free space is checked instead.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import shutil
import sys
from pathlib import Path

_KEEP_SIZE = 0x01  # FALLOC_FL_KEEP_SIZE
_PUNCH_HOLE = 0x02  # FALLOC_FL_PUNCH_HOLE
_UNSUPPORTED = {errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL, errno.ENODEV, errno.EBADF}


def reserve(path: str | Path, nbytes: int) -> None:
    """Claim ``nbytes`` of disk for the open file ``path`` (from offset 0), or fail now.

    Raises:
        OSError: ``ENOSPC`` (or the file system's own error) when the space is not there.
    """
    rc = _fallocate(path, _KEEP_SIZE, 0, nbytes)
    if rc == 0:
        return
    if rc not in _UNSUPPORTED:
        raise OSError(rc, os.strerror(rc), str(path))
    free = shutil.disk_usage(Path(path).parent).free
    if free < nbytes:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def release_beyond(path: str | Path, keep: int, reserved: int) -> None:
    """Give back the reserved blocks past ``keep`` bytes (best effort: a failure only wastes space)."""
    if reserved > keep:
        try:
            _fallocate(path, _PUNCH_HOLE | _KEEP_SIZE, keep, reserved - keep)
        except OSError:
            pass


def _fallocate(path: str | Path, mode: int, offset: int, length: int) -> int:
    """``fallocate(2)`` on ``path``: 0, or the errno (``ENOSYS`` where there is no such call)."""
    function = _libc_fallocate()
    if function is None or length <= 0:
        return errno.ENOSYS if function is None else 0
    fd = os.open(path, os.O_WRONLY)
    try:
        if function(fd, mode, offset, length) == 0:
            return 0
        return ctypes.get_errno()
    finally:
        os.close(fd)


def _libc_fallocate():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        function = libc.fallocate
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    function.restype = ctypes.c_int
    return function
