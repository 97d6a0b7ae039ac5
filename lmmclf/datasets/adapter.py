"""The one interface every dataset adapter implements.

An adapter reads a release's layout and returns a :class:`~lmmclf.datasets.sources.Scan`
(class names in the release's fixed order, and the source files with labels and splits).
Everything else (hashing, verification, middle frames, fingerprint) is shared, in
:mod:`lmmclf.datasets.loader`.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from lmmclf.config import DatasetSection
from lmmclf.datasets.sources import Scan


class Adapter:
    """Base class of dataset adapters: implement :meth:`scan`."""

    type_name: ClassVar[str] = ""
    summary: ClassVar[str] = ""  # one line for `lmmclf datasets list`

    def scan(self, root: Path, section: DatasetSection) -> Scan:
        """List the sources below ``root``.

        Args:
            root: the dataset root the user registered.
            section: the config's dataset section (split, ...).

        Raises:
            DatasetError: the layout is missing or malformed; the message names the file.
        """
        raise NotImplementedError
