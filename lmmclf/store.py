"""The content-keyed HDF5 artifact store: where every stage reads and writes its results.

Layout under the cache root::

    <root>/<stage>/<key>.h5            finished artifacts (complete, trusted)
    <root>/<stage>/<key>.h5.tmp-*      a write in progress (temp file beside the target)
    <root>/<stage>/<key>.partial.*     in-progress state of long stages (journals, checkpoints)
    <root>/<stage>/<key>.lock          a lock while one process computes the artifact

The key is ``sha256(canonical_json(KeySpec))``: stage name and version, dataset identity,
model identity, every parameter that changes the content, and the keys of the inputs. The
key inputs, lmmclf's version and the creation time are stored as attributes inside the file,
so an artifact explains itself (``lmmclf cache show KEY``).

Writes are atomic (temp file, then ``os.replace``) and a file without the completion
attribute, or one HDF5 cannot open, is never trusted: it is recomputed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from lmmclf import __version__
from lmmclf.errors import (
    CorruptArtifactError,
    LmmclfError,
    MissingArtifactError,
    storage_errno,
    storage_error,
)
from lmmclf.hashing import canonical_json, hash_json

CACHE_ENV = "LMMCLF_CACHE"
_COMPLETE = "lmmclf_complete"
_KEY_INPUTS = "lmmclf_key_inputs"
_NOT_A_SIDECAR = re.compile(r"\.partial\.|\.tmp-|\.bad-|\.corrupt-|\.active-")  # in-progress, temp or set-aside files
_MANIFEST = "lmmclf_manifest"  # JSON {dataset path: shape} of everything written, checked by is_complete


@dataclass(frozen=True)
class KeySpec:
    """Everything that changes an artifact's content, and nothing else.

    Args:
        stage: the stage name (also the artifact's folder), e.g. ``"describe"``.
        version: the stage's code version; bump it when the stage's output changes.
        dataset: the dataset identity (name, fingerprint, options) or None.
        model: the model identity (name plus revision or weights hash) or None.
        params: every parameter that changes the content.
        inputs: role -> key of every artifact this one was computed from.
    """

    stage: str
    version: int
    dataset: dict[str, Any] | None = None
    model: dict[str, Any] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return hash_json(asdict(self))

    def to_json(self) -> str:
        return canonical_json(asdict(self))


@dataclass(frozen=True)
class ArtifactInfo:
    """What ``cache ls`` shows of one artifact."""

    stage: str
    key: str
    path: Path
    size: int
    mtime: float
    spec: dict[str, Any] | None
    items: int | None
    complete: bool


def default_cache_root() -> Path:
    """``$LMMCLF_CACHE`` if set, else the user cache directory (``~/.cache/lmmclf``)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        root = Path(env).expanduser()
        blocker = _file_in_the_way(root)
        if blocker is not None:
            raise LmmclfError(f"${CACHE_ENV} is {env}, but {blocker} is a file, not a folder: point ${CACHE_ENV} at a folder.")
        return root
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("lmmclf", appauthor=False))


