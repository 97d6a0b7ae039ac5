"""Results in CLIP_benchmark's result-JSON format, so they line up with its published tables.

CLIP_benchmark (LAION-AI/CLIP_benchmark, ``clip_benchmark/cli.py``) writes one JSON per dataset,
model and task: ``{"dataset", "model", "pretrained", "task", "metrics", "language"}``, named
``{dataset}_{pretrained}_{model}_{language}_{task}.json``. Its zero-shot metrics are ``acc1`` and
``mean_per_class_recall`` (balanced accuracy); its linear-probe ones are ``lp_acc1`` and
``lp_mean_per_class_recall``. Here every eval row is one file: rows with no training epochs
(the zero-shot baselines) are ``zeroshot_classification``, trained rows ``linear_probe``. Top-5
accuracy is not written (lmmclf stores the predicted class only, not the scores). lmmclf adds
``lmmclf_method`` and ``seeds`` (metrics are means over seeds); the file name ends with the method,
since several lmmclf rows share one CLIP_benchmark task.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

LANGUAGE = "en"


def mean_per_class_recall(predictions, labels) -> float:
    """Balanced accuracy: the mean over the classes present in ``labels`` of each one's recall (sklearn's balanced_accuracy_score)."""
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    classes = np.unique(labels)
    if not len(classes):
        return float("nan")
    return float(np.mean([np.mean(predictions[labels == c] == c) for c in classes]))


def task_of(summary: dict[str, Any]) -> str:
    return "linear_probe" if summary.get("epochs") else "zeroshot_classification"


def record(summary: dict[str, Any], dataset: str, model: str, pretrained: str | None) -> dict[str, Any]:
    """One eval row (a ``methods`` entry of results.json) as a CLIP_benchmark result."""
    task = task_of(summary)
    prefix = "lp_" if task == "linear_probe" else ""
    return {
        "dataset": dataset, "model": model, "pretrained": pretrained or "", "task": task,
        "metrics": {f"{prefix}acc1": summary["mean"], f"{prefix}mean_per_class_recall": summary.get("mean_per_class_recall")},
        "language": LANGUAGE, "lmmclf_method": summary["method"], "seeds": summary.get("seeds", []),
    }


def _slug(text: str) -> str:
    return text.replace("/", "_")


def write(out_dir: Path, document: dict[str, Any], model: str, pretrained: str | None) -> list[Path]:
    """One CLIP_benchmark JSON per method of an eval document, in ``out_dir``; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for summary in document["methods"]:
        data = record(summary, document["dataset"], model, pretrained)
        name = f"{_slug(data['dataset'])}_{_slug(Path(data['pretrained']).name or 'none')}_{_slug(Path(model).name)}_{LANGUAGE}_{data['task']}_{summary['method']}.json"
        path = out_dir / name
        path.write_text(json.dumps(data, indent=2) + "\n")
        paths.append(path)
    return paths
