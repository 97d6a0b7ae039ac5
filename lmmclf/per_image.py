"""A per-image result table: values keyed by an image's digest under one identity, in one SQLite file.

Per-image caches (describe answers, image embeddings) survive what changes a dataset's key: one
more image, another split, a moved folder, ``predict`` on files a dataset holds. Each is a file
``<cache>/<folder>/<identity>.sqlite`` with one table ``entry`` (digest, value, the time it was
stored). A file that cannot be opened or written is skipped with a warning: an entry is a saving,
never a reason to fail a run.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Iterable

_SCHEMA = "CREATE TABLE IF NOT EXISTS entry (sha256 TEXT PRIMARY KEY, record BLOB NOT NULL, created REAL NOT NULL)"
_CHUNK = 500  # digests per SELECT (SQLite's variable limit is 999 on old builds)


class PerImageTable:
    """The entries of one identity.

    Args:
        root: the cache root.
        folder: the cache folder of this kind of entry (``describe-entries``, ``embed-image-entries``).
        identity: what the values depend on besides the image, as a digest.
    """

    def __init__(self, root: Path, folder: str, identity: str):
        self.path = Path(root) / folder / f"{identity}.sqlite"
        self._db: sqlite3.Connection | None = None
        self._broken = False

    def exists(self) -> bool:
        return self.path.exists()

    def _connect(self) -> sqlite3.Connection | None:
        if self._db is None and not self._broken:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(self.path, timeout=60, check_same_thread=False)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute(_SCHEMA)
                db.commit()
                self._db = db
            except (sqlite3.Error, OSError) as exc:
                self._broken = True
                from rich.markup import escape

                from lmmclf.console import console

                console.print(f"[yellow]Warning[/]: per-image entries in {escape(str(self.path))} cannot be used "
                              f"({escape(str(exc))}); every image without one is computed.", soft_wrap=True)
        return self._db

    def get_many(self, digests: Iterable[str]) -> dict[str, bytes | str]:
        """digest -> stored value, for the digests that have an entry."""
        db = self._connect()
        wanted = list(dict.fromkeys(digests))
        found: dict[str, bytes | str] = {}
        if db is None:
            return found
        try:
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start:start + _CHUNK]
                found.update(db.execute(f"SELECT sha256, record FROM entry WHERE sha256 IN ({','.join('?' * len(chunk))})", chunk))
        except sqlite3.Error:
            pass
        return found

    def put_many(self, pairs: Iterable[tuple[str, bytes | str]], replace: bool = True) -> int:
        """Store (digest, value) pairs; returns how many were stored (0 when the file cannot be written).

        Args:
            pairs: the image digest and its value.
            replace: a newer value replaces an older one (False: keep what is there, for back-filling).
        """
        db = self._connect()
        now = time.time()
        rows = [(digest, value, now) for digest, value in pairs if digest]
        if db is None or not rows:
            return 0
        verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
        try:
            with db:
                db.executemany(f"{verb} INTO entry (sha256, record, created) VALUES (?, ?, ?)", rows)
        except sqlite3.Error:
            return 0
        return len(rows)

    def count(self) -> int:
        db = self._connect()
        try:
            return int(db.execute("SELECT COUNT(*) FROM entry").fetchone()[0]) if db is not None else 0
        except sqlite3.Error:
            return 0

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def entry_files(root: Path, folder: str) -> list[Path]:
    """Every entries file of one kind in the cache at ``root``."""
    directory = Path(root) / folder
    return sorted(directory.glob("*.sqlite")) if directory.is_dir() else []


def item_digests(hash_db: Path, items: list) -> dict[str, str]:
    """item id -> what its entries are keyed by: the sha256 of its file, plus the image reader's kind when the
    reader changes its pixels (an EXIF-rotated photo never gets an entry about the sideways one). From the
    file-hash memo; an unreadable file has none."""
    from lmmclf.datasets.fingerprint import pixel_digest
    from lmmclf.filehash import FileHashCache

    hashes = FileHashCache(hash_db)
    out: dict[str, str] = {}
    try:
        for item in items:
            try:
                known = hashes.lookup(item.path)
                out[item.id] = pixel_digest(*known) if known else hashes.hash(item.path)
            except OSError:
                continue  # that image's own problem, reported by the stage; never an entry
    finally:
        hashes.close()
    return out
