"""Reading the embedding artifacts with h5py and numpy only (no torch), matched by item id."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


def strings(values) -> list[str]:
    """Decode an HDF5 vlen string array to a list of ``str``."""
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]


@dataclass
class ImageEmbeddings:
    """Image embeddings of the covered items, in dataset order.

    Args:
        ids: item ids.
        labels: class indices.
        splits: ``train`` or ``test`` per item.
        embeddings: (N, D) float32, raw encoder outputs.
        ok: False where the image could not be read (zero row).
        class_names: the dataset's classes.
    """

    ids: list[str]
    labels: np.ndarray
    splits: np.ndarray
    embeddings: np.ndarray
    ok: np.ndarray
    class_names: list[str]


@dataclass
class TextEmbeddings:
    """Description embeddings of the described items.

    Args:
        ids: item ids in describe order.
        pooled: (N, D) float32 mean of each item's valid description embeddings (zeros if none).
        mask: (N, K) validity of each description slot.
        table: (N, K, D) description embeddings, or None when not loaded.
    """

    ids: list[str]
    pooled: np.ndarray
    mask: np.ndarray
    table: np.ndarray | None = None

    @property
    def has_text(self) -> np.ndarray:
        return self.mask.any(axis=1)


def read_image_embeddings(handle: Any) -> ImageEmbeddings:
    """Read an ``embed-image`` artifact (an open ``h5py.File``)."""
    import json

    return ImageEmbeddings(
        ids=strings(handle["ids"][()]),
        labels=handle["labels"][()].astype(np.int64),
        splits=np.asarray(strings(handle["splits"][()])),
        embeddings=handle["embeddings"][()].astype(np.float32),
        ok=handle["ok"][()].astype(bool),
        class_names=json.loads(handle.attrs["class_names"]),
    )


def read_text_embeddings(handle: Any, table: bool = False) -> TextEmbeddings:
    """Read an ``embed-text`` artifact; ``table=True`` also loads the (N, K, D) description embeddings."""
    return TextEmbeddings(
        ids=strings(handle["ids"][()]),
        pooled=handle["pooled"][()].astype(np.float32),
        mask=handle["mask"][()].astype(bool),
        table=handle["description_embeddings"][()].astype(np.float32) if table else None,
    )
