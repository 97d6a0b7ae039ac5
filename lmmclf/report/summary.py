"""The report's numbers: describe counts and distributions, per-class accuracy, confusion, confused pairs.

Everything here is computed from :mod:`lmmclf.report.gather`'s records and ends up in
``report.json`` (:func:`report_document`) and in the page. A method's ``accuracy`` is eval's
own number (the mean over seeds of the final test accuracy); its confusion matrix adds up the
test predictions of every seed (rows: true classes, columns: predicted), so with one seed it
counts images and ``per_class`` is the matrix's diagonal over its row sums (with several seeds,
each seed tests the same images, and that ratio is the mean over seeds).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

import numpy as np

LENGTH_BIN = 20  # characters per bin of the description-length histogram
LENGTH_BINS = 10  # the last bin holds every longer description
HEATMAP_MAX = 25  # classes shown in a confusion heatmap; with more, the most confused ones
PAIRS = 10  # most-confused class pairs listed per method
EXAMPLES = 4  # example images per pair


def describe_summary(data, item_ids: Sequence[str]) -> dict[str, Any]:
    """The ``describe`` entry of report.json.

    Args:
        data: the :class:`~lmmclf.report.gather.DescribeData`.
        item_ids: the ids of the dataset's items (rows of other items are still counted).
    """
    rows = data.rows
    ok = sum(1 for row in rows if row.get("ok"))
    per_image = Counter(len(data.texts.get(row["id"]) or []) for row in rows)
    lengths = [len(text) for texts in data.texts.values() for text in texts]
    bins = [0] * LENGTH_BINS
    for length in lengths:
        bins[min(length // LENGTH_BIN, LENGTH_BINS - 1)] += 1
    labels = [f"{i * LENGTH_BIN}-{(i + 1) * LENGTH_BIN - 1}" for i in range(LENGTH_BINS - 1)] + [f"{(LENGTH_BINS - 1) * LENGTH_BIN}+"]
    reasons = Counter(row.get("error", "") for row in rows if not row.get("ok"))
    return {
        "key": data.key,
        "model": data.attrs.get("model"),
        "backend": data.attrs.get("backend"),
        "prompt": data.attrs.get("prompt"),
        "descriptions_requested": data.capacity,
        "images": len(rows),
        "ok": ok,
        "failed": len(rows) - ok,
        "shapes": data.shapes,
        "descriptions_per_image": {str(n): per_image.get(n, 0) for n in range(data.capacity + 1)},
        "description_length": {
            "unit": "characters",
            "count": len(lengths),
            "mean": float(np.mean(lengths)) if lengths else None,
            "median": float(np.median(lengths)) if lengths else None,
            "histogram": dict(zip(labels, bins)),
        },
        "failure_reasons": dict(reasons.most_common()),
        "failures": [{"id": row["id"], "error": row.get("error", ""), "raw": row.get("raw", "")} for row in rows if not row.get("ok")],
        "not_in_dataset": len({row["id"] for row in rows} - set(item_ids)),
    }


def confusion(method, class_count: int) -> np.ndarray:
    """The (C, C) confusion counts of every seed of ``method`` (rows: true class, columns: predicted)."""
    matrix = np.zeros((class_count, class_count), dtype=np.int64)
    for run in method.runs:
        np.add.at(matrix, (np.asarray(run.test_labels, dtype=np.int64), np.asarray(run.test_predictions, dtype=np.int64)), 1)
    return matrix


def per_class_accuracy(matrix: np.ndarray, class_names: Sequence[str]) -> dict[str, float | None]:
    """class -> right predictions over its test predictions (None: the class has no test image)."""
    totals = matrix.sum(axis=1)
    return {name: (float(matrix[i, i] / totals[i]) if totals[i] else None) for i, name in enumerate(class_names)}


def heatmap_classes(matrix: np.ndarray, limit: int = HEATMAP_MAX) -> list[int]:
    """The classes a heatmap shows: all of them, or the ``limit`` with the most errors (made or received), in class order."""
    count = len(matrix)
    if count <= limit:
        return list(range(count))
    errors = matrix.sum(axis=1) + matrix.sum(axis=0) - 2 * np.diag(matrix)
    chosen = sorted(range(count), key=lambda i: (-int(errors[i]), i))[:limit]
    return sorted(chosen)


def confused_pairs(method, matrix: np.ndarray, limit: int = PAIRS, examples: int = EXAMPLES) -> list[dict[str, Any]]:
    """The most frequent (true, predicted) errors, each with example test images of the first seed.

    Returns:
        ``[{"true": i, "predicted": j, "count": n, "examples": [item id, ...]}, ...]``, most frequent first.
    """
    off = matrix.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(-off, axis=None, kind="stable")[:limit]
    run = method.runs[0]
    pairs = []
    for flat in order:
        true, predicted = divmod(int(flat), len(matrix))
        if off[true, predicted] <= 0:
            break
        ids = [item_id for item_id, label, pred in zip(run.test_ids, run.test_labels, run.test_predictions)
               if int(label) == true and int(pred) == predicted][:examples]
        pairs.append({"true": true, "predicted": predicted, "count": int(off[true, predicted]), "examples": ids})
    return pairs


def method_entry(method, class_names: Sequence[str]) -> dict[str, Any]:
    """A method's entry of report.json: eval's accuracy, per-class accuracy, the confusion matrix, confused pairs."""
    matrix = confusion(method, len(class_names))
    summary = method.summary
    return {
        "label": method.label,
        "accuracy": summary["mean"],
        "std": summary["std"],
        "seeds": summary["seeds"],
        "final_acc": summary["final_acc"],
        "test_items": summary["test_items"],
        "keys": summary["keys"],
        "gallery_seed": method.gallery_seed,
        "per_class": per_class_accuracy(matrix, class_names),
        "confusion": {"labels": list(class_names), "matrix": matrix.tolist()},
        "confused_pairs": [{**pair, "true": class_names[pair["true"]], "predicted": class_names[pair["predicted"]]}
                           for pair in confused_pairs(method, matrix)],
    }


def report_document(dataset, describe: dict[str, Any] | None, methods: dict[str, dict[str, Any]],
                    leakage: dict[str, Any] | None, missing: list, thumbnails_failed: list[dict[str, str]]) -> dict[str, Any]:
    """``report.json``: the report's numbers as data (the fields are listed in docs/report.md)."""
    return {
        "dataset": dataset.name,
        "dataset_fingerprint": dataset.fingerprint,
        "classes": list(dataset.class_names),
        "images": len(dataset.items),
        "splits": dataset.counts(),
        "describe": describe,
        "methods": methods,
        "leakage": leakage,
        "missing": [entry.to_dict() for entry in missing],
        "thumbnails_failed": thumbnails_failed,
    }
