"""Output for people: one Rich console on stderr, the progress bar every stage uses, and ``-q``.

Machine-readable results go to files and, with ``--json``, to stdout; never mix the two. When
stderr is a terminal, output wraps to its width; when it is a log file or a CI pipe nothing
wraps, so paths, progress lines and table rows stay whole and greppable. ``-q`` silences this
console and the bars and logs of the libraries underneath (transformers, huggingface_hub, tqdm,
open_clip's logging) without importing them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from typing import Iterator

from rich.console import Console, ConsoleDimensions
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

# Wide enough that no artifact path, progress line or table row of a log wraps; not so wide
# that something which fills the width (a rule) becomes a megabyte.
LOG_WIDTH = 10_000


class _Console(Console):
    """A Console that wraps only on a terminal: in a log or pipe, lines are as long as their text.

    Rich falls back to 80 columns (or the width of whatever terminal stdout is on) when stderr
    is redirected, which cut paths in two in every log. An explicit width (``COLUMNS`` or
    ``Console(width=...)``) is still honoured.
    """

    def _size(self) -> ConsoleDimensions:
        size = Console.size.fget(self)
        if self._width is None and "COLUMNS" not in self._environ and not self.is_terminal:
            return ConsoleDimensions(LOG_WIDTH, size.height)
        return size

    size = property(_size, Console.size.fset)


console = _Console(stderr=True, highlight=False)


def print_always(*objects, **kwargs) -> None:
    """Print on stderr even under ``-q``: an error must reach the user whatever the noise setting."""
    quiet, console.quiet = console.quiet, False
    try:
        console.print(*objects, **kwargs)
    finally:
        console.quiet = quiet


# Read by these libraries when they are imported (after the CLI has parsed -q): tqdm >= 4.66
# takes TQDM_* as defaults for every bar, huggingface_hub its download bars, transformers its
# logger level ("Loading weights", "Writing model shards" are transformers/tqdm bars).
_QUIET_ENV = {
    "TQDM_DISABLE": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
}
_saved_env: dict[str, str | None] | None = None
_saved_transformers_level: int | None = None


def set_quiet(quiet: bool) -> None:
    """Silence (or restore) everything printed for people, ours and the libraries' below us.

    Nothing heavy is imported here (``lmmclf --help`` must not load torch): environment variables
    reach the libraries imported later, and those already imported (a test process, a second
    command in one interpreter) are switched off through their own APIs.
    """
    global _saved_env
    console.quiet = quiet
    if quiet and _saved_env is None:
        _saved_env = {name: os.environ.get(name) for name in _QUIET_ENV}
        os.environ.update(_QUIET_ENV)
        # open_clip and others log through the stdlib: warnings and below are silenced, errors pass
        logging.disable(logging.WARNING)
        _switch_loaded_libraries(quiet=True)
    elif not quiet and _saved_env is not None:
        for name, value in _saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        _saved_env = None
        logging.disable(logging.NOTSET)
        _switch_loaded_libraries(quiet=False)


def _switch_loaded_libraries(quiet: bool) -> None:
    """Turn the progress bars and logs of already-imported libraries off (or back on)."""
    global _saved_transformers_level
    if "huggingface_hub" in sys.modules:
        from huggingface_hub import utils as hub_utils

        # imported while quiet, the hub keeps its bars off for this process and warns on enabling
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            (hub_utils.disable_progress_bars if quiet else hub_utils.enable_progress_bars)()
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        if quiet:
            _saved_transformers_level = hf_logging.get_verbosity()
            hf_logging.disable_progress_bar()
            hf_logging.set_verbosity_error()
        else:
            with warnings.catch_warnings():  # it enables the hub's bars too (see above)
                warnings.simplefilter("ignore")
                hf_logging.enable_progress_bar()
            if _saved_transformers_level is not None:
                hf_logging.set_verbosity(_saved_transformers_level)
    if not quiet:
        _saved_transformers_level = None


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send whatever libraries print to stdout (Python or native code) to stderr meanwhile; under -q, nowhere.

    stdout belongs to ``--json``; a tokenizer trainer's progress (Rust, writing to file
    descriptor 1) must not land in front of it.
    """
    sys.stdout.flush()
    with contextlib.ExitStack() as stack:
        target = stack.enter_context(open(os.devnull, "w")) if console.quiet else sys.stderr
        try:
            saved = os.dup(1)
        except OSError:  # no real file descriptor 1 (an embedding host): Python-level only
            saved = None
        try:
            if saved is not None:
                target.flush()
                os.dup2(target.fileno() if console.quiet else 2, 1)
            with contextlib.redirect_stdout(target):
                yield
        finally:
            if saved is not None:
                sys.stdout.flush()
                os.dup2(saved, 1)
                os.close(saved)


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
