"""The ``lmmclf`` application: global options and the table of commands.

Every command lives in its own module; this file only wires them together. Nothing heavy
(torch, transformers, open_clip) is imported here or in the command modules' top level, so
``lmmclf --help`` answers at once.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Annotated, Optional

import typer

from lmmclf import __version__
from lmmclf.cli.common import CliState
from lmmclf.console import set_quiet

app = typer.Typer(
    name="lmmclf",
    help="Image classification with CLIP enriched by LMM descriptions: describe -> embed -> prototypes -> probe / finetune -> eval.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# (module, attribute, name): single commands and command groups, in pipeline order.
COMMANDS = [
    ("lmmclf.cli.describe_cmd", "describe", "describe"),
    ("lmmclf.cli.embed_cmd", "embed", "embed"),
    ("lmmclf.cli.prototypes_cmd", "prototypes", "prototypes"),
    ("lmmclf.cli.probe_cmd", "probe", "probe"),
    ("lmmclf.cli.finetune_cmd", "finetune", "finetune"),
    ("lmmclf.cli.eval_cmd", "evaluate", "eval"),
    ("lmmclf.cli.demo_cmd", "demo", "demo"),
]
GROUPS = [
    ("lmmclf.cli.datasets_cmd", "app", "datasets"),
    ("lmmclf.cli.cache_cmd", "app", "cache"),
    ("lmmclf.cli.config_cmd", "app", "config"),
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"lmmclf {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="Experiment YAML (default: built-in defaults).")] = None,
    cache_dir: Annotated[Optional[Path], typer.Option("--cache-dir", help="Artifact cache root (default: $LMMCLF_CACHE, else ~/.cache/lmmclf).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or tables on stderr.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    ctx.obj = CliState(config_path=config, cache_dir=cache_dir, quiet=quiet)
    set_quiet(quiet)
    # every command line printed during this run (hints deep in the library) carries these options;
    # reset when the command ends, so one CliRunner invocation does not leak into the next
    from lmmclf import stages

    token = stages.invocation.set(stages.Invocation(config_path=config, cache_dir=cache_dir))
    ctx.call_on_close(lambda: stages.invocation.reset(token))


def _register() -> None:
    for module_name, attribute, name in COMMANDS:
        app.command(name)(getattr(importlib.import_module(module_name), attribute))
    for module_name, attribute, name in GROUPS:
        app.add_typer(getattr(importlib.import_module(module_name), attribute), name=name)


_register()


def main() -> None:
    """Console-script entry point."""
    app()
