"""Embedding arrays written to their artifact as the rows come, so memory is a batch, not N.

The embed artifacts are written in place (``store.ensure(..., in_memory=False)``): their largest
arrays ((N, D) image embeddings, (N, K, D) description embeddings) are created at full size,
chunked along rows and gzip-compressed, and filled one batch of rows at a time. HDF5 does not
survive a write that fails for lack of space, so the uncompressed size (an upper bound of what
the compressed file takes) is claimed first (:mod:`lmmclf.disk_space`) and what was not used is
released at the end.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from lmmclf.disk_space import release_beyond, reserve
from lmmclf.errors import storage_error

ROW_CHUNK = 1024  # rows per HDF5 chunk of a 2-D array (64 for (N, K, D) tables: one chunk stays a few MB)
_SLACK = 1 << 20  # HDF5's own metadata and the small arrays beside the embeddings
_PER_ITEM = 512  # an id, a split or an error string, a label and the chunk index, per item


def claim(handle: Any, arrays: list[tuple[tuple[int, ...], np.dtype]], items: int) -> int:
    """Reserve the disk the arrays (uncompressed) and ``items`` rows of small fields need; returns the bytes claimed."""
    nbytes = sum(int(np.prod(shape)) * np.dtype(dtype).itemsize for shape, dtype in arrays) + items * _PER_ITEM + _SLACK
    try:
        reserve(handle.filename, nbytes)
    except OSError as exc:
        raise storage_error(exc, handle.filename) from exc
    return nbytes


def release(handle: Any, reserved: int) -> None:
    """Give back what :func:`claim` reserved beyond the file's size (after the last write)."""
    handle.flush()
    release_beyond(handle.filename, os.path.getsize(handle.filename) + _SLACK, reserved)


def row_array(handle: Any, name: str, shape: tuple[int, ...], dtype, row_chunk: int = ROW_CHUNK):
    """A full-size dataset chunked along rows and gzip-compressed (byte-shuffled, which helps floats), to fill by rows."""
    if not shape[0] or not int(np.prod(shape[1:])):
        return handle.create_dataset(name, shape=shape, dtype=dtype)
    chunks = (min(shape[0], row_chunk), *shape[1:])
    return handle.create_dataset(name, shape=shape, dtype=dtype, chunks=chunks, compression="gzip", compression_opts=4, shuffle=True)


def put_rows(dataset: Any, rows: np.ndarray, values: np.ndarray) -> None:
    """``dataset[rows] = values`` for increasing row indices (one slice when they are contiguous, as loaders give them)."""
    if not len(rows):
        return
    if rows[-1] - rows[0] + 1 == len(rows) and np.all(np.diff(rows) == 1):
        dataset[int(rows[0]): int(rows[-1]) + 1] = values
        return
    order = np.argsort(rows)
    dataset[rows[order]] = values[order]
