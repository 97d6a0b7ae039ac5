"""An append-only JSON-lines journal: the in-progress file of long stages.

Each record is one line, flushed and fsync'ed with its batch, so a crash or ``kill -9`` loses
at most the batch being written. A torn last line (the process died mid-write, or a full disk
cut it, maybe inside a multi-byte character) and any line that is not a JSON object are skipped
on reading, and the next append starts on a fresh line. What a record must hold is the reader's
business (e.g. :func:`lmmclf.describe.artifact.valid_record`); a skipped record's item is redone. Unlike an HDF5 file, a journal cannot be
corrupted as a whole by a kill during a write, which is why long stages keep their progress
here and write the HDF5 artifact once, at the end.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Iterator


class Journal:
    """Append-only record of finished work items.

    Args:
        path: the journal file; its folder is created if missing.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def read(self) -> Iterator[dict[str, Any]]:
        """Every complete record, in the order written; a torn or garbled line is skipped."""
        if not self.path.exists():
            return
        try:
            handle = open(self.path, "rb")
        except FileNotFoundError:
            return  # removed since the check (another process folded it into the artifact)
        with handle:
            for line in handle:
                if not line.endswith(b"\n"):
                    break  # torn final write
                try:
                    record = json.loads(line)
                except (ValueError, RecursionError):  # bad JSON, bad UTF-8 (UnicodeDecodeError), absurd nesting
                    continue
                if isinstance(record, dict):
                    yield record

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        """Append records durably (one write, flush and fsync for the whole batch)."""
        lines = [json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in records]
        if not lines:
            return
        with open(self.path, "ab") as handle:
            if handle.tell() > 0 and not self._ends_with_newline():
                handle.write(b"\n")  # isolate a torn line left by a killed writer
            handle.write("".join(lines).encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())

    def _ends_with_newline(self) -> bool:
        with open(self.path, "rb") as handle:
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) == b"\n"

    def remove(self) -> None:
        """Delete the journal (after its content went into the finished artifact)."""
        self.path.unlink(missing_ok=True)
