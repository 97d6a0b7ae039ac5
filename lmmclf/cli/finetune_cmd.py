"""``lmmclf finetune``: LMM-regularised fine-tuning of CLIP's image encoder (paper 2), or its baseline."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.markup import escape

from lmmclf.cli.common import load, override_flags, print_json, reports_user_errors, require_dataset
from lmmclf.cli.options import (
    BatchSizeOpt,
    DatasetArg,
    DeviceOpt,
    ForceOpt,
    JsonOpt,
    SeedsOpt,
)
from lmmclf.console import console

_PANEL = "Training"
_SPEED = "Speed and memory"


@reports_user_errors
def finetune(
    ctx: typer.Context,
    dataset: DatasetArg = None,
    alpha: Annotated[Optional[float], typer.Option("--alpha", help="Weight of the prototype term (paper: 0.01); 0 = the 'Finetuning w/o Reg.' baseline.", rich_help_panel=_PANEL)] = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", help="Epochs (paper: 100).", rich_help_panel=_PANEL)] = None,
    batch_size: BatchSizeOpt = None,
    lr: Annotated[Optional[float], typer.Option("--lr", help="Learning rate (paper: 1e-4).", rich_help_panel=_PANEL)] = None,
    optimizer: Annotated[Optional[str], typer.Option("--optimizer", help="adam, adamw or sgd (default adam).", rich_help_panel=_PANEL)] = None,
    weight_decay: Annotated[Optional[float], typer.Option("--weight-decay", help="Weight decay (default 0).", rich_help_panel=_PANEL)] = None,
    schedule: Annotated[Optional[str], typer.Option("--schedule", help="constant or cosine learning rate (default constant).", rich_help_panel=_PANEL)] = None,
    reg_reduction: Annotated[Optional[str], typer.Option("--reg-reduction", help="mean (default) or sum of the squared distances over a batch.", rich_help_panel=_PANEL)] = None,
    unlocked_blocks: Annotated[Optional[int], typer.Option("--unlocked-blocks", help="Trailing transformer blocks to train, plus ln_post and proj (default 1).", rich_help_panel=_PANEL)] = None,
    augment: Annotated[Optional[bool], typer.Option("--augment/--no-augment", help="Random resized crops of the training images (off in the paper; disables the trunk cache).", rich_help_panel=_PANEL)] = None,
    seeds: SeedsOpt = None,
    trunk_cache: Annotated[Optional[bool], typer.Option("--trunk-cache/--no-trunk-cache", help="Compute the frozen blocks' output once and train only the tail (default on).", rich_help_panel=_SPEED)] = None,
    trunk_dtype: Annotated[Optional[str], typer.Option("--trunk-dtype", help="Storage of the trunk cache: float16 (default, half the disk) or float32.", rich_help_panel=_SPEED)] = None,
    precision: Annotated[Optional[str], typer.Option("--precision", help="auto (bf16 on GPUs that have it, else fp16; fp32 on CPU), fp32, bf16, fp16.", rich_help_panel=_SPEED)] = None,
    grad_checkpointing: Annotated[Optional[bool], typer.Option("--grad-checkpointing/--no-grad-checkpointing", help="Recompute the tail blocks' activations in the backward pass (less memory with many unlocked blocks).", rich_help_panel=_SPEED)] = None,
    device: DeviceOpt = None,
    resume: Annotated[bool, typer.Option("--resume/--no-resume", help="Continue an interrupted run of the same configuration from its checkpoint.")] = True,
    force: ForceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Fine-tune CLIP's last image-encoder block(s) and a linear head with CE + alpha * ||x - C_label||^2.

    Needs the class prototypes (`lmmclf prototypes DATASET`). One run per seed; results are cached by every setting that changes them. Ctrl-C saves a checkpoint; run the same command again to continue.
    """
    from lmmclf.finetune import run_finetune
    from lmmclf.finetune.trainer import TrainingInterrupted

    cfg, store = load(ctx, dataset)
    require_dataset(cfg)
    cfg = override_flags(
        ctx, cfg, "finetune", alpha=alpha, epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer,
        weight_decay=weight_decay, schedule=schedule, reg_reduction=reg_reduction, unlocked_blocks=unlocked_blocks,
        augment=augment, seeds=seeds, trunk_cache=trunk_cache, trunk_dtype=trunk_dtype, precision=precision,
        grad_checkpointing=grad_checkpointing, device=device,
    )
    try:
        outcomes = run_finetune(cfg, store, show_progress=not console.quiet, resume=resume, force=force)
    except TrainingInterrupted as exc:
        console.print(f"[yellow]Interrupted.[/] {escape(str(exc))} Run the same command again to resume (or add --no-resume to start over).")
        raise typer.Exit(130) from None
    if as_json:
        print_json([_summary(outcome) for outcome in outcomes])
        return
    _print_table(cfg, outcomes)


def _summary(outcome) -> dict:
    run = outcome.run
    return {
        "seed": run.seed,
        "key": outcome.key,
        "final_acc": run.final_acc,
        "best_acc": run.best_acc,
        "best_epoch": run.best_epoch,
        "trained": outcome.trained,
        "metrics": str(outcome.path),
        "weights": str(outcome.weights),
        "curves": {"train_loss": run.train_loss.tolist(), "test_acc": run.test_acc.tolist(),
                   **{name: values.tolist() for name, values in run.curves.items()}},
    }


def _print_table(cfg, outcomes) -> None:
    from rich.table import Table

    from lmmclf.results import summarize

    method = "LMM-Reg.-CLIP" if cfg.finetune.alpha else "Finetuning w/o Reg."
    table = Table(title=f"{method} on {cfg.dataset.name} (alpha={cfg.finetune.alpha:g}, {cfg.finetune.epochs} epochs)")
    for column in ("seed", "final acc", "best acc (epoch)", "final proto distance", "key", ""):
        table.add_column(column)
    for outcome in outcomes:
        run = outcome.run
        distance = run.curves.get("proto_distance")
        table.add_row(str(run.seed), f"{run.final_acc:.2%}", f"{run.best_acc:.2%} ({run.best_epoch})",
                      f"{distance[-1]:.4f}" if distance is not None and len(distance) else "-",
                      outcome.key[:12], "trained" if outcome.trained else "cached")
    console.print(table)
    if len(outcomes) > 1:
        summary = summarize([outcome.run for outcome in outcomes])
        console.print(f"mean final accuracy {summary['mean']:.2%} ± {summary['std']:.2%} over {len(outcomes)} seeds")
