"""The file operations the artifact store relies on: durable writes, folder checks, lock tests, removal.

Plain files and folders only (no HDF5): ``lmmclf.store`` builds artifacts on these, and
``lmmclf cache gc`` removes what they leave behind.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def write_bytes_durably(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file at ``path`` and fsync it (the caller moves it into place)."""
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def file_in_the_way(folder: Path) -> Path | None:
    """The first path from ``folder`` upwards that exists and is not a directory (None if all is well)."""
    for candidate in [folder, *folder.parents]:
        if candidate.exists():
            return None if candidate.is_dir() else candidate
    return None


def held_by_other(path: Path) -> bool:
    """Whether another open file description holds an exclusive lock on ``path`` (never creates it)."""
    try:
        handle = open(path, "rb")
    except OSError:
        return False
    try:
        import fcntl
    except ImportError:  # not POSIX: filelock's own test
        handle.close()
        from filelock import FileLock, Timeout

        try:
            with FileLock(str(path), timeout=0):
                return False
        except Timeout:
            return True
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        except OSError:
            return False
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return False


def remove_path(path: Path) -> None:
    """Delete a file, or a folder with everything in it; a path already gone is fine."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
