"""Log records of the libraries under lmmclf that are meant for their maintainers, dropped.

Installed by ``import lmmclf`` (stdlib logging only, nothing heavy imported), so the command line
and library users alike are spared them. Only exact, known notes are dropped; every other
warning of those loggers passes.
"""

from __future__ import annotations

import logging

# logger name -> message fragments to drop
NOTES = {
    # torch logs one per torchao enum when torchao is imported, which transformers does whenever it
    # loads a config once torchao is installed: two lines in front of every describe, embed or predict
    "torch.utils._pytree": ("is an Enum subclass and is now natively supported by torch.compile",),
}


class DropNotes(logging.Filter):
    """Drops the records whose message holds one of ``fragments``."""

    def __init__(self, fragments: tuple[str, ...]):
        super().__init__()
        self.fragments = fragments

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(fragment in message for fragment in self.fragments)


def install() -> None:
    """Add the filters once (a second call changes nothing)."""
    for name, fragments in NOTES.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, DropNotes) for f in logger.filters):
            logger.addFilter(DropNotes(fragments))
