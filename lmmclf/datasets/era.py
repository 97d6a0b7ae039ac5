"""ERA (Event Recognition in Aerial videos, Mou et al. 2020) as released.

The release splits its 2,864 five-second clips into ``Train/<class>/*.mp4`` (1,473) and
``Test/<class>/*.mp4`` (1,391); copies with extracted frames (``Train/<class>/*.jpg``) are
accepted too, and so are ``train``/``test`` in any case. Videos become their middle frame.

Classes are the release's 25 class folders in alphabetical (case-insensitive) order, with the
folder names as released. They are checked against the paper's 25 events, comparing names
without case or punctuation (``Post-earthquake`` = ``post_earthquake``).
"""

from __future__ import annotations

import re
from pathlib import Path

from lmmclf.config import DatasetSection
from lmmclf.console import console
from lmmclf.datasets.adapter import Adapter
from lmmclf.datasets.sources import Scan, class_folder_sources, list_folder, require_dir, split_dirs
from lmmclf.errors import DatasetError

# The paper's 25 events (Mou et al. 2020, Fig. 2), alphabetical.
EVENTS = [
    "Baseball", "Basketball", "Boating", "Car racing", "Concert", "Conflict", "Constructing",
    "Cycling", "Fire", "Flood", "Harvesting", "Landslide", "Mudslide", "Non-event",
    "Parade/protest", "Party", "Ploughing", "Police chase", "Post-earthquake",
    "Religious activity", "Running", "Soccer", "Swimming", "Traffic collision", "Traffic congestion",
]


def normalise(name: str) -> str:
    """A class name without case, spaces or punctuation, for matching folder spellings."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


_KNOWN = {normalise(name) for name in EVENTS}


class EraAdapter(Adapter):
    type_name = "era"
    summary = "ERA release: Train/<class>/*.mp4 (or frames) and Test/<class>/*; 25 classes, alphabetical"

    def scan(self, root: Path, section: DatasetSection) -> Scan:
        require_dir(root, "the ERA release (Train/ and Test/)")
        folders = split_dirs(root, "ERA")
        per_split = {
            split: sorted((p.name for p in list_folder(folder).folders), key=str.lower)
            for split, folder in folders.items()
        }
        train, test = per_split["train"], per_split["test"]
        if {normalise(n) for n in train} != {normalise(n) for n in test}:
            only = sorted({normalise(n) for n in train} ^ {normalise(n) for n in test})
            raise DatasetError(f"{root}: Train/ and Test/ have different class folders ({', '.join(only)}).")
        unknown = [name for name in train if normalise(name) not in _KNOWN]
        if unknown or len(train) != len(EVENTS):
            console.print(
                f"[yellow]ERA at {root} has {len(train)} class folders"
                f"{'; not ERA events: ' + ', '.join(unknown) if unknown else ''} (expected the 25 ERA events).[/]"
            )
        sources, skipped = class_folder_sources(root, train, "ERA", video_dataset=True)
        return Scan(train, sources, skipped)