class ArtifactStore:
    """A folder of content-keyed HDF5 artifacts.

    Args:
        root: the cache root; ``None`` means :func:`default_cache_root`.
    """

    def __init__(self, root: str | Path | None = None):
        if root is not None:
            self.root = Path(root).expanduser()
            blocker = _file_in_the_way(self.root)
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
                return bool(handle.attrs.get(_COMPLETE, False)) and _manifest_holds(handle)
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
            from lmmclf.missing import missing_message

            raise MissingArtifactError(missing_message(self, stage, key, make_hint, wanted))
        try:
            handle = h5py.File(path, "r")
        except OSError as exc:
            raise CorruptArtifactError(f"{path} is not a readable HDF5 file ({exc}).{hint}") from exc
        try:
            complete, holds = bool(handle.attrs.get(_COMPLETE, False)), _manifest_holds(handle)
        except (OSError, KeyError, ValueError, RuntimeError, TypeError):
            complete, holds = True, False
        if not complete:
            handle.close()
            raise CorruptArtifactError(f"{path} has no completion marker (interrupted write).{hint}")
        if not holds:
            handle.close()
            raise CorruptArtifactError(f"{path} lacks data it was written with (damaged file); remove it with `lmmclf cache rm {key[:12]}` and run again.")
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
        return any(_held_by_other(path) for path in candidates)

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
                handle.attrs[_KEY_INPUTS] = spec.to_json()
                handle.attrs["lmmclf_stage"] = spec.stage
                handle.attrs["lmmclf_key"] = spec.key
                handle.attrs["lmmclf_version"] = __version__
                handle.attrs["lmmclf_created"] = time.time()
                if items is not None:
                    handle.attrs["lmmclf_items"] = int(items)
                handle.attrs[_MANIFEST] = json.dumps({name: list(handle[name].shape) for name in _walk(handle)}, sort_keys=True)
                handle.attrs[_COMPLETE] = True
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
                    handle.attrs["lmmclf_items"] = int(items)
        return path

    # -- housekeeping ------------------------------------------------------------------
    def list(self) -> list[ArtifactInfo]:
        """Every finished artifact under the root (newest first)."""
        import h5py

        infos = []
        if not self.root.exists():
            return infos
        for path in sorted(self.root.glob("*/*.h5")):
            stage, key = path.parent.name, path.stem
            spec, items, complete = None, None, False
            try:
                with h5py.File(path, "r") as handle:
                    complete = bool(handle.attrs.get(_COMPLETE, False)) and _manifest_holds(handle)
                    raw = handle.attrs.get(_KEY_INPUTS)
                    spec = json.loads(raw) if raw is not None else None
                    if not isinstance(spec, dict):
                        spec = None
                    items = int(handle.attrs["lmmclf_items"]) if "lmmclf_items" in handle.attrs else None
            except (OSError, ValueError, KeyError, RuntimeError, TypeError):
                complete = False
            try:  # another process may remove an artifact while we list
                stat = path.stat()
                size = stat.st_size + sum(side.stat().st_size for side in self.sidecars(path))
            except FileNotFoundError:
                continue
            infos.append(ArtifactInfo(stage, key, path, size, stat.st_mtime, spec, items, complete))
        infos.sort(key=lambda info: info.mtime, reverse=True)
        return infos

    def find(self, key_prefix: str) -> ArtifactInfo:
        """The one artifact whose key starts with ``key_prefix``."""
        matches = [info for info in self.list() if info.key.startswith(key_prefix)]
        if not matches:
            raise LmmclfError(f"No artifact with key starting '{key_prefix}' in {self.root}.")
        if len(matches) > 1:
            raise LmmclfError(f"Key prefix '{key_prefix}' matches {len(matches)} artifacts; give more characters.")
        return matches[0]

    def attributes(self, info: ArtifactInfo) -> dict[str, Any]:
        """All attributes of an artifact, decoded for display."""
        import h5py

        try:
            handle = h5py.File(info.path, "r")
        except OSError as exc:
            raise CorruptArtifactError(
                f"{info.path} is not a readable HDF5 file (truncated or damaged); remove it with `lmmclf cache rm {info.key[:12]}`."
            ) from exc
        with handle:
            out = {}
            for name, value in handle.attrs.items():
                if hasattr(value, "tolist"):
                    value = value.tolist()
                if isinstance(value, bytes):
                    value = value.decode("utf-8", "replace")
                out[name] = value
            out["datasets"] = {name: list(handle[name].shape) for name in _walk(handle)}
        return out

    def sidecars(self, path: Path) -> list[Path]:
        """Finished files that belong to an artifact, beside its HDF5 (e.g. ``<key>.safetensors`` weights)."""
        key = path.stem
        return [
            other
            for other in path.parent.glob(f"{key}.*")
            if other != path and not _NOT_A_SIDECAR.search(other.name) and other.suffix != ".lock"
        ]

    def remove(self, info: ArtifactInfo) -> None:
        """Delete one artifact, its sidecar files and any in-progress files of the same key."""
        for path in [info.path, *self.sidecars(info.path), *info.path.parent.glob(f"{info.key}.partial.*")]:
            _remove_path(path)

    def leftovers(self) -> list[Path]:
        """Temp files, in-progress files and lock files (what ``cache gc`` may delete)."""
        if not self.root.exists():
            return []
        patterns = ("*.h5.tmp-*", "*.partial.*", "*.lock")  # at any depth: frames live in frames/v<N>/
        return sorted({p for pattern in patterns for p in self.root.rglob(pattern)})


def _walk(group, prefix: str = "") -> list[str]:
    import h5py

    names = []
    for name, obj in group.items():
        full = f"{prefix}{name}"
        if isinstance(obj, h5py.Group):
            names.extend(_walk(obj, full + "/"))
        else:
            names.append(full)
    return names


def write_bytes_durably(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file at ``path`` and fsync it (the caller moves it into place)."""
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _file_in_the_way(folder: Path) -> Path | None:
    """The first path from ``folder`` upwards that exists and is not a directory (None if all is well)."""
    for candidate in [folder, *folder.parents]:
        if candidate.exists():
            return None if candidate.is_dir() else candidate
    return None


def _manifest_holds(handle) -> bool:
    """Whether every dataset the writer recorded is still there with its shape (no manifest: older file, trusted)."""
    raw = handle.attrs.get(_MANIFEST)
    if raw is None:
        return True
    manifest = json.loads(raw)
    for name, shape in manifest.items():
        if name not in handle or list(handle[name].shape) != shape:
            return False
    return True


def _held_by_other(path: Path) -> bool:
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


def _remove_path(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
