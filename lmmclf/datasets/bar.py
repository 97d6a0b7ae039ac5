"""BAR (Biased Action Recognition, Nam et al. 2020) as released by alinlab/BAR.

The release has two flat folders of images, ``train/`` (1,941) and ``test/`` (654), whose
file names start with the class: ``climbing_326.jpg``, ``diving_12.jpg`` ... and
``pole vaulting_0.jpg`` (with a space) for the class the paper calls *vaulting*. The label
is the file-name prefix before the last ``_<number>``. A re-organised copy with class
sub-folders (``train/<class>/*``) is accepted too. ``Train``/``Test`` in any case.

Class order (the paper's and the README's): climbing, diving, fishing, racing, throwing, vaulting.
"""

from __future__ import annotations

from pathlib import Path

from lmmclf.config import DatasetSection
from lmmclf.datasets.adapter import Adapter
from lmmclf.datasets.base import SkippedItem
from lmmclf.datasets.sources import Scan, Source, class_folder_sources, list_folder, require_dir, split_dirs
from lmmclf.errors import DatasetError

CLASSES = ["climbing", "diving", "fishing", "racing", "throwing", "vaulting"]
# File-name prefixes of the release -> class index ("pole vaulting" is the release's spelling).
PREFIXES = {name: i for i, name in enumerate(CLASSES)} | {"pole vaulting": CLASSES.index("vaulting")}


class BarAdapter(Adapter):
    type_name = "bar"
    summary = "BAR release: train/ and test/ of <class>_<n>.jpg images; 6 classes"

    def scan(self, root: Path, section: DatasetSection) -> Scan:
        require_dir(root, "the BAR release (train/ and test/)")
        listings = {split: list_folder(folder) for split, folder in split_dirs(root, "BAR").items()}
        if any(listing.folders for listing in listings.values()):
            sources, skipped = class_folder_sources(root, CLASSES, "BAR")
            return Scan(list(CLASSES), sources, skipped)
        sources, skipped = [], []
        for split, listing in listings.items():
            skipped += listing.skipped
            for file in listing.files:
                label = label_of(file.stem)
                if label is None:
                    skipped.append(SkippedItem(str(file), f"file name does not start with a BAR class ({', '.join(PREFIXES)})"))
                    continue
                sources.append(Source(file.relative_to(root).as_posix(), file, label, split))
        if not sources:
            raise DatasetError(f"{root} has no BAR images in train/ or test/.")
        return Scan(list(CLASSES), sources, skipped)


def label_of(stem: str) -> int | None:
    """The class index of a BAR file stem such as ``climbing_12`` or ``pole vaulting_0``."""
    prefix, _, number = stem.rpartition("_")
    if not prefix or not number.isdigit():
        return None
    return PREFIXES.get(prefix.lower())
