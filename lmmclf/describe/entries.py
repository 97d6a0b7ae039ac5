"""Per-image describe entries: the model's answer for an image's bytes under one describe identity.

The describe key holds the dataset identity, so a dataset with one more image, another split of
the same images, a renamed or moved file, or ``predict`` on files a dataset already holds all
have new describe keys. What the LMM says does not depend on any of that: it depends on the
image's pixels and on the describe identity (backend, model, prompt, K, decoding, backend
options: the describe key without the dataset and the described subset). So every answer the
model gave is also kept here, keyed by (describe identity, sha256 of the image file's bytes),
and the runner asks the LMM only for images with no entry (the table: :mod:`lmmclf.per_image`). Assembling a 13,320-image artifact
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
from pathlib import Path
from typing import Any, Iterable

from lmmclf.hashing import canonical_json, hash_strings
from lmmclf.per_image import PerImageTable, entry_files as _entry_files

FOLDER = "describe-entries"
ENTRY_VERSION = "lmmclf-describe-entry/1"
# parts of the describe key that say which images were described, not how: not in the identity
_SUBSET_PARAMS = ("split", "limit")


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
        self.table = PerImageTable(root, FOLDER, identity)
        self.path = self.table.path

    def exists(self) -> bool:
        return self.table.exists()

    def get_many(self, digests: Iterable[str]) -> dict[str, dict[str, Any]]:
        """digest -> stored record (its id is the digest) for the images that have an entry."""
        from lmmclf.describe.artifact import valid_record

        found: dict[str, dict[str, Any]] = {}
        for digest, text in self.table.get_many(digests).items():
            try:
                record = valid_record({**json.loads(text), "id": digest})
            except (ValueError, TypeError):
                record = None
            if record is not None:
                found[digest] = record
        return found

    def put_many(self, pairs: Iterable[tuple[str, dict[str, Any]]], replace: bool = True) -> int:
        """Store (digest, record) pairs of answers the model gave (others are skipped); returns how many."""
        rows = ((digest, json.dumps({k: v for k, v in record.items() if k not in ("id", "systemic", "retries")}))
                for digest, record in pairs if record.get("ok") or record.get("answered"))
        return self.table.put_many(rows, replace=replace)

    def count(self) -> int:
        return self.table.count()

    def close(self) -> None:
        self.table.close()


def entry_files(root: Path) -> list[Path]:
    """Every describe entries file in the cache at ``root``."""
    return _entry_files(root, FOLDER)
