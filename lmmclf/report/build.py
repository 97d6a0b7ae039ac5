"""``lmmclf report``'s one library call: gather, compute, write the folder (:func:`build_report`).

The folder holds ``index.html`` (:mod:`lmmclf.report.render`), ``report.css`` and ``report.js``
(:mod:`lmmclf.report.style`, :mod:`lmmclf.report.script`), ``report.json`` (the numbers,
:func:`lmmclf.report.summary.report_document`), ``data/`` (the gallery's data,
:mod:`lmmclf.report.gallery`) and ``thumbs/`` (:mod:`lmmclf.report.thumbnails`). Each file is
written to a temp file beside it and renamed, so a page open in a browser never reads half a
file. Building again in the same folder keeps the thumbnails that are still current.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from lmmclf.errors import StorageError


@dataclass
class ReportResult:
    """What was built: the page, the document (``report.json``) and the counts for a summary line."""

    index: Path
    document: dict[str, Any]
    images: int


def out_dir_error(out_dir: Path, reason: str) -> StorageError:
    """The one sentence for a report folder that cannot be written."""
    return StorageError(f"The report folder {out_dir} is not writable ({reason}): choose another folder with --out.")


def check_out_dir(out_dir: Path) -> None:
    """Raise :func:`out_dir_error` unless files can be written in ``out_dir`` (or where it would be created)."""
    from lmmclf.evaluation.report import check_out_dir as check_writable

    check_writable(out_dir, error=out_dir_error)


def _write(path: Path, text: str) -> None:
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.write_text(text, encoding="utf-8")
    os.replace(temp, path)


def build_report(cfg, dataset, store, out_dir: Path, methods: list[str], show_progress: bool = False) -> ReportResult:
    """Build the report of ``dataset`` under the settings ``cfg`` into ``out_dir``.

    Args:
        cfg: the experiment config (it chooses the artifacts, as for eval).
        dataset: the loaded dataset.
        store: the artifact store (only read).
        out_dir: the report folder (created).
        methods: the methods to show (``all``: every one that is cached).
        show_progress: print a line per step on stderr.

    Raises:
        LmmclfError: an unknown method name.
        StorageError: the folder cannot be written.
    """
    from lmmclf.console import console
    from lmmclf.report.gallery import write_gallery
    from lmmclf.report.gather import MissingSection, gather_describe, gather_methods
    from lmmclf.report.leakage import leakage as compute_leakage
    from lmmclf.report.render import page
    from lmmclf.report.script import JS
    from lmmclf.report.style import CSS
    from lmmclf.report.summary import describe_summary, heatmap_classes, method_entry, report_document
    from lmmclf.report.thumbnails import make_thumbnails

    def step(text: str) -> None:
        if show_progress:
            console.print(f"[dim]{escape(text)}[/]")

    found, missing = gather_methods(cfg, dataset, store, methods)  # an unknown name fails before any work
    describe, absent = gather_describe(cfg, dataset, store)
    if absent is not None:
        missing.insert(0, absent)
        missing.insert(1, MissingSection("leakage", "Label leakage is measured on the descriptions, which are not cached.", absent.commands))
    out_dir.mkdir(parents=True, exist_ok=True)
    step(f"thumbnails of {len(dataset.items)} images")
    thumbnails = make_thumbnails(dataset.items, out_dir)
    by_id = {item.id: item for item in dataset.items}
    leak = None
    if describe is not None:
        covered = [(row["id"], by_id[row["id"]].label, by_id[row["id"]].split) for row in describe.rows if row["id"] in by_id]
        leak = compute_leakage(dataset.class_names, covered, describe.texts)
    step(f"{len(found)} trained methods")
    entries = {method.name: method_entry(method, dataset.class_names) for method in found}
    document = report_document(
        dataset,
        describe_summary(describe, list(by_id)) if describe else None,
        entries,
        leak.to_dict() if leak else None,
        missing,
        [{"id": item_id, "error": error} for item_id, error in thumbnails.failed.items()],
    )
    matrices = {name: entry["confusion"]["matrix"] for name, entry in entries.items()}

    def shown_classes(name: str) -> list[int]:
        import numpy as np

        return heatmap_classes(np.asarray(matrices[name]))

    def example(item_id: str) -> str:
        item = by_id.get(item_id)
        thumb = thumbnails.paths.get(item_id)
        texts = (describe.texts.get(item_id) or [])[:3] if describe else []
        image = f"<img loading='lazy' src='{escape(thumb)}' alt='{escape(item_id)}'>" if thumb else ""
        lines = "".join(f"<li>{escape(text)}</li>" for text in texts)
        label = escape(dataset.class_names[item.label]) if item else ""
        return f"<div class='example'>{image}<div><b>{label}</b> {escape(item_id)}</div><ul>{lines}</ul></div>"

    step("pages")
    images = write_gallery(out_dir, dataset, describe, found, thumbnails)
    _write(out_dir / "report.css", CSS)
    _write(out_dir / "report.js", JS)
    _write(out_dir / "report.json", json.dumps(document, indent=1, ensure_ascii=False) + "\n")
    index = out_dir / "index.html"
    _write(index, page(document, shown_classes, example))
    return ReportResult(index.resolve(), document, images)
