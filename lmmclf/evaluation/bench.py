"""``lmmclf bench``: one table over many datasets (rows datasets, columns methods, plus the mean).

Each dataset is evaluated by the same :func:`lmmclf.evaluation.report.evaluate` that ``eval``
runs, with the settings in effect and the positional dataset applied as ``eval DATASET`` applies
it, so a cell equals that dataset's ``eval --json`` ``mean``. A dataset whose inputs are missing
(or that cannot be loaded) is its own failure: it is reported with the commands that make what it
lacks, and the other datasets still run. Resuming is the cache's: a rerun finds every artifact made
before and computes only what is still missing.

The mean row averages a method over the datasets that have it, and says over how many.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable


@dataclass
class BenchResult:
    """The per-dataset eval documents and failures of one bench run."""

    methods: list[str]
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)  # dataset -> eval's results document
    failures: dict[str, dict[str, Any]] = field(default_factory=dict)  # dataset -> {error, commands}

    def cell(self, dataset: str, method: str) -> float | None:
        """The mean test accuracy (0-1) of ``method`` on ``dataset``, or None when not evaluated."""
        for summary in self.documents.get(dataset, {}).get("methods", []):
            if summary["method"] == method:
                return summary["mean"]
        return None

    def columns(self) -> list[str]:
        """The methods that have at least one number, in the order asked for."""
        return [m for m in self.methods if any(self.cell(d, m) is not None for d in self.documents)]

    def means(self) -> dict[str, tuple[float, int]]:
        """method -> (mean over the datasets that have it, how many)."""
        out = {}
        for method in self.columns():
            values = [v for v in (self.cell(d, method) for d in self.documents) if v is not None]
            out[method] = (sum(values) / len(values), len(values))
        return out

    def to_document(self) -> dict[str, Any]:
        return {
            "methods": self.columns(),
            "datasets": {name: {m: self.cell(name, m) for m in self.columns()} for name in self.documents},
            "mean": {m: {"mean": value, "datasets": count} for m, (value, count) in self.means().items()},
            "failed": self.failures,
            "evals": self.documents,
        }


def run_bench(datasets: list[str], evaluate_one: Callable[[str], dict[str, Any]], methods: list[str],
              on_failure: Callable[[str, Exception], dict[str, Any]]) -> BenchResult:
    """Evaluate every dataset; a failing one is recorded (``on_failure``) and the others go on.

    Args:
        datasets: the dataset names, in table order.
        evaluate_one: name -> eval's results document.
        methods: the method names asked for (``all`` expanded by the caller).
        on_failure: ``(name, error) -> {"error": sentence, "commands": [...]}``.
    """
    from lmmclf.errors import LmmclfError

    result = BenchResult(methods)
    for name in datasets:
        try:
            result.documents[name] = evaluate_one(name)
        except LmmclfError as exc:
            result.failures[name] = on_failure(name, exc)
    return result


def _pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.2f}"


def to_markdown(result: BenchResult, labels: dict[str, str]) -> str:
    columns = result.columns()
    lines = ["## Test accuracy (%) per dataset", "", "| Dataset | " + " | ".join(labels.get(m, m) for m in columns) + " |",
             "|---|" + "---:|" * len(columns)]
    for name in result.documents:
        lines.append(f"| {name} | " + " | ".join(_pct(result.cell(name, m)) or "-" for m in columns) + " |")
    means = result.means()
    total = len(result.documents)
    lines.append("| **mean** | " + " | ".join(
        _pct(means[m][0]) + ("" if means[m][1] == total else f" ({means[m][1]} of {total})") for m in columns) + " |")
    lines += ["", "Each cell is the dataset's own `eval` accuracy (mean over seeds); the mean row averages over the datasets that have the method."]
    for name, failure in result.failures.items():
        lines += ["", f"- **{name}** not evaluated: {failure['error']}"] + [f"  - `{c}`" for c in failure["commands"]]
    return "\n".join(lines) + "\n"


def to_csv(result: BenchResult) -> str:
    """Tidy rows: dataset, method, test_acc (%), with a ``mean`` dataset row per method."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["dataset", "method", "test_acc", "datasets"])
    for name in result.documents:
        for method in result.columns():
            value = result.cell(name, method)
            if value is not None:
                writer.writerow([name, method, _pct(value), 1])
    for method, (value, count) in result.means().items():
        writer.writerow(["mean", method, _pct(value), count])
    return buffer.getvalue()


def write_files(out_dir: Path, result: BenchResult, labels: dict[str, str]) -> list[Path]:
    """bench.json, bench.csv and bench.md in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "bench.json", out_dir / "bench.csv", out_dir / "bench.md"]
    paths[0].write_text(json.dumps(result.to_document(), indent=2, default=str) + "\n")
    paths[1].write_text(to_csv(result))
    paths[2].write_text(to_markdown(result, labels))
    return paths
