"""The content-keyed HDF5 artifact store: where every stage reads and writes its results.

Layout under the cache root::

    <root>/<stage>/<key>.h5            finished artifacts (complete, trusted)
    <root>/<stage>/<key>.h5.tmp-*      a write in progress (temp file beside the target)
    <root>/<stage>/<key>.partial.*     in-progress state of long stages (journals, checkpoints)
    <root>/<stage>/<key>.lock          a lock while one process computes the artifact

The key is ``sha256(canonical_json(KeySpec))`` (``lmmclf.keyspec``): stage name and version,
dataset identity, model identity, every parameter that changes the content, and the keys of
the inputs. The key inputs, the versions it was made with and the creation time are stored
as attributes inside the file (``lmmclf.artifact_meta``), so an artifact explains itself
(``lmmclf cache show KEY``, ``lmmclf cache info KEY``).

Writes are atomic (temp file, then ``os.replace``) and a file without the completion
attribute, or one HDF5 cannot open, is never trusted: it is recomputed. This module reads
and writes one artifact; ``lmmclf.store_listing`` lists and removes them, ``lmmclf.store_files``
holds the plain file operations underneath.
"""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from lmmclf import artifact_meta, stages
from lmmclf.errors import (
    CorruptArtifactError,
    LmmclfError,
    MissingArtifactError,
    storage_errno,
    storage_error,
)
from lmmclf.keyspec import ArtifactInfo, KeySpec
from lmmclf.missing import missing_message
from lmmclf.store_files import file_in_the_way, held_by_other, write_bytes_durably
from lmmclf.store_listing import StoreListing

__all__ = ["CACHE_ENV", "ArtifactInfo", "ArtifactStore", "KeySpec", "default_cache_root", "write_bytes_durably"]

CACHE_ENV = "LMMCLF_CACHE"


