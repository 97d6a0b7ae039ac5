"""Which test images each row of the results was measured on.

Methods are not always tested on the same images: fine-tuning tests on the dataset's whole test
split, the probes and zero-shot rows on the images the describe stage covers
(``describe.split``, ``describe.limit``) whose image could be read. Accuracies measured on
different images are not directly comparable, so every row carries its count and an identity
of its test set (:func:`measured_on`), every table says when its rows differ (:func:`differ`), and
a paired comparison runs on the images both methods were tested on and says so
(:func:`lmmclf.evaluation.stats.compare_runs`).
"""

from __future__ import annotations

import hashlib
from typing import Any


def set_id(ids) -> str:
    """A short identity of a set of test item ids (the same images in any order give the same id)."""
    digest = hashlib.sha256()
    for item_id in sorted(set(ids)):
        digest.update(item_id.encode("utf-8") + b"\0")
    return digest.hexdigest()[:12]


def measured_on(runs: list, split_ids: frozenset[str]) -> dict[str, Any]:
    """The test-set fields of one method's entry of results.json.

    Args:
        runs: the method's :class:`~lmmclf.results.TrainingRun` s (every seed is tested on the
            same images; the first one is read).
        split_ids: the ids of the dataset's whole test split.

    Returns:
        ``test_items`` (its count), ``test_split_items`` (the test split's), ``whole_test_split``
        and ``test_set`` (:func:`set_id`, equal between rows measured on the same images).
    """
    ids = set(runs[0].test_ids) if runs else set()
    return {
        "test_items": len(ids),
        "test_split_items": len(split_ids),
        "whole_test_split": ids == split_ids,
        "test_set": set_id(ids),
    }


def differ(summaries: list[dict[str, Any]]) -> bool:
    """True when the rows were measured on different test images."""
    return len({s.get("test_set") for s in summaries}) > 1


def cell(summary: dict[str, Any]) -> str:
    """A row's "Test images" cell: the count, with the split's size when it is part of it (``4 of 6``)."""
    count, total = summary.get("test_items", 0), summary.get("test_split_items")
    return str(count) if total is None or summary.get("whole_test_split", True) else f"{count} of {total}"


def note(summaries: list[dict[str, Any]]) -> str | None:
    """The sentence under a table whose rows were measured on different test images, else None."""
    if not differ(summaries):
        return None
    return (
        "Rows were measured on different test images (column Test images): their accuracies are not directly "
        "comparable (fine-tuning tests on the whole test split, the probes on the images describe covered: "
        "describe.split, describe.limit). A paired comparison (--compare) uses only the images both were tested on."
    )


def legend(summary: dict[str, Any]) -> str:
    """A plot legend's suffix for a row tested on part of the test split (empty otherwise)."""
    return "" if summary.get("whole_test_split", True) else f" ({cell(summary)} test images)"
