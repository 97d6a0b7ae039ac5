"""``lmmclf probe``: a linear probe (or a zero-shot baseline) on the cached embeddings."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from lmmclf.cli.common import load, override_flags, print_json, reports_user_errors, require_dataset
from lmmclf.cli.options import BatchSizeOpt, DatasetArg, DeviceOpt, ForceOpt, JsonOpt, SeedsOpt
from lmmclf.console import console

_PANEL = "Training (paper 1: 500 epochs, lr 1e-3)"


@reports_user_errors
def probe(
    ctx: typer.Context,
    dataset: DatasetArg = None,
    features: Annotated[Optional[str], typer.Option("--features", help="image | text | concat | mean | zeroshot | prototype-zeroshot (comma-separated for several; default concat).")] = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", help="Epochs (paper: 500).", rich_help_panel=_PANEL)] = None,
    lr: Annotated[Optional[float], typer.Option("--lr", help="Learning rate (paper: 1e-3).", rich_help_panel=_PANEL)] = None,
    optimizer: Annotated[Optional[str], typer.Option("--optimizer", help="sgd (default, momentum 0.9), adam or adamw.", rich_help_panel=_PANEL)] = None,
    momentum: Annotated[Optional[float], typer.Option("--momentum", help="SGD momentum (default 0.9).", rich_help_panel=_PANEL)] = None,
    weight_decay: Annotated[Optional[float], typer.Option("--weight-decay", help="Weight decay (default 0).", rich_help_panel=_PANEL)] = None,
    batch_size: BatchSizeOpt = None,
    normalize: Annotated[Optional[bool], typer.Option("--normalize/--no-normalize", help="L2-normalise every embedding first (default off: the papers use raw embeddings).", rich_help_panel=_PANEL)] = None,
    val_fraction: Annotated[Optional[float], typer.Option("--val-fraction", help="Hold out this share of each training class for honest epoch selection (default 0).", rich_help_panel=_PANEL)] = None,
    seeds: SeedsOpt = None,
    templates: Annotated[Optional[str], typer.Option("--templates", help="Zero-shot prompts: ensemble (default), single, or 'a photo of a {}.|art of the {}.'.")] = None,
    device: DeviceOpt = None,
    force: ForceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Train one linear layer with cross entropy on image, text, concat or mean features (paper 1, Table 2), or score a zero-shot baseline.

    Reports the test accuracy after the last epoch (the headline) and the best epoch's, which is picked
    on the test set and therefore optimistic; use --val-fraction for an honest choice.
    """
    from lmmclf.datasets import load_dataset
    from lmmclf.probe.stage import run_probe
    from lmmclf.results import read_runs, summarize

    cfg, store = load(ctx, dataset)
    require_dataset(cfg)
    cfg = override_flags(
        ctx, cfg, "probe", {"zeroshot_templates": "--templates"}, epochs=epochs, lr=lr, optimizer=optimizer, momentum=momentum, weight_decay=weight_decay,
        batch_size=batch_size, normalize=normalize, val_fraction=val_fraction, seeds=seeds, device=device,
        zeroshot_templates=templates,
    )
    kinds = [k.strip() for k in (features or cfg.probe.features).split(",") if k.strip()]
    for kind in kinds if features else ():  # every method checked before the first one trains
        override_flags(ctx, cfg, "probe", features=kind)
    index = load_dataset(cfg, store, show_progress=not console.quiet)
    results = []
    for kind in kinds:
        cfg_kind = cfg.override("probe", features=kind)
        path = run_probe(cfg_kind, index, store, force=force)
        import h5py

        with h5py.File(path, "r") as handle:
            runs = read_runs(handle)
        results.append({"features": kind, "key": path.stem, **summarize(runs), "runs": [_run_json(run) for run in runs]})
    if as_json:
        print_json(results)
        return
    _print(results)


def _run_json(run) -> dict:
    return {"seed": run.seed, "final_acc": run.final_acc, "best_acc": run.best_acc, "best_epoch": run.best_epoch,
            "selected_epoch": run.selected_epoch, "selected_acc": run.selected_acc,
            "train_loss": run.train_loss.tolist(), "test_acc": run.test_acc.tolist()}


def _print(results: list[dict]) -> None:
    from rich.table import Table

    table = Table(title="Linear probe (test accuracy, %)")
    for column in ("features", "seed", "final", "best (epoch, optimistic)", "val-selected"):
        table.add_column(column, justify="left" if column == "features" else "right")
    for result in results:
        for run in result["runs"]:
            best = f"{100 * run['best_acc']:.2f} ({run['best_epoch']})" if run["best_epoch"] else "-"
            selected = f"{100 * run['selected_acc']:.2f} ({run['selected_epoch']})" if run["selected_epoch"] else "-"
            table.add_row(result["features"], str(run["seed"]), f"{100 * run['final_acc']:.2f}", best, selected)
        if len(result["runs"]) > 1:
            table.add_row(result["features"], "mean ± std", f"{100 * result['mean']:.2f} ± {100 * result['std']:.2f}", "", "", style="bold")
    console.print(table)
