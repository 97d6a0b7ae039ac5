"""``lmmclf config``: show the effective experiment config (defaults, file, flags), or which fields enter which key."""

from __future__ import annotations

from typing import Annotated

import typer

from lmmclf.cli.common import load, print_json, reports_user_errors
from lmmclf.cli.options import JsonOpt

app = typer.Typer(help="Inspect the experiment config.", no_args_is_help=True)


@app.command("show")
@reports_user_errors
def show(
    ctx: typer.Context,
    keys: Annotated[bool, typer.Option("--keys", help="Per section, which fields enter which artifact's cache key (and what a change recomputes), and which only change how the work runs.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Print the effective config: built-in defaults updated by --config FILE."""
    cfg, _ = load(ctx)
    if keys:
        _show_keys(cfg, as_json)
    elif as_json:
        print_json(cfg.to_dict())
    else:
        typer.echo(cfg.to_yaml(), nl=False)


def _show_keys(cfg, as_json: bool) -> None:
    """The key declarations of every field (lmmclf.config) read through the stage table, with the values in effect."""
    from lmmclf import stages

    entries = stages.field_entries()
    readers = _backend_readers()
    if as_json:
        print_json([{**entry.to_dict(), "value": getattr(getattr(cfg, entry.section), entry.name),
                     "read_by": [name for name, reads in readers.items() if entry.name in reads] if entry.backend else None}
                    for entry in entries])
        return
    lines: list[str] = []
    section = None
    width = max(len(entry.name) for entry in entries)
    for entry in entries:
        if entry.section != section:
            section = entry.section
            lines.append(f"{'' if not lines else chr(10)}{section}:")
        if entry.key:
            where = "key of " + ", ".join(entry.enters) if entry.section != "dataset" else "every key (dataset identity)"
            notes = [note for note in (entry.via and f"as {entry.via}" if entry.section != "dataset" else "",
                                       entry.when and f"only when {entry.when}") if note]
            later = [name for name in entry.recomputes if name not in entry.enters]
            if later:
                notes.append("recomputes also " + ", ".join(later))
        else:
            where, notes = "runtime (no key)", []
        if entry.backend:
            names = [name for name, reads in readers.items() if entry.name in reads]
            notes.append(f"backend option read by {', '.join(names) or 'no built-in backend'}"
                         + ("" if cfg.describe.backend in names else f", not by the configured {cfg.describe.backend}"))
        lines.append(f"  {entry.name:<{width}}  {where}" + (f"  ({'; '.join(notes)})" if notes else ""))
    typer.echo("\n".join(lines))


def _backend_readers() -> dict[str, tuple[str, ...]]:
    """Backend name -> the describe backend options it reads (a backend that cannot be imported is left out)."""
    from lmmclf.describe.backends.base import BACKENDS, backend_class

    readers = {}
    for name in BACKENDS:
        try:
            readers[name] = tuple(backend_class(name).reads)
        except Exception:  # noqa: BLE001 - a plugin that fails to import must not break `config show`
            continue
    return readers
