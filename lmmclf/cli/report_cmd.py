"""``lmmclf report``: a static site of the descriptions, the gallery, the methods and label leakage."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from lmmclf.cli.common import load, reports_user_errors, require_dataset
from lmmclf.cli.options import DatasetArg
from lmmclf.console import console

DEFAULT_OUT = "report"  # under eval.out_dir: results/{dataset}/report by default


@reports_user_errors
def report(
    ctx: typer.Context,
    dataset: DatasetArg = None,
    out: Annotated[Optional[Path], typer.Option("--out", metavar="DIR", show_default="eval.out_dir/report", help="The report folder; {dataset} stands for the dataset's name (default: eval.out_dir/report, results/{dataset}/report).")] = None,
    method: Annotated[Optional[list[str]], typer.Option("--method", "-m", show_default="all", help="Methods to show: image | text | concat | mean | zeroshot | prototype-zeroshot | finetune | lmm-reg | all (repeat or comma-separate; default: all that are cached).")] = None,
) -> None:
    """Build a static report (index.html) of what the cache holds for DATASET and print its path.

    The settings in effect choose the artifacts, exactly as for `eval`: the describe artifact
    (model, prompt, answer shapes, failures, distributions), a gallery of every image with its
    descriptions and each method's prediction (filters by class, split, right/wrong, failed
    descriptions, text search), the methods' accuracy (the numbers of `eval --json`), per-class
    accuracy, confusion and confused pairs, and label leakage; report.json holds the numbers.
    A section the cache cannot fill is named with the command that makes it. The page opens
    from disk with no network.
    """
    from lmmclf.datasets import load_dataset
    from lmmclf.report.build import build_report, check_out_dir
    from lmmclf.results import output_dir

    cfg, store = load(ctx, dataset)
    require_dataset(cfg)
    target = output_dir(str(out) if out else f"{cfg.eval.out_dir}/{DEFAULT_OUT}", cfg.dataset.name)
    check_out_dir(target)  # before any work
    index = load_dataset(cfg, store, show_progress=not console.quiet)
    try:
        result = build_report(cfg, index, store, target, method or ["all"], show_progress=not console.quiet)
    except OSError as exc:
        from lmmclf.report.build import out_dir_error

        raise out_dir_error(target, exc.strerror or str(exc)) from exc
    document = result.document
    shown = ", ".join(document["methods"]) or "none"
    console.print(f"Report of {escape(index.name)}: {result.images} images, methods: {escape(shown)}.")
    for entry in document["missing"]:
        console.print(f"[yellow]Not in the report[/]: {escape(entry['section'])}: {escape(entry['reason'])} "
                      f"Make it with: {escape(' ; '.join(entry['commands']))}", soft_wrap=True)
    if document["thumbnails_failed"]:
        console.print(f"[yellow]{len(document['thumbnails_failed'])} images could not be read[/] (no thumbnail; "
                      "listed in report.json, thumbnails_failed).")
    typer.echo(str(result.index))
