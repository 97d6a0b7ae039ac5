"""Output for people: one Rich console on stderr, and the progress bar every stage uses.

Machine-readable results go to files and, with ``--json``, to stdout; never mix the two.
"""

from __future__ import annotations

import os

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True, highlight=False)


def set_quiet(quiet: bool) -> None:
    """Silence (or restore) everything printed for people."""
    console.quiet = quiet


def progress(*extra_columns, transient: bool = False) -> Progress:
    """A progress bar with count, rate and ETA; extra columns (e.g. tokens/s) go before the time.

    Usage::

        with progress() as bar:
            task = bar.add_task("describe", total=n)
            bar.advance(task, k)
    """
    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("[cyan]{task.fields[rate]}", justify="right"),
        *extra_columns,
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    return _RateProgress(*columns, console=console, transient=transient, disable=console.quiet or _no_tty_bars())


def _no_tty_bars() -> bool:
    return os.environ.get("LMMCLF_NO_PROGRESS", "") not in ("", "0")


class _RateProgress(Progress):
    """A Progress whose tasks always carry a formatted ``rate`` field (items/s)."""

    def add_task(self, description, *args, **kwargs):
        kwargs.setdefault("rate", "")
        return super().add_task(description, *args, **kwargs)

    def advance(self, task_id, advance: float = 1) -> None:
        super().advance(task_id, advance)
        task = self._tasks[task_id]
        speed = task.speed
        self.update(task_id, rate=f"{speed:.2f} it/s" if speed else "")
