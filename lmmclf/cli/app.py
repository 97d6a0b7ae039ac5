"""The ``lmmclf`` application: global options and the table of commands.

Every command lives in its own module; this file only wires them together. Nothing heavy
(torch, transformers, open_clip) is imported here or in the command modules' top level, so
``lmmclf --help`` answers at once.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from typer.core import TyperGroup

from lmmclf import __version__
from lmmclf.cli.common import CONFIG_ENV, CliState
from lmmclf.console import set_quiet

# The global options, by how they are spelled: those taking a value and the flags.
GLOBAL_VALUE_OPTIONS = ("-c", "--config", "--cache-dir", "--set")
GLOBAL_FLAGS = ("-q", "--quiet")


def hoist_global_options(args: list[str]) -> list[str]:
    """``args`` with global options given after the command moved before it.

    ``lmmclf describe mine -c x.yaml`` then means ``lmmclf -c x.yaml describe mine``: no command
    has options of these names, and a script that puts them last should not fail on a technicality.
    Words after ``--`` stay where they are.
    """
    i = 0
    while i < len(args):  # skip the global options already in front, to find the command
        word = args[i]
        if word in GLOBAL_VALUE_OPTIONS:
            i += 2
        elif word.startswith("-"):
            if word in ("-h", "--help", "--version"):
                return args
            i += 1
        else:
            break
    front, rest, moved = args[:i + 1], [], []
    j = i + 1
    while j < len(args):
        word = args[j]
        if word == "--":
            rest += args[j:]
            break
        if word in GLOBAL_VALUE_OPTIONS and j + 1 < len(args):
            moved += args[j:j + 2]
            j += 2
            continue
        if word in GLOBAL_FLAGS or any(word.startswith(f"{name}=") for name in GLOBAL_VALUE_OPTIONS if name.startswith("--")):
            moved.append(word)
        else:
            rest.append(word)
        j += 1
    if not moved:
        return args
    return [*front[:-1], *moved, *front[-1:], *rest]


# Options whose config key is not their own name (the key's section is the command's).
OPTION_KEYS = {"templates": "zeroshot_templates", "compile_decoding": "compile", "method": "methods"}
# Commands whose options set a section other than their own name's.
COMMAND_SECTIONS = {"datasets": "dataset", "info": "dataset", "check": "dataset", "eval": "eval"}


def _default_text(command_name: str, param_name: str) -> str:
    """What an option left unset means: the config key it overrides and its built-in value, or none."""
    from lmmclf.config import ExperimentConfig

    section = COMMAND_SECTIONS.get(command_name, command_name)
    values = getattr(ExperimentConfig(), section, None)
    key = OPTION_KEYS.get(param_name, param_name)
    if values is None or not hasattr(values, key):
        return "none"
    value = getattr(values, key)
    shown = ",".join(map(str, value)) if isinstance(value, list) else {None: "none", True: "true", False: "false"}.get(value, value)
    return f"{section}.{key}; built-in {shown}"


def _tidy_help(command: Any) -> None:
    """Every option shows its default; flags show no value placeholder (they take none). Recursive.

    An option left unset keeps the config's value, so its default is named as that config key
    (what ``--set`` and ``-c`` change) with the built-in value.
    """
    for param in command.params:
        if getattr(param, "is_flag", False):  # duck-typed: typer may bring its own copy of click
            param.metavar = ""
            if param.default is False and not param.secondary_opts and not isinstance(param.show_default, str):
                param.show_default = "off"
        if (getattr(param, "param_type_name", "") == "option" and param.default is None
                and not isinstance(param.show_default, str)):
            param.show_default = _default_text(command.name or "", param.name)
    make_help_option = command.get_help_option

    def get_help_option(ctx: Any) -> Any:  # -h/--help is made when help is asked for
        option = make_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option

    command.get_help_option = get_help_option
    for sub in getattr(command, "commands", {}).values():
        _tidy_help(sub)


class LmmclfGroup(TyperGroup):
    """The root command: accepts global options after the command and tidies every command's help."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        _tidy_help(self)

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoist_global_options(list(args)))


