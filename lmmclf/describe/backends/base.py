"""What a describe backend is: one batch method, plus the table of backends.

A backend turns images and a prompt into answers. It implements one method,
:meth:`Backend.describe_batch`; a per-image failure (unreadable image, server error after
retries, a rejected answer) is an :class:`Answer` with ``error`` set, never an exception, so
one bad image never stops the others. :meth:`Backend.stream` feeds batches to
``describe_batch`` and may be overridden by backends that keep requests in flight across
batch boundaries (the openai backend does).

A backend declares in :attr:`Backend.reads` which describe backend options it reads (the
fields ``lmmclf.config`` marks ``backend=True``: device, dtype, server settings...). Only
those enter the describe key; one set for a backend that does not read it is warned about.

``BACKENDS`` maps a name to ``"module:Class"``, imported only when used, so that
``lmmclf --help`` never imports torch. Tests register fake backends with :func:`register_backend`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from lmmclf.errors import ConfigError, ImageReadError


@dataclass(frozen=True)
class Job:
    """One image to describe.

    Args:
        id: the dataset item id.
        path: the image file.
    """

    id: str
    path: Path


def unreadable(job: Job, exc: Exception) -> str:
    """The failure text of an image that could not be read or prepared (the reader's reason when it is the reader's)."""
    detail = exc.reason if isinstance(exc, ImageReadError) else f"{type(exc).__name__}: {exc}"
    return f"unreadable image {job.path}: {detail}"


@dataclass(frozen=True)
class Answer:
    """A backend's result for one image.

    Args:
        id: the item id.
        text: the raw answer (None on failure).
        generated_tokens: tokens generated, up to and including end-of-sequence.
        error: why it failed ("" when it did not).
        retries: requests retried on the way (openai backend).
        truncated: generation stopped at the token budget (``max_new_tokens``) before the model
            ended its answer (openai: ``finish_reason: "length"``; hf: no end token), so the
            last item is cut; the parser drops it.
        systemic: the failure comes from the server or the settings, not from this image (a
            rejected request field, the same server error for every image): the same request
            fails alike for every image, so the run stops after the first few (runner).
        fix: for a systemic failure, the option and value that avoid it (e.g.
            ``("--repetition-penalty", "1.0")``), set in the retry command the run prints.
        answered: the failure is the model's own answer (a refusal, an empty answer, a content
            filter), not a transient fault: under greedy decoding it is final (runner).
    """

    id: str
    text: str | None
    generated_tokens: int = 0
    error: str = ""
    retries: int = 0
    truncated: bool = False
    systemic: bool = False
    fix: tuple[str, ...] = ()
    answered: bool = False

    @property
    def ok(self) -> bool:
        return not self.error


class Backend:
    """Base class of describe backends.

    Args:
        section: the config's describe section (``DescribeSection``).
        prompt: the resolved prompt text.
    """

    name = "base"
    # the describe backend options this backend reads (fields marked backend=True in lmmclf.config);
    # only these enter its key. The base class batches by describe.batch_size (see batch_size).
    reads: tuple[str, ...] = ("batch_size",)

    @classmethod
    def key_parts(cls, section: Any, hashes: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """(model identity, backend-specific key parameters) for the cache key.

        The default: the model name as given and nothing else. Never put a URL, a host or a
        credential here: the same model behind another server gives the same descriptions.
        """
        return {"name": section.model}, {}

    def __init__(self, section: Any, prompt: str):
        self.section = section
        self.prompt = prompt

    @property
    def batch_size(self) -> int:
        """Images per call of :meth:`describe_batch` (and per journal write)."""
        return max(1, int(self.section.batch_size or 8))

    def describe_batch(self, jobs: list[Job]) -> list[Answer]:
        """Describe ``jobs``; one :class:`Answer` per job, in order. Must not raise for one bad image."""
        raise NotImplementedError

    def stream(self, jobs: Iterable[Job]) -> Iterator[list[Answer]]:
        """Answers in groups as they finish; each group is journaled before the next is asked for."""
        batch: list[Job] = []
        for job in jobs:
            batch.append(job)
            if len(batch) == self.batch_size:
                yield self.describe_batch(batch)
                batch = []
        if batch:
            yield self.describe_batch(batch)

    def resolved(self) -> dict[str, Any]:
        """What the backend resolved at run time (device, dtype...), stored as provenance, not in the key."""
        return {}

    # names in resolved() whose value changes the answers (a dtype, a quantization), not just the speed
    ANSWER_SETTINGS: tuple[str, ...] = ()

    def answer_settings(self) -> dict[str, str]:
        """The resolved settings that change the answers: every record carries them, and one artifact never mixes two."""
        resolved = self.resolved()
        return {name: str(resolved[name]) for name in self.ANSWER_SETTINGS if name in resolved}

    def close(self) -> None:
        """Release connections, memory."""


BACKENDS: dict[str, str | type[Backend]] = {
    "hf": "lmmclf.describe.backends.hf:HFBackend",
    "openai": "lmmclf.describe.backends.openai:OpenAIBackend",
    "minigpt4": "lmmclf.describe.backends.minigpt4:MiniGPT4Backend",
}


def backend_options() -> list[str]:
    """The describe fields that are backend options (declared ``backend=True`` in ``lmmclf.config``)."""
    import dataclasses

    from lmmclf.config import DescribeSection

    return [f.name for f in dataclasses.fields(DescribeSection) if f.metadata.get("backend")]


def unread_options(section: Any, backend: type[Backend]) -> list[str]:
    """Backend options set in ``section`` (differing from their defaults) that ``backend`` does not read."""
    from lmmclf.config import DescribeSection

    defaults = DescribeSection()
    return [name for name in backend_options()
            if name not in backend.reads and getattr(section, name) != getattr(defaults, name)]


def register_backend(name: str, backend: str | type[Backend]) -> None:
    """Add (or replace) a backend: a class or a ``"module:Class"`` path."""
    BACKENDS[name] = backend


def backend_class(name: str) -> type[Backend]:
    """The backend class registered under ``name``.

    Raises:
        ConfigError: no such backend.
    """
    if name not in BACKENDS:
        raise ConfigError(f"Unknown describe.backend '{name}' (known: {', '.join(BACKENDS)}).")
    entry = BACKENDS[name]
    if isinstance(entry, str):
        module_name, _, attribute = entry.partition(":")
        entry = getattr(importlib.import_module(module_name), attribute)
    return entry
