"""The exceptions that mean "the user must fix something" (as opposed to bugs).

The CLI turns an :class:`LmmclfError` into one clear sentence on stderr and exit code 1,
never a traceback. Everything else is a bug and keeps its traceback.
"""


class LmmclfError(Exception):
    """A failure the user can fix: a missing file, a bad value, a missing artifact."""


class ConfigError(LmmclfError):
    """The experiment config has an unknown key, a wrong type or a bad value."""


class DatasetError(LmmclfError):
    """A dataset root, split file or image is missing or malformed."""


class MissingArtifactError(LmmclfError):
    """An input artifact is not in the cache; the message names the command that makes it."""


class CorruptArtifactError(LmmclfError):
    """An artifact file exists but cannot be trusted (truncated, no completion marker)."""


class StorageError(LmmclfError):
    """A file could not be written or read: a full disk, a read-only or unwritable directory."""


CACHE_FIX = "free space there or choose another cache directory with --cache-dir or $LMMCLF_CACHE; finished work is kept"


def storage_error(exc: OSError, path=None, fix: str = CACHE_FIX) -> StorageError:
    """One sentence for an OS-level write failure, naming the directory to fix.

    Args:
        exc: the ``OSError`` (its ``errno`` picks the wording; its ``filename`` is used when ``path`` is None).
        path: the file that was being written.
        fix: what the user can do, after the colon.
    """
    import errno
    import os

    target = path if path is not None else (exc.filename or "")
    directory = os.path.dirname(os.path.abspath(os.fspath(target))) if target else "the cache directory"
    reasons = {
        errno.ENOSPC: f"No space left on the device holding {directory}",
        errno.EDQUOT: f"Disk quota exceeded in {directory}",
        errno.EROFS: f"{directory} is on a read-only file system",
        errno.EACCES: f"No permission to write in {directory}",
        errno.EPERM: f"No permission to write in {directory}",
    }
    reason = reasons.get(exc.errno, f"Could not write {target or directory} ({exc.strerror or exc})")
    return StorageError(f"{reason}: {fix}.")