app = typer.Typer(
    cls=LmmclfGroup,
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
    ("lmmclf.cli.bench_cmd", "bench", "bench"),
    ("lmmclf.cli.report_cmd", "report", "report"),
    ("lmmclf.cli.predict_cmd", "predict", "predict"),
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
    config: Annotated[Optional[Path], typer.Option("--config", "-c", metavar="FILE", show_default=f"${CONFIG_ENV}, else built-in defaults", help="Experiment YAML.")] = None,
    settings: Annotated[Optional[list[str]], typer.Option("--set", metavar="SECTION.KEY=VALUE", show_default="none", help="Set one config value over the config file (repeatable; the stage's flags still win), e.g. --set describe.model=/data/tiny-llava. Later stages computing their inputs need the same --set.")] = None,
    cache_dir: Annotated[Optional[Path], typer.Option("--cache-dir", metavar="DIR", show_default="$LMMCLF_CACHE, else ~/.cache/lmmclf", help="Artifact cache root.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or tables on stderr.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    """Global options go before the command (after it they are moved there)."""
    from lmmclf.config_sets import parse_set
    from lmmclf.errors import ConfigError

    sets = tuple(settings or ())
    for text in sets:  # a bad --set is a usage error, found before any work
        try:
            parse_set(text)
        except ConfigError as exc:
            hint, _, text = str(exc).partition(": ")  # "--set probe.epochs: probe.epochs must be ..."
            raise typer.BadParameter(text or hint, ctx=ctx, param_hint=hint if text else "--set") from None
    from_env = config is None and bool(os.environ.get(CONFIG_ENV))
    ctx.obj = CliState(config_path=Path(os.environ[CONFIG_ENV]) if from_env else config, cache_dir=cache_dir,
                       quiet=quiet, sets=sets, config_from_env=from_env)
    set_quiet(quiet)
    ctx.call_on_close(lambda: set_quiet(False))  # -q reaches libraries through the environment: undo it after the command
    # every command line printed during this run (hints deep in the library) carries these options
    # (a config from $LMMCLF_CONFIG is not repeated: the environment carries it to the next command);
    # reset when the command ends, so one CliRunner invocation does not leak into the next
    from lmmclf import stages

    token = stages.invocation.set(stages.Invocation(config_path=config, cache_dir=cache_dir, sets=sets))
    ctx.call_on_close(lambda: stages.invocation.reset(token))


def input_sections(stage: str) -> list[str]:
    """The config sections that make a stage's inputs: those of every stage upstream, from the stage table."""
    from lmmclf import stages

    seen: list[str] = []
    todo = list(stages.STAGES[stage].parents)
    while todo:
        parent = stages.STAGES[todo.pop(0)]
        if parent.name not in seen:
            seen.append(parent.name)
            todo += parent.parents
    order = [s.section for s in stages.STAGES.values() if s.name in seen and s.section]
    return ["dataset", *order]


def _epilog(name: str) -> str | None:
    """A stage's help ends with the config sections it reads: a later stage finds its inputs only with the same settings."""
    from lmmclf import stages

    if name not in stages.STAGES:
        return None
    feeds = ", ".join(f"{section}.*" for section in input_sections(name))
    own = stages.STAGES[name].section
    return (f"Reads {feeds} to find its inputs{f' and {own}.* for its own settings' if own else ''}; "
            "set them with --set SECTION.KEY=VALUE or -c FILE (before the command), the same for every stage.")


def _register() -> None:
    for module_name, attribute, name in COMMANDS:
        app.command(name, epilog=_epilog(name))(getattr(importlib.import_module(module_name), attribute))
    for module_name, attribute, name in GROUPS:
        app.add_typer(getattr(importlib.import_module(module_name), attribute), name=name)


_register()


def main() -> None:
    """Console-script entry point."""
    app()
