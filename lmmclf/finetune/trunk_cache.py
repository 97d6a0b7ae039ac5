"""The frozen-trunk artifact: the trunk's output of every image, computed once.

With only the last block(s) trainable, the frozen trunk maps each image to the same tokens
in every epoch. They are computed once into the ``trunk`` stage and every epoch then runs
the tail only. Size: tokens x width x bytes per image (ViT-L/14 at 224 px, float16:
257 x 1024 x 2 = 526 KB per image, about 7 GB for UCF-101's 13,320 images). Up to
:data:`IN_MEMORY_MAX_BYTES` the array is read into host memory for training; a larger one is
read from the file per batch (:class:`DiskTokens`), so memory is set by the batch, not by N. With no block unlocked the trunk pools too
and the artifact holds what the tail reads, one vector of width floats per image
(ViT-L/14, float16: 2 KB per image, 27 MB for UCF-101); see
:func:`lmmclf.finetune.tail.trunk_output`.

Layout: ``tokens`` (N, L, W), or (N, W) when pooled, in ``dtype``, training images first then
test images, each in dataset index order; ``ids`` (N,), ``labels`` (N,) int64, ``splits`` (N,).
Keyed by the CLIP identity, the dataset, the split point (with what the trunk outputs when it
pools), the preprocessing, the storage dtype and the precision the trunk ran in.

The disk the artifact needs is claimed before HDF5 writes it (:mod:`.space`): a full disk is
one sentence naming the directory, where HDF5 itself would crash the process.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np

from lmmclf.console import console, progress
from lmmclf.errors import CorruptArtifactError, DatasetError, storage_error
from lmmclf.disk_space import release_beyond, reserve
from lmmclf.stages import command, version
from lmmclf.store import ArtifactStore, KeySpec

STAGE = "trunk"
VERSION = version(STAGE)
_SLACK = 256 << 10  # headroom for HDF5's own metadata, kept until the file is closed


def transform_identity(preprocess: Any) -> list[str]:
    """A stable description of a torchvision ``Compose`` (function reprs carry addresses)."""
    steps = getattr(preprocess, "transforms", [preprocess])
    return [step.__name__ if callable(step) and hasattr(step, "__name__") else repr(step) for step in steps]


def trunk_spec(clip_identity: dict, dataset, split, preprocess: Any, dtype: str, precision: str) -> KeySpec:
    """The key of a trunk cache.

    Args:
        clip_identity: the CLIP model's identity.
        dataset: the DatasetIndex.
        split: the :class:`~lmmclf.finetune.tail.SplitPoint`.
        preprocess: the image transform.
        dtype: storage dtype, ``float16`` or ``float32``.
        precision: the resolved precision the trunk ran in (``fp32``, ``bf16``, ``fp16``).
    """
    params = {**split.identity(), "preprocess": transform_identity(preprocess), "dtype": dtype, "precision": precision}
    return KeySpec(stage=STAGE, version=VERSION, dataset=dataset.identity(), model=clip_identity, params=params)


def ordered_items(dataset) -> list:
    """Training items, then test items, each in index order (the artifact's row order)."""
    return dataset.split("train") + dataset.split("test")


def bytes_per_image(shape: tuple, dtype: str) -> int:
    """Bytes of one image's trunk output of ``shape`` (``(L, W)`` tokens, or ``(W,)`` pooled)."""
    return int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize


def rows_per_chunk(shape: tuple, dtype: str) -> int:
    """HDF5 chunk height: about 1 MB per chunk. One image of tokens (526 KB for ViT-L) is a
    chunk by itself; pooled vectors (2 KB) are grouped, or a dataset would have a chunk, an
    index entry and a read per image."""
    return max(1, min(shape[0], (1 << 20) // max(1, bytes_per_image(shape[1:], dtype))))


def ensure_trunk_cache(store: ArtifactStore, spec: KeySpec, dataset, trunk, preprocess, device, autocast: Callable,
                       batch_size: int, num_workers: int, show_progress: bool = True, force: bool = False) -> str:
    """Compute the trunk artifact if missing (or incomplete: the store checks its datasets); return its key.

    Args:
        store: the artifact store.
        spec: from :func:`trunk_spec`.
        dataset: the DatasetIndex.
        trunk: the :class:`~lmmclf.finetune.tail.FrozenTrunk` on ``device``.
        preprocess: the CLIP image transform.
        device: the torch device.
        autocast: factory of the precision context the trunk runs in.
        batch_size, num_workers: for the DataLoader (no effect on the content).
        show_progress: draw a progress bar.
        force: recompute even if it exists (e.g. its data could not be read).

    Raises:
        StorageError: the disk has no room for it; nothing large was written.
    """
    import torch

    from lmmclf.finetune.sources import ImageFiles

    items = ordered_items(dataset)
    dtype = spec.params["dtype"]

    def compute(handle) -> int:
        loader = torch.utils.data.DataLoader(
            ImageFiles([item.path for item in items], preprocess), batch_size=batch_size,
            num_workers=num_workers, pin_memory=device.type == "cuda",
        )
        tokens = None
        row = reserved = 0
        with progress(transient=True) as bar:
            task = bar.add_task("trunk cache", total=len(items))
            trunk.eval()
            for images in loader:
                with torch.no_grad(), autocast():
                    out = trunk(images.to(device, non_blocking=True)).float().cpu().numpy().astype(dtype)
                if tokens is None:
                    shape = (len(items), *out.shape[1:])
                    _announce(shape, dtype, show_progress)
                    # before HDF5 writes anything: a write that fails for lack of space crashes it
                    reserved = _claim_space(handle.filename, items, shape, dtype, rows_per_chunk(shape, dtype))
                    handle.create_dataset("ids", data=[item.id for item in items], dtype=_str_dtype())
                    handle.create_dataset("labels", data=np.array([item.label for item in items], dtype=np.int64))
                    handle.create_dataset("splits", data=[item.split for item in items], dtype=_str_dtype())
                    chunks = (rows_per_chunk(shape, dtype), *out.shape[1:])
                    tokens = handle.create_dataset("tokens", shape=shape, dtype=dtype, chunks=chunks)
                tokens[row : row + len(out)] = out
                row += len(out)
                bar.advance(task, len(out))
        if tokens is None:
            raise DatasetError(f"Dataset '{dataset.name}' has no images to fine-tune on.")
        handle.attrs["tokens_shape"] = list(tokens.shape)
        handle.flush()
        release_beyond(handle.filename, os.path.getsize(handle.filename) + _SLACK, reserved)
        claimed.append(reserved)
        return len(items)

    claimed: list[int] = []
    path = store.ensure(spec, compute, force=force, in_memory=False)  # gigabytes: written in place, its space claimed first
    if claimed:  # HDF5 does not trim the file when it closes it: give back the unused headroom
        size = os.path.getsize(path)
        release_beyond(path, size, size + _SLACK)
    return spec.key


IN_MEMORY_MAX_BYTES = 4 << 30  # trunk outputs up to this size are read into host memory once; larger ones per batch


class DiskTokens:
    """Rows ``[offset, offset + length)`` of the artifact's ``tokens``, read from the file per batch.

    Stands in for a host tensor in :class:`~lmmclf.finetune.sources.CachedTokens`: indexing with a
    slice or an index tensor reads those rows only (the operating system's page cache keeps a file
    that fits in memory, without counting against the process), so memory is one batch.

    Args:
        path: the trunk artifact.
        offset: the first row (0: training rows; the training count: test rows).
        length: rows.
    """

    def __init__(self, path: str, offset: int, length: int):
        import h5py

        self.path, self.offset, self.length = str(path), int(offset), int(length)
        self._file = h5py.File(self.path, "r")
        self._tokens = self._file["tokens"]
        self.shape = (self.length, *self._tokens.shape[1:])
        self.dtype = self._tokens.dtype

    def __len__(self) -> int:
        return self.length

    @property
    def nbytes(self) -> int:
        return self.length * bytes_per_image(self.shape[1:], self.dtype.name)

    def __getitem__(self, index):
        import torch

        if isinstance(index, slice):
            start, stop, _ = index.indices(self.length)
            return torch.from_numpy(self._tokens[self.offset + start : self.offset + stop])
        rows = np.asarray(index.cpu() if hasattr(index, "cpu") else index, dtype=np.int64) + self.offset
        ordered = np.sort(rows)
        # HDF5 selections must be increasing and unique (a permutation's batch is unique)
        block = self._tokens[ordered] if len(ordered) else np.zeros((0, *self.shape[1:]), self.dtype)
        return torch.from_numpy(np.ascontiguousarray(block[np.searchsorted(ordered, rows)]))

    def to(self, device, non_blocking: bool = False):
        """All rows as one tensor on ``device``, copied over chunk by chunk."""
        import torch

        out = torch.empty(self.shape, dtype=getattr(torch, self.dtype.name), device=device)
        step = rows_per_chunk((self.length, *self.shape[1:]), self.dtype.name) * 64
        for start in range(0, self.length, step):
            out[start : start + step] = self[start : start + step].to(device, non_blocking=non_blocking)
        return out


def load_trunk_cache(store: ArtifactStore, key: str, dataset, in_memory_max_bytes: int = IN_MEMORY_MAX_BYTES):
    """The cached trunk outputs: ``(train_tokens, train_labels, test_tokens, test_labels)``.

    Tokens up to ``in_memory_max_bytes`` in all are host tensors, read once; larger ones are
    :class:`DiskTokens`, read per batch (the same rows either way).

    Raises:
        CorruptArtifactError: the rows do not match the dataset's items (never expected: the
            key covers the dataset fingerprint).
    """
    import torch

    items = ordered_items(dataset)
    n_train = len(dataset.split("train"))
    with store.open(STAGE, key, make_hint=command("finetune", dataset.name)) as handle:
        try:
            ids = [value.decode() if isinstance(value, bytes) else value for value in handle["ids"][:]]
            if ids != [item.id for item in items]:
                raise CorruptArtifactError(f"Trunk cache {handle.filename} does not match the dataset's items; "
                                           f"remove it with `{command('cache', None, ['rm', key[:12]])}`.")
            labels = torch.from_numpy(handle["labels"][:])
            tokens = handle["tokens"]
            whole = tokens.shape[0] * bytes_per_image(tokens.shape[1:], tokens.dtype.name) <= in_memory_max_bytes
            if whole:
                train = torch.from_numpy(tokens[:n_train])
                test = torch.from_numpy(tokens[n_train:])
            else:
                train, test = DiskTokens(handle.filename, 0, n_train), DiskTokens(handle.filename, n_train, tokens.shape[0] - n_train)
        except (OSError, KeyError, ValueError, TypeError, UnicodeDecodeError) as exc:
            raise CorruptArtifactError(f"Trunk cache {handle.filename} cannot be read ({type(exc).__name__}); "
                                       f"remove it with `{command('cache', None, ['rm', key[:12]])}`.") from exc
    return train, labels[:n_train], test, labels[n_train:]


def _claim_space(filename: str, items: list, shape: tuple, dtype: str, chunk_rows: int = 1) -> int:
    """Reserve the disk the artifact needs (tokens, ids, labels, index, headroom); return the bytes claimed."""
    rows = -(-shape[0] // chunk_rows) * chunk_rows  # HDF5 allocates the last chunk whole
    nbytes = rows * bytes_per_image(shape[1:], dtype)
    # per item: the chunk index entry, two variable-length strings and a label; then fixed headroom
    nbytes += sum(256 + len(item.id.encode()) + len(item.split.encode()) for item in items) + _SLACK
    try:
        reserve(filename, nbytes)
    except OSError as exc:
        raise storage_error(exc, filename) from exc
    return nbytes


def _announce(shape: tuple, dtype: str, show: bool) -> None:
    if not show:
        return
    per_image = bytes_per_image(shape[1:], dtype)
    what = f"{shape[1]} tokens x {shape[2]} width" if len(shape) == 3 else f"{shape[1]} pooled values"
    console.print(
        f"Trunk cache: {shape[0]} images x {what} in {dtype} "
        f"= {_size(per_image)} per image, {_size(per_image * shape[0])} on disk"
        + (" and in memory." if per_image * shape[0] <= IN_MEMORY_MAX_BYTES else ", read from it per batch.")
    )


def _size(nbytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if nbytes < 1000 or unit == "GB":
            return f"{nbytes:.1f} {unit}" if unit != "B" else f"{int(nbytes)} B"
        nbytes /= 1000
    return f"{nbytes:.1f} TB"


def _str_dtype():
    import h5py

    return h5py.string_dtype("utf-8")
