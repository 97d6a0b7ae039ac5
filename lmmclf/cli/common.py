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
from lmmclf.errors import LmmclfError, storage_errno, storage_error
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


# Commands that write artifacts: on a read-only or full cache they fail before any work, in one sentence.
WRITING_COMMANDS = {"describe", "embed", "prototypes", "probe", "finetune", "demo"}


def load(ctx: typer.Context, dataset: Optional[str] = None) -> tuple[ExperimentConfig, ArtifactStore]:
    """The effective config (file, then ``dataset`` argument) and the artifact store.

    A command that writes (see ``WRITING_COMMANDS``; ``eval`` with ``--compute-missing``) checks
    here that the cache can be written; reading commands work on a read-only cache.
    """
    current = state(ctx)
    cfg = load_config(current.config_path)
    if dataset:
        cfg = cfg.override("dataset", name=dataset)
    store = ArtifactStore(current.cache_dir)
    if ctx.info_name in WRITING_COMMANDS or (ctx.info_name == "eval" and ctx.params.get("compute_missing")):
        store.require_writable()
    return cfg, store


def reports_user_errors(command: Callable) -> Callable:
    """Turn an :class:`LmmclfError` into one sentence on stderr and exit code 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any):
        try:
            return command(*args, **kwargs)
        except LmmclfError as exc:
            print_error(exc)
            raise typer.Exit(1) from None
        except (OSError, RuntimeError) as exc:
            if storage_errno(exc) is None:
                raise  # a bug: keep its traceback
            print_error(storage_error(exc))
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            console.print("[yellow]Interrupted.[/] Finished work is saved; run the same command again to resume.")
            raise typer.Exit(130) from None

    return wrapper


def print_error(exc: BaseException) -> None:
    """One sentence on stderr; its text is printed as written (``[x]`` in a path is not Rich markup)."""
    from rich.markup import escape

    console.print(f"[bold red]Error:[/] {escape(str(exc))}", soft_wrap=True)


def print_json(value: Any) -> None:
    """Machine-readable output: JSON on stdout, nothing else there."""
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")
    sys.stdout.flush()


def require_dataset(cfg: ExperimentConfig) -> str:
    if not cfg.dataset.name:
        raise LmmclfError("No dataset given: pass DATASET (e.g. `lmmclf embed ucf101`) or set dataset.name in the config.")
    return cfg.dataset.name
