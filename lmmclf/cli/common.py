"""What every command shares: the global state, loading the config (file, --set, DATASET) and store, stage flags over it, and error reporting."""

from __future__ import annotations

import functools
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from lmmclf.config import ExperimentConfig, load_config
from lmmclf.config_sets import apply_sets, for_dataset
from lmmclf.console import console
from lmmclf.errors import ConfigError, LmmclfError, storage_errno, storage_error
from lmmclf.store import ArtifactStore


@dataclass
class CliState:
    """Global options, set by the app callback and read by every command."""

    config_path: Optional[Path] = None  # -c, else $LMMCLF_CONFIG
    cache_dir: Optional[Path] = None
    quiet: bool = False
    sets: tuple[str, ...] = ()  # each --set SECTION.KEY=VALUE, in order
    config_from_env: bool = False  # config_path came from $LMMCLF_CONFIG


def state(ctx: typer.Context) -> CliState:
    root = ctx.find_root()
    if not isinstance(root.obj, CliState):
        root.obj = CliState()
    return root.obj


# Commands that write artifacts: on a read-only or full cache they fail before any work, in one sentence.
WRITING_COMMANDS = {"describe", "embed", "prototypes", "probe", "finetune", "demo", "predict"}


CONFIG_ENV = "LMMCLF_CONFIG"  # the config file used when -c is absent: set once for a shell script


def load(ctx: typer.Context, dataset: Optional[str] = None) -> tuple[ExperimentConfig, ArtifactStore]:
    """The effective config (file, then each ``--set``, then the ``dataset`` argument) and the artifact store.

    The stage's own flags go on top (:func:`override_flags`). A command that writes (see
    ``WRITING_COMMANDS``; ``eval`` with ``--compute-missing``) checks here that the cache can be
    written; reading commands work on a read-only cache.
    """
    current = state(ctx)
    try:
        cfg = load_config(current.config_path)
    except ConfigError as exc:
        if current.config_from_env and not Path(current.config_path).is_file():
            raise ConfigError(f"${CONFIG_ENV} names {current.config_path}, which is not a file; "
                              f"point it at your experiment YAML or unset it.") from exc
        raise
    cfg = apply_sets(cfg, current.sets)
    if dataset:
        _not_a_flag_value(ctx, dataset)
        cfg = for_dataset(cfg, dataset, current.sets)
    store = ArtifactStore(current.cache_dir)
    if ctx.info_name in WRITING_COMMANDS or (ctx.info_name == "eval" and ctx.params.get("compute_missing")):
        store.require_writable()
    return cfg, store


_BOOLEAN_WORDS = {"true", "false", "yes", "no", "on", "off"}


def _not_a_flag_value(ctx: typer.Context, dataset: str) -> None:
    """``--json true`` gives the flag no value: "true" lands in DATASET. Say so, unless such a dataset exists."""
    if dataset.lower() not in _BOOLEAN_WORDS:
        return
    from lmmclf.datasets.registry import ADAPTERS, read_registry

    if dataset not in read_registry() and dataset not in ADAPTERS:
        raise typer.BadParameter(f"'{dataset}' is not a dataset: flags such as --json and --force take no value "
                                 f"(write --json, not --json {dataset}).", ctx=ctx, param_hint="DATASET")


def override_flags(ctx: typer.Context, cfg: ExperimentConfig, section: str, flags: Optional[dict[str, str]] = None,
                   **values: Any) -> ExperimentConfig:
    """``cfg.override(section, **values)`` for values from this command's flags.

    A bad value is a usage error (exit 2) naming the flag, not the config key: the user typed a flag.

    Args:
        ctx: the command's context (its parameters name the flags).
        cfg: the config so far (file, ``--set``, dataset).
        section: the config section the flags set.
        flags: config key -> flag, where the flag is not ``--KEY`` with dashes (e.g. ``{"zeroshot_templates": "--templates"}``).
        values: config key -> the flag's value; None (not given) is ignored.
    """
    for key, value in values.items():
        if value is None:
            continue
        try:
            cfg.override(section, **{key: value})
        except ConfigError as exc:
            flag = _flag_name(ctx, key, flags or {})
            text = str(exc).removeprefix("config: ")
            text = text.removeprefix(f"{section}.{key} ") if text.startswith(f"{section}.{key} ") else text
            raise typer.BadParameter(text, ctx=ctx, param_hint=flag) from None
    return cfg.override(section, **values)


def _flag_name(ctx: typer.Context, key: str, flags: dict[str, str]) -> str:
    if key in flags:
        return flags[key]
    wanted = "--" + key.replace("_", "-")
    for param in ctx.command.params:
        names = [*getattr(param, "opts", ()), *getattr(param, "secondary_opts", ())]
        if wanted in names or param.name == key:
            return max(param.opts, key=len)
    return wanted


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

    from lmmclf.console import print_always

    print_always(f"[bold red]Error:[/] {escape(str(exc))}", soft_wrap=True)  # -q silences noise, not errors


def print_json(value: Any) -> None:
    """Machine-readable output: JSON on stdout, nothing else there."""
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")
    sys.stdout.flush()


def require_dataset(cfg: ExperimentConfig) -> str:
    if not cfg.dataset.name:
        raise LmmclfError("No dataset given: pass DATASET (e.g. `lmmclf embed ucf101`) or set dataset.name in the config.")
    return cfg.dataset.name
