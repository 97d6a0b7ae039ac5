"""``lmmclf config``: show the effective experiment config (defaults, file, flags)."""

from __future__ import annotations

import typer

from lmmclf.cli.common import load, print_json, reports_user_errors
from lmmclf.cli.options import JsonOpt

app = typer.Typer(help="Inspect the experiment config.", no_args_is_help=True)


@app.command("show")
@reports_user_errors
def show(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Print the effective config: built-in defaults updated by --config FILE."""
    cfg, _ = load(ctx)
    if as_json:
        print_json(cfg.to_dict())
    else:
        typer.echo(cfg.to_yaml(), nl=False)
