"""The results table (like the paper's Table 2) as Rich, CSV, Markdown and JSON.

Every table has a "Test images" column, and says under it when its rows were measured on
different test images (:mod:`lmmclf.evaluation.testsets`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lmmclf.evaluation import testsets


def _pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.2f}"


def rows(summaries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flat rows (accuracies in %, the headline = mean final accuracy over seeds)."""
    out = []
    for s in summaries:
        out.append({
            "method": s["method"], "label": s["label"], "test_acc": _pct(s["mean"]), "mean": _pct(s["mean"]),
            "std": _pct(s["std"]) if len(s["seeds"]) > 1 else "", "seeds": " ".join(map(str, s["seeds"])),
            "best_acc_mean": _pct(s["best_acc_mean"]) if s["epochs"] else "", "epochs": s["epochs"], "test_items": s["test_items"],
            "test_images": testsets.cell(s),
        })
    return out


def _accuracy_cell(row: dict[str, Any]) -> str:
    return f"{row['mean']} ± {row['std']}" if row["std"] else row["mean"]


def to_markdown(summaries: list[dict[str, Any]], title: str, comparison: dict | None = None) -> str:
    lines = [f"## {title}", "", "| Method | Test accuracy (%) | Test images | Seeds | Best epoch acc. (optimistic) |", "|---|---:|---:|---:|---:|"]
    for row in rows(summaries):
        lines.append(f"| {row['label']} | {_accuracy_cell(row)} | {row['test_images']} | {len(row['seeds'].split())} | {row['best_acc_mean'] or '-'} |")
    lines += ["", "Test accuracy is after the last epoch (mean ± sample std over seeds). The best-epoch column picks the epoch on the test set and is optimistic."]
    different = testsets.note(summaries)
    if different:
        lines += ["", f"**{different}**"]
    if comparison:
        lines += ["", comparison_sentence(comparison)]
    return "\n".join(lines) + "\n"


def comparison_sentence(c: dict) -> str:
    stat = f", statistic {c['statistic']:.3f}" if c.get("statistic") is not None else ""
    seeds = f"seeds {c['seeds'][0]}/{c['seeds'][1]}"
    # different test sets: the pairs are the common images, and the sentence says so
    where = (f"only the {c['items']} test images both were tested on ({c['a']} was tested on {c['items_a']}, "
             f"{c['b']} on {c['items_b']}; {seeds})" if c.get("restricted") else f"{c['items']} paired test images ({seeds})")
    return (
        f"{c['a']} vs {c['b']} on {where}: "
        f"{100 * c['difference']:+.2f} points, {100 * c['confidence']:.0f}% bootstrap CI "
        f"[{100 * c['ci_low']:+.2f}, {100 * c['ci_high']:+.2f}]; McNemar ({c['test']}{stat}): "
        f"{c['a_only']} images only {c['a']} gets right, {c['b_only']} only {c['b']}, p = {c['p_value']:.4g}."
    )


def rich_table(summaries: list[dict[str, Any]], title: str, missing: list[tuple[str, str]] = ()):
    """A Rich table for the console; missing methods are listed as not cached (their commands: ``missing_commands``)."""
    from rich.table import Table

    from rich.markup import escape

    different = testsets.note(summaries)
    table = Table(title=title, caption=f"[yellow]{escape(different)}[/]" if different else None, caption_justify="left")
    table.add_column("Method")
    table.add_column("Test accuracy (%)", justify="right")
    table.add_column("Test images", justify="right")
    table.add_column("Seeds", justify="right")
    table.add_column("Best epoch (optimistic)", justify="right")
    for row in rows(summaries):
        table.add_row(escape(row["label"]), _accuracy_cell(row), row["test_images"], str(len(row["seeds"].split())), row["best_acc_mean"] or "-")
    for name, _command in missing:
        table.add_row(f"[dim]{name}[/]", "[dim]not cached (command below)[/]", "", "", "")
    return table


def missing_commands(missing: list[tuple[str, str]]) -> list[str]:
    """One console line per missing method: its name and the whole command that makes it.

    Printed under the table, not in a cell, so that no column width ever wraps a command a user copies.
    """
    return [f"[dim]{name}:[/] {command}" for name, command in missing]


def write_files(out_dir: Path, document: dict[str, Any], title: str) -> list[Path]:
    """Write results.json, results.csv (tidy: one row per method and seed) and results.md into ``out_dir``."""
    from lmmclf.results import to_csv

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "results.json", out_dir / "results.csv", out_dir / "results.md"]
    paths[0].write_text(json.dumps(document, indent=2, default=str) + "\n")
    paths[1].write_text(to_csv(document))
    paths[2].write_text(to_markdown(document["methods"], title, document.get("comparison")))
    return paths
