"""The gallery's data files: ``data/items.js`` (every image) and ``data/raw-NNNN.js`` (raw answers, on demand).

They are scripts, not JSON: a page opened from ``file://`` may load scripts but not fetch
files. ``items.js`` holds what filtering and drawing a card need (the field order is in
:mod:`lmmclf.report.script`); the raw answers, as long as the descriptions again, wait in chunks
of :data:`RAW_CHUNK` images until a card asks for one, so the first screen reads only
``items.js``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

RAW_CHUNK = 500  # images per raw-answers file


def _script(value: Any) -> str:
    # U+2028/2029 end a line in older JavaScript parsers: escape them as JSON allows
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _write(path: Path, text: str) -> None:
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.write_text(text, encoding="utf-8")
    os.replace(temp, path)


def gallery_items(dataset, describe, methods, thumbnails) -> list[list[Any]]:
    """One row per dataset item: id, class, split, thumbnail, descriptions, failure reason, predictions.

    Args:
        dataset: the loaded dataset.
        describe: the :class:`~lmmclf.report.gather.DescribeData`, or None.
        methods: the :class:`~lmmclf.report.gather.MethodData` s.
        thumbnails: the :class:`~lmmclf.report.thumbnails.Thumbnails`.
    """
    rows = {row["id"]: row for row in describe.rows} if describe else {}
    predictions = [method.predictions() for method in methods]
    items = []
    for item in dataset.items:
        row = rows.get(item.id)
        texts = describe.texts.get(item.id) if describe and row is not None else None
        failure = None if row is None or row.get("ok") else (row.get("error") or "failed")
        items.append([item.id, item.label, item.split, thumbnails.paths.get(item.id), texts if row is not None else None,
                      failure, [found.get(item.id, -1) for found in predictions]])
    return items


def write_gallery(out_dir: Path, dataset, describe, methods, thumbnails) -> int:
    """Write the gallery's data files under ``out_dir/data``; returns the number of images.

    Args:
        out_dir: the report folder.
        dataset: the loaded dataset.
        describe: the describe data, or None.
        methods: the trained methods.
        thumbnails: the thumbnails made.
    """
    folder = out_dir / "data"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("raw-*.js"):  # a previous build's chunks (the dataset may have shrunk)
        old.unlink()
    items = gallery_items(dataset, describe, methods, thumbnails)
    document = {
        "classes": list(dataset.class_names),
        "splits": sorted({item.split for item in dataset.items}),
        "methods": [{"name": m.name, "label": m.label, "seed": m.gallery_seed} for m in methods],
        "hasRaw": describe is not None,
        "rawChunk": RAW_CHUNK,
        "items": items,
    }
    _write(folder / "items.js", "window.LMMCLF = " + _script(document) + ";\n")
    if describe is not None:
        rows = {row["id"]: row for row in describe.rows}
        raws = [(rows.get(item.id) or {}).get("raw", "") for item in dataset.items]
        for start in range(0, len(raws), RAW_CHUNK):
            chunk = start // RAW_CHUNK
            _write(folder / f"raw-{chunk:04d}.js", f"LMMCLF_RAW({chunk}, {_script(raws[start:start + RAW_CHUNK])});\n")
    return len(items)