def default_cache_root() -> Path:
    """``$LMMCLF_CACHE`` if set, else the user cache directory (``~/.cache/lmmclf``)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        root = Path(env).expanduser()
        blocker = file_in_the_way(root)
        if blocker is not None:
            raise LmmclfError(f"${CACHE_ENV} is {env}, but {blocker} is a file, not a folder: point ${CACHE_ENV} at a folder.")
        return root
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("lmmclf", appauthor=False))


class ArtifactStore(StoreListing):
    """A folder of content-keyed HDF5 artifacts (listing and removal: :class:`~lmmclf.store_listing.StoreListing`).

    Args:
        root: the cache root; ``None`` means :func:`default_cache_root`.
    """

    def __init__(self, root: str | Path | None = None):
        if root is not None:
            self.root = Path(root).expanduser()
            blocker = file_in_the_way(self.root)
            if blocker is not None:
                raise LmmclfError(f"Cache directory {self.root} cannot be used: {blocker} is a file, not a folder.")
        else:
            self.root = default_cache_root()

    def require_writable(self) -> None:
        """Fail up front, in one sentence naming the folder, when the cache cannot be written.

        Raises:
            StorageError: the cache root (or the nearest existing folder above it) is read-only or full.
        """
        probe_dir = self.root
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise storage_error(exc, self.root / ".probe") from exc
        probe = probe_dir / f".write-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            with open(probe, "wb") as handle:
                handle.write(b"x")
        except OSError as exc:
            raise storage_error(exc, probe) from exc
        finally:
            try:
                probe.unlink()
            except OSError:
                pass

    # -- paths -------------------------------------------------------------------------
    def path(self, stage: str, key: str) -> Path:
        """The final path of an artifact (it may not exist)."""
        return self.root / stage / f"{key}.h5"

    def partial_path(self, stage: str, key: str, suffix: str) -> Path:
        """The path of an in-progress file of a long stage (journal, checkpoint...)."""
        directory = self.root / stage
        directory.mkdir(parents=True, exist_ok=True)
        return directory / f"{key}.partial.{suffix}"

    def file_hash_db(self) -> Path:
        """Where the per-file hash memo lives (see :mod:`lmmclf.filehash`)."""
        return self.root / "filehashes.sqlite"

    # -- reading -----------------------------------------------------------------------
    def is_complete(self, stage: str, key: str) -> bool:
        """True if the artifact exists, opens, and carries the completion marker."""
        path = self.path(stage, key)
        if not path.exists():
            return False
        try:
            import h5py

            with h5py.File(path, "r") as handle:
                return artifact_meta.is_complete(handle)
        except (OSError, KeyError, ValueError, RuntimeError, TypeError):
            return False

    def open(self, stage: str, key: str, make_hint: str | None = None, wanted: KeySpec | None = None):
        """Open a finished artifact read-only (an ``h5py.File``; close it, or use ``with``).

        Args:
            stage: the artifact's stage.
            key: its key.
            make_hint: the command that produces it, for the error message when it is missing.
            wanted: the key spec asked for: when it is missing, the message lists the artifacts of
                the same stage and dataset the cache holds and how they differ (:mod:`lmmclf.missing`).

        Raises:
            MissingArtifactError: no such artifact; the message says how to make it.
            CorruptArtifactError: the file exists but is truncated or incomplete.
        """
        import h5py

        path = self.path(stage, key)
        hint = f" Run `{make_hint}` to make it." if make_hint else ""
        if not path.exists():
            held = self.list() if wanted is not None else []
            raise MissingArtifactError(missing_message(self.root, stage, key, make_hint, wanted, held, self.is_complete))
        try:
            handle = h5py.File(path, "r")
        except OSError as exc:
            raise CorruptArtifactError(f"{path} is not a readable HDF5 file ({exc}).{hint}") from exc
        try:
            complete, holds = bool(handle.attrs.get(artifact_meta.COMPLETE, False)), artifact_meta.manifest_holds(handle)
        except (OSError, KeyError, ValueError, RuntimeError, TypeError):
            complete, holds = True, False
        if not complete:
            handle.close()
            raise CorruptArtifactError(f"{path} has no completion marker (interrupted write).{hint}")
        if not holds:
            handle.close()
            raise CorruptArtifactError(f"{path} lacks data it was written with (damaged file); remove it with `{stages.command('cache', None, ['rm', key[:12]])}` and run again.")
        return handle

    # -- liveness ----------------------------------------------------------------------
    def activity_lock_path(self, stage: str, key: str, name: str = "main") -> Path:
        """The lock file a long run of (stage, key) holds while it works (``name``: e.g. its shard)."""
        directory = self.root / stage
        directory.mkdir(parents=True, exist_ok=True)
        return directory / f"{key}.active-{name}.lock"

    @contextmanager
    def working(self, stage: str, key: str, name: str = "main", on_wait: Callable[[], None] | None = None) -> Iterator[None]:
        """Hold (stage, key, name)'s activity lock for a whole run, so ``cache gc`` leaves its files alone.

        Args:
            on_wait: called once if another process holds the lock (before waiting for it).
        """
        from filelock import FileLock, Timeout

        lock = FileLock(str(self.activity_lock_path(stage, key, name)))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            if on_wait is not None:
                on_wait()
            lock.acquire()
        try:
            yield
        finally:
            lock.release()

    def is_busy(self, stage: str, key: str) -> bool:
        """True while some process holds a lock of (stage, key): its artifact lock or an activity lock."""
        directory = self.root / stage
        candidates = [directory / f"{key}.lock", *directory.glob(f"{key}.active-*.lock")]
        return any(held_by_other(path) for path in candidates)

    # -- writing -----------------------------------------------------------------------
    @contextmanager
    def lock(self, stage: str, key: str, timeout: float = -1) -> Iterator[None]:
        """Hold the per-artifact lock: a second process computing the same key waits here."""
        from filelock import FileLock

        directory = self.root / stage
        directory.mkdir(parents=True, exist_ok=True)
        with FileLock(str(directory / f"{key}.lock"), timeout=timeout):
            yield

    @contextmanager
    def create(self, spec: KeySpec, items: int | None = None, in_memory: bool = True) -> Iterator[Any]:
        """Write an artifact atomically: yields an ``h5py.File``, moved into place when complete.

        On normal exit the key inputs, a manifest of the datasets and the completion marker are
        written and the file is moved into place with ``os.replace``. On an exception the temp
        file is removed and nothing appears under the final name.

        Args:
            spec: the artifact's key spec.
            items: the item count, shown by ``cache ls``.
            in_memory: build the file in memory and write its bytes with plain file I/O (the
                default). HDF5 crashes the process (a segmentation fault) when one of its own
                writes fails for lack of space; writing its finished image ourselves turns a full
                disk into an ordinary error. Only writers of artifacts too large for memory (the
                frozen-trunk cache) pass False, and claim their disk space before writing.
        """
        import h5py

        final = self.path(spec.stage, spec.key)
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise storage_error(exc, final) from exc
        temp = final.with_name(f"{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        image = None
        try:
            if in_memory:
                handle = h5py.File(temp.name, "w", driver="core", backing_store=False)
            else:
                handle = h5py.File(temp, "w")
            with handle:
                yield handle
                artifact_meta.write_metadata(handle, spec, items)
                if in_memory:
                    handle.flush()
                    image = handle.id.get_file_image()
            if image is not None:
                write_bytes_durably(temp, image)
            os.replace(temp, final)
        except Exception as exc:
            if storage_errno(exc) is None:
                raise
            raise storage_error(exc, final) from exc
        finally:
            try:
                temp.unlink(missing_ok=True)
            except OSError:
                pass

    def ensure(self, spec: KeySpec, compute: Callable[[Any], int | None], force: bool = False, in_memory: bool = True) -> Path:
        """Return the artifact's path, computing it under the lock if it is missing or corrupt.

        Args:
            spec: the artifact's key spec.
            compute: called with the open ``h5py.File`` to fill it; may return the item count.
            force: recompute even if a complete artifact exists.
            in_memory: see :meth:`create`.
        """
        path = self.path(spec.stage, spec.key)
        with self.lock(spec.stage, spec.key):
            if self.is_complete(spec.stage, spec.key):
                if not force:
                    return path
                # forced: the old artifact stays until the new one replaces it, so an interrupted --force loses nothing
            else:
                path.unlink(missing_ok=True)  # corrupt: never trusted
            with self.create(spec, in_memory=in_memory) as handle:
                items = compute(handle)
                if items is not None:
                    handle.attrs[artifact_meta.ITEMS] = int(items)
        return path
