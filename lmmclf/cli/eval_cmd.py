"""``lmmclf eval``: the results table, files, accuracy plot and paired comparison, from the cache."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from lmmclf.cli.common import load, override_flags, print_json, reports_user_errors, require_dataset
from lmmclf.cli.options import DatasetArg, JsonOpt
from lmmclf.console import console


@reports_user_errors
def evaluate(
    ctx: typer.Context,
    dataset: DatasetArg = None,
    method: Annotated[Optional[list[str]], typer.Option("--method", "-m", help="image | text | concat | mean | zeroshot | prototype-zeroshot | finetune | lmm-reg | all (repeat or comma-separate; default: eval.methods).")] = None,
    compare: Annotated[Optional[str], typer.Option("--compare", help="Two methods A,B: accuracy difference with a bootstrap CI and McNemar's test, paired on the test images both were tested on (the output says when their test sets differ).")] = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out-dir", help="Where results.json/.csv/.md and accuracy.png go; {dataset} stands for the dataset's name (default: eval.out_dir, results/{dataset}).")] = None,
    compute_missing: Annotated[bool, typer.Option("--compute-missing", help="Run the stages whose artifacts are missing instead of naming their commands.")] = False,
    plot: Annotated[bool, typer.Option("--plot/--no-plot", help="Write accuracy.png, test accuracy per epoch (needs matplotlib).")] = True,
    bootstrap: Annotated[Optional[int], typer.Option("--bootstrap", help="Bootstrap resamples for --compare (default 2000).")] = None,
    clip_benchmark: Annotated[bool, typer.Option("--clip-benchmark", help="Also write each row as CLIP_benchmark's result JSON (acc1, mean_per_class_recall; lp_ for probes) under OUT_DIR/clip_benchmark.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Compose the cached results of the methods into a table like the paper's Table 2, files and a plot.

    Keys are computed from the config, so `eval` shows exactly what the other commands made with it.
    Methods not computed yet are listed with the commands that make them (joined with `&&`, each
    carrying the global options in effect): with `--method all` under the table of those that are
    cached; when a method named with `--method` is missing, eval exits 1 with that list and the
    names of the methods that are cached.
    """
    from lmmclf.datasets import load_dataset
    from lmmclf.evaluation.report import check_out_dir, out_dir_error
    from lmmclf.evaluation.report import evaluate as build
    from lmmclf.evaluation.tables import comparison_sentence, missing_commands, rich_table, write_files

    cfg, store = load(ctx, dataset)
    require_dataset(cfg)
    cfg = override_flags(ctx, cfg, "eval", bootstrap=bootstrap)
    names = method or cfg.eval.methods
    pair = [p.strip() for p in compare.split(",") if p.strip()] if compare else cfg.eval.compare
    from lmmclf.results import output_dir

    target = output_dir(str(out_dir or cfg.eval.out_dir), cfg.dataset.name)
    check_out_dir(target)  # before any work: a bad folder must not cost a --compute-missing run
    index = load_dataset(cfg, store, show_progress=not console.quiet)
    document, missing = build(cfg, index, store, names, pair, compute_missing)
    title = f"{index.name}: test accuracy"
    try:  # the folder can still fail now (full disk, changed meanwhile): the same sentence
        files = write_files(target, document, title)
        if clip_benchmark:
            from lmmclf.evaluation import clip_benchmark as cb

            files += cb.write(target / "clip_benchmark", document, cfg.embed.clip_model, cfg.embed.clip_pretrained)
        if plot:
            from lmmclf.errors import LmmclfError
            from lmmclf.evaluation.plots import plot_curves

            try:
                png = plot_curves(document["methods"], target / "accuracy.png", title)
                if png:
                    files.append(png)
            except LmmclfError as exc:
                console.print(f"[yellow]{escape(str(exc))}[/]")
    except OSError as exc:
        raise out_dir_error(target, exc.strerror or str(exc)) from exc
    document["files"] = [str(path) for path in files]
    if as_json:
        print_json(document)
        return
    rows_missing = [(escape(m.method.name), escape(m.chain)) for m in missing]
    console.print(rich_table(document["methods"], title, rows_missing))
    for line in missing_commands(rows_missing):
        console.print(line, soft_wrap=True, highlight=False)
    if "comparison" in document:
        console.print(comparison_sentence(document["comparison"]))
    console.print(f"[dim]Wrote {escape(', '.join(str(path) for path in files))}[/]")
