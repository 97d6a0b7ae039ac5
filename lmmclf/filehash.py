"""A persistent memo of file hashes, so that a second run does not reread 13,000 images.

An entry is trusted only while the file's absolute path, size and mtime (ns) are unchanged;
any edit to the file changes one of them and forces a re-hash. The memo is a small SQLite
database in the cache root, safe for several processes at once.

The memo is only a speed-up, so it never fails a command: a database that cannot be opened or
written (a read-only cache) is replaced by one in memory, and a corrupt one (random bytes, a
truncated file) is moved aside as ``<name>.corrupt-<time>`` and rebuilt.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path

from lmmclf.hashing import hash_file

OPEN_WAIT_SECONDS = 5
WRITE_WAIT_SECONDS = 60

_SCHEMA = """
CREATE TABLE IF NOT EXISTS file_hash (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    note TEXT
)
"""

# The identity last seen for a local model path (a folder or a checkpoint file), so that a
# model folder that has since moved is still recognised as local (see lmmclf.models).
_MODEL_SCHEMA = """
CREATE TABLE IF NOT EXISTS model_identity (
    path TEXT PRIMARY KEY,
    identity TEXT NOT NULL,
    seen_ns INTEGER NOT NULL
)
"""


class FileHashCache:
    """``sha256`` of files, remembered by (path, size, mtime).

    Args:
        db_path: the SQLite file; created with its folder if missing. ``None`` keeps
            the memo in memory only (hashes are then recomputed in every process).
    """

    def __init__(self, db_path: str | Path | None):
        self._lock = threading.Lock()
        self.persistent = False  # False: the memo lives in memory (no cache file, or it cannot be used)
        self._db = self._connect(Path(db_path) if db_path is not None else None)

    def _connect(self, db_path: Path | None) -> sqlite3.Connection:
        if db_path is not None:
            for attempt in range(2):
                try:
                    db = _open_database(db_path)
                    self.persistent = True
                    return db
                except sqlite3.DatabaseError as exc:
                    if attempt == 0 and _is_corrupt(exc) and _move_aside(db_path):
                        continue  # rebuild from scratch once
                    break
                except OSError:
                    break
        db = sqlite3.connect(":memory:", check_same_thread=False)
        db.execute(_SCHEMA)
        db.execute(_MODEL_SCHEMA)
        return db

    def _fall_back_to_memory(self) -> None:
        """The database failed mid-run (made read-only, filled the disk): go on without it."""
        try:
            self._db.close()
        except sqlite3.Error:
            pass
        self._db = self._connect(None)
        self.persistent = False

    def lookup(self, path: str | Path) -> tuple[str, str | None] | None:
        """The remembered (sha256, note) of ``path`` if it is still valid, else None."""
        resolved = os.path.abspath(path)
        stat = os.stat(resolved)
        with self._lock:
            try:
                row = self._db.execute(
                    "SELECT size, mtime_ns, sha256, note FROM file_hash WHERE path = ?", (resolved,)
                ).fetchone()
            except sqlite3.Error:
                self._fall_back_to_memory()
                row = None
        if row and row[0] == stat.st_size and row[1] == stat.st_mtime_ns:
            return row[2], row[3]
        return None

    def remember(self, path: str | Path, sha256: str, note: str | None = None, stat: os.stat_result | None = None) -> None:
        """Store the hash (and an optional note, e.g. a decode error) of ``path``.

        Args:
            stat: ``os.stat`` of the file taken *before* it was read; without it the file is
                stat'ed now, which is only right if it cannot have changed since it was read.
        """
        resolved = os.path.abspath(path)
        stat = stat or os.stat(resolved)
        self._store([(resolved, stat.st_size, stat.st_mtime_ns, sha256, note)])

    def remember_many(self, rows: list[tuple]) -> None:
        """Store many (path, sha256, note[, stat]) entries in one transaction (one commit, not one per file).

        ``stat`` is ``os.stat`` of the file taken before it was read (see :meth:`remember`):
        a file that changes while it is hashed is then hashed again next time.
        """
        records = []
        for path, sha256, note, *before in rows:
            resolved = os.path.abspath(path)
            stat = before[0] if before and before[0] is not None else os.stat(resolved)
            records.append((resolved, stat.st_size, stat.st_mtime_ns, sha256, note))
        self._store(records)

    def _store(self, records: list[tuple]) -> None:
        with self._lock:
            for _ in range(2):
                try:
                    self._db.executemany(
                        "INSERT OR REPLACE INTO file_hash (path, size, mtime_ns, sha256, note) VALUES (?,?,?,?,?)",
                        records,
                    )
                    self._db.commit()
                    return
                except sqlite3.Error:
                    self._fall_back_to_memory()

    def remember_model(self, path: str | Path, identity: str) -> None:
        """Note ``identity`` (JSON text) as the last seen identity of the local model at ``path``.

        Written only when it changed, so resolving the same model many times costs no commits.
        """
        resolved = os.path.abspath(path)
        if self.model_identity(resolved) == identity:
            return
        with self._lock:
            try:
                self._db.execute(
                    "INSERT OR REPLACE INTO model_identity (path, identity, seen_ns) VALUES (?,?,?)",
                    (resolved, identity, time.time_ns()),
                )
                self._db.commit()
            except sqlite3.Error:  # a note is a convenience: never fail, and keep the file hashes
                try:
                    self._db.rollback()
                except sqlite3.Error:
                    pass

    def model_identity(self, path: str | Path) -> str | None:
        """The identity (JSON text) last noted for the local model at ``path``, or None."""
        with self._lock:
            try:
                row = self._db.execute(
                    "SELECT identity FROM model_identity WHERE path = ?", (os.path.abspath(path),)
                ).fetchone()
            except sqlite3.Error:  # no such table (old read-only memo), damaged: nothing remembered
                row = None
        return row[0] if row else None

    def hash(self, path: str | Path) -> str:
        """The sha256 of ``path``, from the memo when the file is unchanged."""
        hit = self.lookup(path)
        if hit is not None:
            return hit[0]
        before = os.stat(path)  # an edit during the read then leaves the memo entry stale, not wrong
        digest = hash_file(path)
        self.remember(path, digest, stat=before)
        return digest

    def close(self) -> None:
        with self._lock:
            try:
                self._db.close()
            except sqlite3.Error:
                pass


def _open_database(db_path: Path) -> sqlite3.Connection:
    """Open (creating if needed) the memo and check it is a usable database.

    Raises:
        sqlite3.DatabaseError: corrupt, not a database, or not writable.
        OSError: its folder cannot be created.
    """
    db_path.parent.mkdir(parents=True, exist_ok=True)
    # opening waits briefly for another process's lock: past that the run goes on with a memo in memory
    db = sqlite3.connect(str(db_path), timeout=OPEN_WAIT_SECONDS, check_same_thread=False)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(_SCHEMA)
        db.commit()
        try:
            db.execute(_MODEL_SCHEMA)
            db.commit()
        except sqlite3.Error:  # an older memo on a read-only cache: keep its hashes, only no model notes
            db.rollback()
        # a memo that turns out read-only fails at its first remember(): _store falls back to memory then
        if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
            raise sqlite3.DatabaseError("database disk image is malformed")
        db.execute(f"PRAGMA busy_timeout = {WRITE_WAIT_SECONDS * 1000}")  # writes are tiny: wait for other writers
    except sqlite3.Error:
        db.close()
        raise
    return db


def _is_corrupt(exc: sqlite3.DatabaseError) -> bool:
    message = str(exc).lower()
    return "malformed" in message or "not a database" in message or "corrupt" in message


def _move_aside(db_path: Path) -> bool:
    """Rename a corrupt memo (and its WAL files) out of the way; False if that is impossible."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    try:
        for suffix in ("", "-wal", "-shm"):
            part = db_path.with_name(db_path.name + suffix)
            if part.exists():
                os.replace(part, part.with_name(f"{part.name}.corrupt-{stamp}"))
    except OSError:
        return False
    return True
