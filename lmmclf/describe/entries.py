"""Per-image describe entries: the model's answer for an image's bytes under one describe identity.

The describe key holds the dataset identity, so a dataset with one more image, another split of
the same images, a renamed or moved file, or ``predict`` on files a dataset already holds all
have new describe keys. What the LMM says does not depend on any of that: it depends on the
image's pixels and on the describe identity (backend, model, prompt, K, decoding, backend
options: the describe key without the dataset and the described subset). So every answer the
model gave is also kept here, keyed by (describe identity, sha256 of the image file's bytes),
and the runner asks the LMM only for images with no entry. Assembling a 13,320-image artifact
from entries is a lookup per image (seconds).

Only answers the model gave are entries (a success, or a failure that is the model's own: a
refusal, an empty answer); passing failures (a connection, a 5xx) are not. Storage: one SQLite
file per identity, ``<cache>/describe-entries/<identity>.sqlite`` (table ``entry``: sha256,
the journal record as JSON without its id, the time it was stored). Records are read back
through :func:`~lmmclf.describe.artifact.valid_record`, so a hand-edited or damaged entry is
ignored (the image is asked again), and a database that cannot be opened is skipped with a
warning: entries are a saving, never a reason to fail a run.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterable

from lmmclf.hashing import canonical_json, hash_strings

FOLDER = "describe-entries"
ENTRY_VERSION = "lmmclf-describe-entry/1"
# parts of the describe key that say which images were described, not how: not in the identity
_SUBSET_PARAMS = ("split", "limit")
_SCHEMA = "CREATE TABLE IF NOT EXISTS entry (sha256 TEXT PRIMARY KEY, record TEXT NOT NULL, created REAL NOT NULL)"
_CHUNK = 500  # sha256 values per SELECT (SQLite's variable limit is 999 on old builds)


def entry_identity(spec) -> str:
    """The describe identity of a describe key spec: everything in its key but the dataset and the subset."""
    params = {name: value for name, value in spec.params.items() if name not in _SUBSET_PARAMS}
    return hash_strings([ENTRY_VERSION, str(spec.version), canonical_json(spec.model), canonical_json(params)])


class DescribeEntries:
    """The entries of one describe identity (see the module docstring).

    Args:
        root: the cache root.
        identity: :func:`entry_identity` of the describe spec.
    """

    def __init__(self, root: Path, identity: str):
        self.path = Path(root) / FOLDER / f"{identity}.sqlite"
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

                console.print(f"[yellow]Warning[/]: per-image describe entries in {escape(str(self.path))} cannot be used "
                              f"({escape(str(exc))}); every image without a record is asked.", soft_wrap=True)
        return self._db

    def get_many(self, shas: Iterable[str]) -> dict[str, dict[str, Any]]:
        """sha256 -> stored record (without id) for the images that have an entry."""
        from lmmclf.describe.artifact import valid_record

        db = self._connect()
        wanted = list(dict.fromkeys(shas))
        found: dict[str, dict[str, Any]] = {}
        if db is None:
            return found
        try:
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start:start + _CHUNK]
                rows = db.execute(f"SELECT sha256, record FROM entry WHERE sha256 IN ({','.join('?' * len(chunk))})", chunk)
                for sha, text in rows:
                    try:
                        record = valid_record({**json.loads(text), "id": sha})
                    except (ValueError, TypeError):
                        record = None
                    if record is not None:
                        found[sha] = record
        except sqlite3.Error:
            return found
        return found

    def put_many(self, pairs: Iterable[tuple[str, dict[str, Any]]], replace: bool = True) -> int:
        """Store (sha256, record) pairs of answers the model gave; returns how many were offered.

        Args:
            pairs: the image digest and its journal record (its ``id`` is not stored).
            replace: a newer answer replaces an older one (False: keep what is there, for back-filling).
        """
        db = self._connect()
        rows = [(sha, json.dumps({k: v for k, v in record.items() if k not in ("id", "systemic", "retries")}), time.time())
                for sha, record in pairs if sha and (record.get("ok") or record.get("answered"))]
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


def entry_files(root: Path) -> list[Path]:
    """Every entries database in the cache at ``root``."""
    folder = Path(root) / FOLDER
    return sorted(folder.glob("*.sqlite")) if folder.is_dir() else []
