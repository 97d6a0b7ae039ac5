"""``lmmclf predict``: classify new images with a trained method (a thin layer over ``lmmclf.predict``)."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from lmmclf.cli.common import load, reports_user_errors
from lmmclf.console import console
from lmmclf.errors import LmmclfError

CSV_COLUMNS = ("path", "class", "probability", "top", "error")


@reports_user_errors
def predict(
    ctx: typer.Context,
    paths: Annotated[list[str], typer.Argument(metavar="PATHS...", help="Image files, folders (searched recursively) or globs (quote them: 'photos/*.jpg').")],
    dataset: Annotated[str | None, typer.Option("--dataset", "-d", help="The dataset the method was trained on (default: the config's dataset.name).")] = None,
    method: Annotated[str, typer.Option("--method", "-m", help="image | text | concat | mean | zeroshot | prototype-zeroshot | finetune | lmm-reg.")] = ...,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="How many classes to list per image, best first.")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per image on stdout (JSON lines).")] = False,
    csv_file: Annotated[Path | None, typer.Option("--csv", metavar="FILE", help="Also write the results as CSV rows to FILE.")] = None,
) -> None:
    """Label new images with a method trained by `probe` or `finetune`, found from the config's keys as `eval` finds it.

    Methods that use descriptions (text, concat, mean) describe the new images first, with the
    config's describe settings, through the same resumable, cached runner: predicting on the
    same files again describes and embeds nothing. With several seeds, their probabilities are
    averaged. An unreadable file is reported on its own row; the others are classified.
    """
    from lmmclf.predict import expand_paths, load_classifier

    cfg, store = load(ctx, dataset)
    files = expand_paths(paths)
    if not files:
        raise LmmclfError(f"No image files found in {', '.join(paths)}.")
    classifier = load_classifier(None, method, config=cfg, cache_dir=store.root, show_progress=not console.quiet)
    results = classifier.predict(files, top_k=top_k)
    if csv_file is not None:
        _write_csv(csv_file, results)
    if as_json:
        for result in results:
            sys.stdout.write(json.dumps(result.to_dict()) + "\n")
        sys.stdout.flush()
    _print_table(results, classifier)
    if all(result.error for result in results):
        raise LmmclfError(f"None of the {len(results)} images could be classified (e.g. {results[0].path}: {results[0].error}).")


def _write_csv(path: Path, results) -> None:
    try:
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(CSV_COLUMNS)
            for r in results:
                top = ";".join(f"{name}:{p:.4f}" for name, p in r.top)
                writer.writerow([r.path, r.label or "", "" if r.probability is None else f"{r.probability:.6f}", top, r.error])
    except OSError as exc:
        raise LmmclfError(f"Cannot write --csv file {path} ({exc.strerror or exc}).") from exc


def _print_table(results, classifier) -> None:
    from rich.table import Table

    seeds = ", ".join(map(str, classifier.seeds))
    title = f"{escape(classifier.dataset.name)} / {escape(classifier.method)} (seeds {seeds}{', averaged' if len(classifier.seeds) > 1 else ''})"
    table = Table(title=title)
    table.add_column("image", overflow="fold")  # a path is worth showing whole
    for column in ("class", "prob", "top classes"):
        table.add_column(column)
    for r in results:
        if r.error:
            table.add_row(escape(r.path), "[red]error[/]", "", escape(r.error))
            continue
        top = ", ".join(f"{escape(name)} {p:.2f}" for name, p in r.top)
        table.add_row(escape(r.path), escape(r.label or ""), f"{r.probability:.3f}", top + (f" [yellow]({escape(r.note)})[/]" if r.note else ""))
    console.print(table)
    work = classifier.work
    if work.nothing:
        console.print("[dim]Descriptions and embeddings of these images were cached: nothing was computed.[/]")
    else:
        done = (([f"described {work.described} images"] if work.described else [])
                + ([f"reused the descriptions of {work.reused} images described before"] if work.reused else [])
                + ([f"computed {', '.join(work.embedded)}"] if work.embedded else []))
        console.print(f"[dim]{escape('; '.join(done))} (cached for the next predict on these files).[/]")

