"""``lmmclf bench``: the chosen methods on many datasets, one table (lmmclf.evaluation.bench)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from lmmclf.cli.common import load, print_json, reports_user_errors, state
from lmmclf.cli.options import JsonOpt
from lmmclf.console import console


def _missing(cfg, index, store, methods) -> list:
    """The methods of ``methods`` not cached for ``index``, each with the commands that make it."""
    from lmmclf.evaluation.report import Missing
    from lmmclf.missing_inputs import commands_to_make

    out = []
    for method in methods:
        specs = method.specs(cfg, index, store)
        absent = [spec for spec in specs if not store.is_complete(spec.stage, spec.key)]
        if absent:
            out.append(Missing(method, method.command(cfg, index.name), commands_to_make(cfg, index, absent, store)))
    return out


@reports_user_errors
def bench(
    ctx: typer.Context,
    datasets: Annotated[str, typer.Option("--datasets", "-d", help="Registered datasets, comma-separated: the table's rows, in this order.")],
    method: Annotated[Optional[list[str]], typer.Option("--method", "-m", help="Methods, the table's columns (as eval's --method; default: eval.methods).")] = None,
    from_cache: Annotated[bool, typer.Option("--from-cache", help="Only collect what is cached; compute nothing (missing methods are listed with their commands).")] = False,
    out_dir: Annotated[Path, typer.Option("--out-dir", help="Where bench.json/.csv/.md go.")] = Path("results/bench"),
    clip_benchmark: Annotated[bool, typer.Option("--clip-benchmark", help="Also write every cell as CLIP_benchmark's result JSON under OUT_DIR/clip_benchmark.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Run (or, with --from-cache, collect) the methods on each dataset and write one table: rows datasets, columns methods, plus the mean.

    Every cell is what `eval DATASET --method ...` reports with the same options. A dataset whose
    inputs are missing is listed with the commands that make them; the others still run. Rerunning
    resumes: what was computed before is read from the cache.
    """
    from lmmclf.config_sets import for_dataset
    from lmmclf.datasets import load_dataset
    from lmmclf.errors import LmmclfError
    from lmmclf.evaluation.bench import run_bench, write_files
    from lmmclf.evaluation.methods import resolve_methods
    from lmmclf.evaluation.report import check_out_dir, evaluate, out_dir_error

    base, store = load(ctx)
    names = [d.strip() for d in datasets.split(",") if d.strip()]
    if not names:
        raise LmmclfError("--datasets names no dataset: give registered names, e.g. --datasets dtd,eurosat.")
    methods = resolve_methods(method or base.eval.methods)
    if not from_cache:
        store.require_writable()
    check_out_dir(out_dir)
    sets = state(ctx).sets
    found: dict[str, list] = {}

    def evaluate_one(name: str) -> dict:
        cfg = for_dataset(base, name, sets)
        index = load_dataset(cfg, store, show_progress=not console.quiet)
        found[name] = _missing(cfg, index, store, methods)
        chosen = methods
        if from_cache:
            chosen = [m for m in methods if m.name not in {x.method.name for x in found[name]}]
            if not chosen:
                raise LmmclfError(f"Dataset {name}: no chosen method is cached with these settings.")
        document, _ = evaluate(cfg, index, store, [m.name for m in chosen], None, compute_missing=not from_cache)
        return document

    def on_failure(name: str, exc: Exception) -> dict:
        return {"error": str(exc).splitlines()[0], "commands": [m.chain for m in found.get(name, [])]}

    result = run_bench(names, evaluate_one, [m.name for m in methods], on_failure)
    if from_cache:  # the datasets that ran may still lack some methods: say which, with their commands
        for name in result.documents:
            if found.get(name):
                result.failures[name] = {"error": "not cached: " + ", ".join(m.method.name for m in found[name]),
                                         "commands": [m.chain for m in found[name]]}
    labels = {m.name: m.label for m in methods}
    try:
        files = write_files(out_dir, result, labels)
        if clip_benchmark:
            from lmmclf.evaluation import clip_benchmark as cb

            for document in result.documents.values():
                files += cb.write(out_dir / "clip_benchmark", document, base.embed.clip_model, base.embed.clip_pretrained)
    except OSError as exc:
        raise out_dir_error(out_dir, exc.strerror or str(exc)) from exc
    document = {**result.to_document(), "files": [str(p) for p in files]}
    if as_json:
        print_json(document)
    else:
        from lmmclf.evaluation.bench import to_markdown

        console.print(escape(to_markdown(result, labels)), soft_wrap=True)  # Markdown rows and commands stay whole
        console.print(f"[dim]Wrote {escape(', '.join(map(str, files)))}[/]")
    if not result.documents:
        raise typer.Exit(1)  # nothing usable: every dataset failed
