"""What every command shares: the global state, loading config and store, and error reporting."""

from __future__ import annotations

import functools
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from lmmclf.config import ExperimentConfig, load_config
from lmmclf.console import console
from lmmclf.errors import LmmclfError
from lmmclf.store import ArtifactStore


@dataclass
class CliState:
    """Global options, set by the app callback and read by every command."""

    config_path: Optional[Path] = None
    cache_dir: Optional[Path] = None
    quiet: bool = False


def state(ctx: typer.Context) -> CliState:
    root = ctx.find_root()
    if not isinstance(root.obj, CliState):
        root.obj = CliState()
    return root.obj


def load(ctx: typer.Context, dataset: Optional[str] = None) -> tuple[ExperimentConfig, ArtifactStore]:
    """The effective config (file, then ``dataset`` argument) and the artifact store."""
    current = state(ctx)
    cfg = load_config(current.config_path)
    if dataset:
        cfg = cfg.override("dataset", name=dataset)
    return cfg, ArtifactStore(current.cache_dir)


def reports_user_errors(command: Callable) -> Callable:
    """Turn an :class:`LmmclfError` into one sentence on stderr and exit code 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any):
        try:
            return command(*args, **kwargs)
        except LmmclfError as exc:
            console.print(f"[bold red]Error:[/] {exc}", soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            console.print("[yellow]Interrupted.[/] Finished work is saved; run the same command again to resume.")
            raise typer.Exit(130) from None

    return wrapper


def print_json(value: Any) -> None:
    """Machine-readable output: JSON on stdout, nothing else there."""
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")
    sys.stdout.flush()


def require_dataset(cfg: ExperimentConfig) -> str:
    if not cfg.dataset.name:
        raise LmmclfError("No dataset given: pass DATASET (e.g. `lmmclf embed ucf101`) or set dataset.name in the config.")
    return cfg.dataset.name
