"""A CSV manifest with columns ``path,label,split`` (paths relative to the CSV file).

``label`` is the class name; classes are the sorted distinct labels. ``split`` is ``train``
or ``test``. An optional ``id`` column names the items; otherwise the path is the id.
The root is the CSV file itself, or a folder holding ``manifest.csv``.

The dataset root for paths is the CSV's folder: a row whose path leads outside it (an absolute
path elsewhere, ``../`` segments, a symlink to a file elsewhere) is skipped with its reason
unless ``dataset.allow_outside_root`` is set; so is a row naming a folder, a dangling symlink
or a symlink loop (see :mod:`lmmclf.datasets.sources`).
"""

from __future__ import annotations

import csv
from pathlib import Path

from lmmclf.config import DatasetSection
from lmmclf.datasets.adapter import Adapter
from lmmclf.datasets.base import SkippedItem
from lmmclf.datasets.sources import NOT_FOUND, Scan, Source, file_problem, listed_path, listed_reason, outside_root
from lmmclf.errors import DatasetError

REQUIRED = ("path", "label", "split")
DEFAULT_NAME = "manifest.csv"


class CsvAdapter(Adapter):
    type_name = "csv"
    summary = "a CSV manifest with columns path,label,split (paths relative to the CSV); classes sorted"

    def scan(self, root: Path, section: DatasetSection) -> Scan:
        manifest = root / DEFAULT_NAME if root.is_dir() else root
        if not manifest.is_file():
            raise DatasetError(f"CSV manifest {manifest} does not exist.")
        rows = _read_rows(manifest)
        class_names = sorted({row["label"] for _, row in rows})
        index = {name: i for i, name in enumerate(class_names)}
        sources, skipped, seen = [], [], set()
        for line, row in rows:
            split = row["split"].lower()
            if split not in ("train", "test"):
                raise DatasetError(f"{manifest} line {line}: split must be train or test, got {row['split']!r}.")
            # `..` resolved on the text, not by the kernel (see listed_path); symlinks are kept
            path = listed_path(manifest.parent, row["path"])
            item_id = row.get("id") or row["path"]
            if item_id in seen:
                raise DatasetError(f"{manifest} line {line}: id {item_id!r} appears twice.")
            seen.add(item_id)
            problem = outside_root(manifest.parent, path, section.allow_outside_root) or file_problem(path)
            if problem is not None:
                problem = "missing" if problem == NOT_FOUND else problem  # the wording users know
                skipped.append(SkippedItem(str(path), listed_reason(manifest.name, line, problem)))
                continue
            sources.append(Source(item_id, path, index[row["label"]], split))
        return Scan(class_names, sources, skipped)


def _read_rows(manifest: Path) -> list[tuple[int, dict[str, str]]]:
    """The manifest's rows with their line numbers, stripped; header checked."""
    with open(manifest, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise DatasetError(f"CSV manifest {manifest} lacks the column(s) {', '.join(missing)} (needs path,label,split).")
        reader.fieldnames = header
        rows = []
        for row in reader:
            clean = {k: (v or "").strip() for k, v in row.items() if k is not None}
            if not any(clean.values()):
                continue
            for column in REQUIRED:
                if not clean.get(column):
                    raise DatasetError(f"{manifest} line {reader.line_num}: the {column} column is empty.")
            rows.append((reader.line_num, clean))
    if not rows:
        raise DatasetError(f"CSV manifest {manifest} has no rows.")
    return rows
