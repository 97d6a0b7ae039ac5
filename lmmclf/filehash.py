"""A persistent memo of file hashes, so that a second run does not reread 13,000 images.

An entry is trusted only while the file's absolute path, size and mtime (ns) are unchanged;
any edit to the file changes one of them and forces a re-hash. The memo is a small SQLite
database in the cache root, safe for several processes at once.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

from lmmclf.hashing import hash_file

_SCHEMA = """
CREATE TABLE IF NOT EXISTS file_hash (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    note TEXT
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
        if db_path is None:
            self._db = sqlite3.connect(":memory:", check_same_thread=False)
        else:
            Path(db_path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(db_path), timeout=60, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)
        self._db.commit()

    def lookup(self, path: str | Path) -> tuple[str, str | None] | None:
        """The remembered (sha256, note) of ``path`` if it is still valid, else None."""
        resolved = os.path.abspath(path)
        stat = os.stat(resolved)
        with self._lock:
            row = self._db.execute(
                "SELECT size, mtime_ns, sha256, note FROM file_hash WHERE path = ?", (resolved,)
            ).fetchone()
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
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO file_hash (path, size, mtime_ns, sha256, note) VALUES (?,?,?,?,?)",
                (resolved, stat.st_size, stat.st_mtime_ns, sha256, note),
            )
            self._db.commit()

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
        with self._lock:
            self._db.executemany(
                "INSERT OR REPLACE INTO file_hash (path, size, mtime_ns, sha256, note) VALUES (?,?,?,?,?)",
                records,
            )
            self._db.commit()

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
            self._db.close()
