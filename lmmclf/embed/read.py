"""Reading the embedding artifacts with h5py and numpy only (no torch), matched by item id.

A finished artifact whose dataset is missing or of the wrong shape (a damaged or hand-edited
file) is a :class:`~lmmclf.errors.CorruptArtifactError` naming the file and the command that
remakes it, never a ``KeyError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lmmclf.errors import CorruptArtifactError
from lmmclf.stages import command



def remake() -> str:
    """How to recompute a damaged embedding artifact (the command with the global options in effect)."""
    return f"run `{command('embed', None, ['--force'])}` again with the same options to recompute it"


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


def _read(handle: Any, name: str, rows: int | None, ndim: int) -> np.ndarray:
    """Dataset ``name`` with ``ndim`` axes and ``rows`` rows (None: any), or CorruptArtifactError naming the file."""
    try:
        data = handle[name][()]
    except (KeyError, OSError, ValueError, TypeError) as exc:
        raise CorruptArtifactError(f"{handle.filename} is damaged (dataset '{name}' cannot be read: {str(exc).rstrip('.')}); {remake()}.") from exc
    if not isinstance(data, np.ndarray) or data.ndim != ndim or (rows is not None and len(data) != rows):
        raise CorruptArtifactError(f"{handle.filename} is damaged (dataset '{name}' has shape {getattr(data, 'shape', '?')}); {remake()}.")
    return data


def _unread(handle: Any, name: str, rows: int, ndim: int) -> Any:
    """Dataset ``name`` itself, unread, once its shape is checked (CorruptArtifactError naming the file otherwise)."""
    try:
        data = handle[name]
        shape = data.shape
    except (KeyError, OSError, ValueError, TypeError, AttributeError) as exc:
        raise CorruptArtifactError(f"{handle.filename} is damaged (dataset '{name}' cannot be read: {str(exc).rstrip('.')}); {remake()}.") from exc
    if len(shape) != ndim or shape[0] != rows:
        raise CorruptArtifactError(f"{handle.filename} is damaged (dataset '{name}' has shape {shape}); {remake()}.")
    return data


def read_image_index(handle: Any) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``(ids, splits, ok)`` of an ``embed-image`` artifact, without its embeddings."""
    ids = strings(_read(handle, "ids", None, 1))
    return ids, np.asarray(strings(_read(handle, "splits", len(ids), 1))), _read(handle, "ok", len(ids), 1).astype(bool)


def read_text_index(handle: Any) -> tuple[list[str], np.ndarray]:
    """``(ids, has_text)`` of an ``embed-text`` artifact, without its embeddings."""
    ids = strings(_read(handle, "ids", None, 1))
    return ids, _read(handle, "mask", len(ids), 2).astype(bool).any(axis=1)


def read_image_embeddings(handle: Any, load: bool = True) -> ImageEmbeddings:
    """Read an ``embed-image`` artifact (an open ``h5py.File``); ``load=False`` leaves ``embeddings``
    the unread HDF5 dataset (checked for shape), to be read in row chunks while the file is open.

    Raises:
        CorruptArtifactError: a dataset or attribute is missing or misshapen.
    """
    import json

    ids, splits, ok = read_image_index(handle)
    try:
        class_names = json.loads(handle.attrs["class_names"])
    except (KeyError, ValueError, TypeError) as exc:
        raise CorruptArtifactError(f"{handle.filename} is damaged (no readable class_names attribute); {remake()}.") from exc
    return ImageEmbeddings(
        ids=ids,
        labels=_read(handle, "labels", len(ids), 1).astype(np.int64),
        splits=splits,
        embeddings=_read(handle, "embeddings", len(ids), 2).astype(np.float32) if load else _unread(handle, "embeddings", len(ids), 2),
        ok=ok,
        class_names=class_names,
    )


def read_text_embeddings(handle: Any, table: bool = False) -> TextEmbeddings:
    """Read an ``embed-text`` artifact; ``table=True`` also loads the (N, K, D) description embeddings.

    Raises:
        CorruptArtifactError: a dataset is missing or misshapen.
    """
    ids = strings(_read(handle, "ids", None, 1))
    mask = _read(handle, "mask", len(ids), 2).astype(bool)
    embeddings = _read(handle, "description_embeddings", len(ids), 3).astype(np.float32) if table else None
    if embeddings is not None and embeddings.shape[1] != mask.shape[1]:
        raise CorruptArtifactError(f"{handle.filename} is damaged (description_embeddings and mask disagree in shape); {remake()}.")
    return TextEmbeddings(ids=ids, pooled=_read(handle, "pooled", len(ids), 2).astype(np.float32), mask=mask, table=embeddings)


CHUNK_BYTES = 64 << 20  # rows read at once from a table too large to load: about 64 MB of float32


def text_table(handle: Any, texts: TextEmbeddings) -> Any:
    """The (N, K, D) description embeddings of an open ``embed-text`` artifact, unread: the HDF5
    dataset itself, for :func:`row_chunks` (memory set by the chunk, not by N).

    Raises:
        CorruptArtifactError: missing, or its shape disagrees with ``texts``' mask.
    """
    table = _unread(handle, "description_embeddings", len(texts.ids), 3)
    if table.shape[:2] != texts.mask.shape:
        raise CorruptArtifactError(f"{handle.filename} is damaged (description_embeddings and mask disagree in shape); {remake()}.")
    return table


def row_chunks(table: Any, max_bytes: int = CHUNK_BYTES):
    """``(start, rows as float32)`` over consecutive row chunks of ``table`` (an array or an HDF5 dataset) of about ``max_bytes``."""
    per_row = int(np.prod(table.shape[1:], dtype=np.int64)) * 4
    step = max(1, max_bytes // max(per_row, 1))
    for start in range(0, table.shape[0], step):
        yield start, np.asarray(table[start : start + step], dtype=np.float32)
