"""The exceptions that mean "the user must fix something" (as opposed to bugs).

The CLI turns an :class:`LmmclfError` into one clear sentence on stderr and exit code 1,
never a traceback. Everything else is a bug and keeps its traceback, except a failure to write
(full disk, read-only folder), which :func:`storage_error` turns into one sentence naming the folder.
"""

import errno


class LmmclfError(Exception):
    """A failure the user can fix: a missing file, a bad value, a missing artifact."""


class ConfigError(LmmclfError):
    """The experiment config has an unknown key, a wrong type or a bad value."""


class DatasetError(LmmclfError):
    """A dataset root, split file or image is missing or malformed."""


class ImageReadError(DatasetError):
    """One image file cannot be read (missing, empty, not an image, truncated, corrupt, too large).

    It is that image's failure: callers record it and go on with the other images.

    Args:
        path: the file.
        reason: why, as a phrase without a final period (``the file is empty (0 bytes)``).
    """

    def __init__(self, path, reason: str):
        super().__init__(str(path), reason)  # both in args: it pickles (DataLoader workers)
        self.path = str(path)
        self.reason = reason

    def __str__(self) -> str:
        return f"Cannot read image {self.path}: {self.reason}."


class MissingArtifactError(LmmclfError):
    """An input artifact is not in the cache; the message names the command that makes it."""


class CorruptArtifactError(LmmclfError):
    """An artifact file exists but cannot be trusted (truncated, no completion marker)."""


class StorageError(LmmclfError):
    """A file could not be written or read: a full disk, a read-only or unwritable directory."""


CACHE_ALTERNATIVE = "choose another cache directory with --cache-dir or $LMMCLF_CACHE (finished work is kept)"


_STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}
# h5py reports a failed write as text that carries the C errno or its message
_STORAGE_PHRASES = {
    "no space left": errno.ENOSPC,
    "errno = 28": errno.ENOSPC,
    "read-only file system": errno.EROFS,
    "errno = 30": errno.EROFS,
    "disk quota": errno.EDQUOT,
    "permission denied": errno.EACCES,
}


def storage_errno(exc: BaseException) -> int | None:
    """The errno of a failure to write (full disk, read-only, no permission), else None."""
    if isinstance(exc, OSError) and exc.errno in _STORAGE_ERRNOS:
        return exc.errno
    text = str(exc).lower()
    return next((number for phrase, number in _STORAGE_PHRASES.items() if phrase in text), None)


def storage_error(exc: BaseException, path=None, alternative: str = CACHE_ALTERNATIVE) -> StorageError:
    """One sentence for an OS-level write failure, naming the directory to fix.

    Args:
        exc: the failure (its errno, or the errno its text names, picks the wording; an ``OSError``'s
            ``filename`` is used when ``path`` is None).
        path: the file that was being written.
        alternative: what else the user can do, after the remedy for the folder itself.
    """
    import os

    target = path if path is not None else (getattr(exc, "filename", None) or "")
    directory = os.path.dirname(os.path.abspath(os.fspath(target))) if target else "the cache directory"
    reasons = {
        errno.ENOSPC: (f"No space left on the device holding {directory}", "free space there"),
        errno.EDQUOT: (f"Disk quota exceeded in {directory}", "free space there"),
        errno.EROFS: (f"{directory} is on a read-only file system", "make it writable"),
        errno.EACCES: (f"No permission to write in {directory}", "fix its permissions"),
        errno.EPERM: (f"No permission to write in {directory}", "fix its permissions"),
    }
    number = storage_errno(exc)
    detail = getattr(exc, "strerror", None) or str(exc)
    reason, remedy = reasons.get(number, (f"Could not write {target or directory} ({detail})", "check that folder"))
    return StorageError(f"{reason}: {remedy}, or {alternative}.")
