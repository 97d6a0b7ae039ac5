"""The dataset types every adapter produces and every stage consumes.

An adapter turns a dataset root into a :class:`DatasetIndex`: the class names in a fixed,
documented order, and one :class:`Item` per usable image (id, image path, label, split).
Items that could not be read are listed in ``skipped`` with the reason, never silently lost.
The fingerprint covers image bytes, labels and split membership, so it changes when any of
them does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SPLITS = ("train", "test")


@dataclass(frozen=True)
class Item:
    """One image of a dataset.

    Args:
        id: a stable identifier (relative path of the source file, without extension for videos).
        path: the image file to read (for video datasets: the cached middle frame).
        label: index into ``DatasetIndex.class_names``.
        split: ``"train"`` or ``"test"``.
    """

    id: str
    path: Path
    label: int
    split: str


@dataclass(frozen=True)
class SkippedItem:
    """A source file that could not be used, and why."""

    source: str
    reason: str


@dataclass
class DatasetIndex:
    """A loaded dataset: classes, usable items, skipped items, and the content fingerprint."""

    name: str
    class_names: list[str]
    items: list[Item]
    fingerprint: str
    skipped: list[SkippedItem] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    repaired: list[SkippedItem] = field(default_factory=list)  # broken cached frames, extracted again
    # Train items that form the release's own validation split (CoOp's val): they stay in
    # "train" (the papers train on train + val) and are available to model selection.
    val_ids: frozenset[str] = frozenset()

    def split(self, split: str) -> list[Item]:
        """The items of one split (``"all"`` gives every item, in index order)."""
        if split == "all":
            return list(self.items)
        return [item for item in self.items if item.split == split]

    def counts(self) -> dict[str, int]:
        return {split: sum(1 for item in self.items if item.split == split) for split in SPLITS}

    def val_rows(self, ids: list[str]) -> list[int]:
        """Positions in ``ids`` of the release's own val items (empty when it has none)."""
        return [row for row, item_id in enumerate(ids) if item_id in self.val_ids]

    def identity(self) -> dict[str, Any]:
        """What goes into every artifact key that depends on this dataset."""
        return {"name": self.name, "fingerprint": self.fingerprint, "options": self.options}
