"""The ``embed`` stage: compute (or find) the image and the text embedding artifacts.

Artifact layouts (every array chunked and gzip-compressed; embeddings in ``embed.storage_dtype``)::

    embed-image: ids (N,) str, labels (N,) int64, splits (N,) str, embeddings (N, D),
                 ok (N,) bool, errors (N,) str; attrs class_names (JSON), precision, embed_dim
    embed-text:  ids (N,) str, description_embeddings (N, K, D), mask (N, K) bool, pooled (N, D);
                 attrs precision, embed_dim, items_without_text, descriptions

Embeddings are raw encoder outputs (the papers do not normalise); methods normalise on demand.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.markup import escape

from lmmclf.config import ExperimentConfig
from lmmclf.console import console, progress
from lmmclf.datasets.base import DatasetIndex
from lmmclf.embed.specs import (
    covered_items,
    image_embed_spec,
    text_embed_spec,
)
from lmmclf.errors import CorruptArtifactError
from lmmclf.per_image import PerImageTable, item_digests
from lmmclf.stages import command
from lmmclf.store import ArtifactStore


TEXTS_PER_CHUNK = 8192  # descriptions encoded, scattered and written at a time (their (K, D) rows: ~25 MB at D = 768)


@dataclass
class EmbedReport:
    """What an ``embed`` run produced (printed by the CLI, returned by ``--json``)."""

    image_key: str | None = None
    text_key: str | None = None
    images: int = 0
    image_errors: int = 0
    texts: int = 0
    descriptions: int = 0
    items_without_text: int = 0
    computed: list[str] = field(default_factory=list)
    images_reused: int = 0  # image embeddings copied from per-image entries (the same pixels, the same CLIP)


IMAGE_ENTRIES = "embed-image-entries"  # the cache folder of per-image image embeddings (lmmclf.per_image)
_ENTRY_ROWS = 4096  # items looked up and copied at a time


def image_entry_identity(spec) -> str:
    """What an image embedding depends on besides the pixels: the CLIP identity (its preprocessing comes with it)."""
    from lmmclf.hashing import canonical_json, hash_strings

    return hash_strings(["lmmclf-image-embedding/1", str(spec.version), canonical_json(spec.model)])


def _copy_entries(table, items: list, digests: dict[str, str], entries, dim: int, dtype) -> np.ndarray:
    """Copy the embeddings that entries hold into ``table``, a chunk of rows at a time; returns the rows still to compute."""
    from lmmclf.embed.rows import put_rows

    missing: list[int] = []
    for start in range(0, len(items), _ENTRY_ROWS):
        part = items[start:start + _ENTRY_ROWS]
        found = entries.get_many(digests[item.id] for item in part if item.id in digests)
        rows, vectors = [], []
        for offset, item in enumerate(part):
            blob = found.get(digests.get(item.id, ""))
            if isinstance(blob, bytes) and len(blob) == 4 * dim:
                rows.append(start + offset)
                vectors.append(np.frombuffer(blob, dtype=np.float32))
            else:
                missing.append(start + offset)
        if rows:
            put_rows(table, np.asarray(rows), np.stack(vectors).astype(dtype))
    return np.asarray(missing, dtype=np.int64)


class _ClipHolder:
    """Loads CLIP on first use, so a run whose artifacts are all cached never loads it."""

    def __init__(self, cfg: ExperimentConfig, loaded: Any = None):
        self.cfg = cfg
        self._loaded = loaded

    def get(self):
        if self._loaded is None:
            from lmmclf.clip import load_clip

            console.print(f"Loading CLIP {escape(self.cfg.embed.clip_model)} ({escape(self.cfg.embed.clip_pretrained or 'bundled weights')})")
            self._loaded = load_clip(self.cfg.embed.clip_model, self.cfg.embed.clip_pretrained, self.cfg.embed.device)
        return self._loaded


def encode_settings(cfg: ExperimentConfig):
    """The :class:`EncodeSettings` of ``cfg.embed`` (device and precision resolved)."""
    from lmmclf.devices import resolve_device, resolve_precision
    from lmmclf.embed.images import EncodeSettings

    device = resolve_device(cfg.embed.device)
    return EncodeSettings(
        batch_size=cfg.embed.batch_size,
        num_workers=cfg.embed.num_workers,
        device=device,
        precision=resolve_precision(cfg.embed.precision, device),  # inference: fp16 on CUDA, no bf16 preference
    )


def _text_dataset(handle: Any, name: str, values: list[str]) -> None:
    import h5py

    handle.create_dataset(name, data=np.asarray(values, dtype=object), dtype=h5py.string_dtype("utf-8"))


def embed_images(cfg: ExperimentConfig, dataset: DatasetIndex, store: ArtifactStore, force: bool = False, clip: Any = None, report: EmbedReport | None = None) -> Path:
    """Make (or find) the image embedding artifact of ``dataset`` under ``cfg``; returns its path.

    Args:
        cfg: the experiment config.
        dataset: the loaded dataset.
        store: the artifact store.
        force: recompute even if cached.
        clip: a :class:`~lmmclf.clip.LoadedClip` to reuse, or a loader holder; loaded on demand if None.
        report: filled with counts when given.
    """
    from lmmclf.embed.images import image_batches, item_paths
    from lmmclf.embed.rows import claim, put_rows, release, row_array

    holder = clip if isinstance(clip, _ClipHolder) else _ClipHolder(cfg, clip)
    spec = image_embed_spec(cfg, dataset, store)
    report = report if report is not None else EmbedReport()
    report.image_key = spec.key
    items = covered_items(cfg, dataset)

    def compute(handle) -> int:
        loaded = holder.get()
        settings = encode_settings(cfg)
        dtype = np.dtype(cfg.embed.storage_dtype)
        dim = loaded.embed_dim
        reserved = claim(handle, [((len(items), dim), dtype)], len(items))  # before HDF5 writes anything large
        _text_dataset(handle, "ids", [item.id for item in items])
        handle.create_dataset("labels", data=np.asarray([item.label for item in items], dtype=np.int64))
        _text_dataset(handle, "splits", [item.split for item in items])
        table = row_array(handle, "embeddings", (len(items), dim), dtype)
        errors = [""] * len(items)
        entries = PerImageTable(store.root, IMAGE_ENTRIES, image_entry_identity(spec))
        digests = item_digests(store.file_hash_db(), items)
        # the same pixels embedded before under this CLIP (another split, a grown dataset, predict): copied, not computed
        todo = _copy_entries(table, items, digests, entries, dim, dtype)
        report.images_reused = len(items) - len(todo)
        paths = item_paths(items)
        with progress() as bar:  # each batch goes to the file as it comes: memory is a batch, not N
            task = bar.add_task("embed images", total=len(todo))
            for positions, vectors, batch_errors in image_batches(loaded.model, [paths[i] for i in todo], loaded.preprocess, settings):
                rows = todo[positions]
                put_rows(table, rows, vectors.astype(dtype))
                for row, error in zip(rows, batch_errors):
                    errors[row] = error
                entries.put_many((digests.get(items[row].id, ""), vector.astype(np.float32).tobytes())
                                 for row, vector, error in zip(rows, vectors, batch_errors) if not error)
                bar.advance(task, len(rows))
        entries.close()
        handle.create_dataset("ok", data=np.asarray([not e for e in errors], dtype=bool))
        _text_dataset(handle, "errors", errors)
        handle.attrs["class_names"] = json.dumps(dataset.class_names)
        handle.attrs["precision"] = settings.precision
        handle.attrs["embed_dim"] = int(dim) if items else 0
        release(handle, reserved)
        report.computed.append("embed-image")
        report.image_errors = sum(1 for e in errors if e)
        for item, error in zip(items, errors):
            if error:
                console.print(f"[yellow]Could not read image[/] {escape(str(item.path))}: {escape(str(error))}")
        return len(items)

    path = store.ensure(spec, compute, force=force, in_memory=False)  # written in place, its space claimed first
    report.images = len(items)
    return path


def embed_texts(cfg: ExperimentConfig, dataset: DatasetIndex, store: ArtifactStore, describe: str | None = None, force: bool = False, clip: Any = None, report: EmbedReport | None = None) -> Path:
    """Make (or find) the text embedding artifact of the describe artifact named by ``cfg``.

    Args:
        cfg: the experiment config.
        dataset: the loaded dataset.
        store: the artifact store.
        describe: the describe artifact's key (computed from ``cfg`` when None).
        force: recompute even if cached.
        clip: a :class:`~lmmclf.clip.LoadedClip` to reuse, or a loader holder; loaded on demand if None.
        report: filled with counts when given.

    Raises:
        MissingArtifactError: the describe artifact is not in the cache (names ``lmmclf describe``).
    """
    from lmmclf.describe.reading import descriptions_digest
    from lmmclf.embed.rows import claim, put_rows, release, row_array
    from lmmclf.embed.texts import Descriptions, encode_texts, pool, read_descriptions, scatter

    holder = clip if isinstance(clip, _ClipHolder) else _ClipHolder(cfg, clip)
    wanted = _describe_wanted(cfg, dataset, store, describe)
    describe = describe or wanted.key
    report = report if report is not None else EmbedReport()
    with store.open("describe", describe, make_hint=command("describe", dataset.name), wanted=wanted) as handle:
        try:
            descriptions = read_descriptions(handle, cfg.describe.require_list)
        except (KeyError, OSError, ValueError, TypeError, IndexError) as exc:
            descriptions, damage = None, str(exc).rstrip(".") or type(exc).__name__
        else:
            damage = None if len(descriptions.texts) == len(descriptions.ids) else "its datasets disagree in length"
        if damage:  # marked complete, yet a dataset is missing or cut: describe treats it as absent and rebuilds it
            raise CorruptArtifactError(
                f"{handle.filename} is damaged ({damage}); run `{command('describe', dataset.name)}` again with the same options to rebuild it."
            )
    # keyed by what was just read: the descriptions the artifact holds now, under the policy in effect
    spec = text_embed_spec(cfg, dataset, store, describe, digest=descriptions_digest(descriptions))
    report.text_key = spec.key
    flat_texts = [text for texts in descriptions.texts for text in texts]

    def compute(handle) -> int:
        loaded = holder.get()
        settings = encode_settings(cfg)
        dtype = np.dtype(cfg.embed.storage_dtype)
        n, dim = len(descriptions.ids), loaded.embed_dim
        width = max(descriptions.capacity, max((len(texts) for texts in descriptions.texts), default=0))
        reserved = claim(handle, [((n, width, dim), dtype), ((n, dim), dtype)], n)  # before HDF5 writes anything large
        _text_dataset(handle, "ids", descriptions.ids)
        table = row_array(handle, "description_embeddings", (n, width, dim), dtype, row_chunk=64)
        pooled = row_array(handle, "pooled", (n, dim), dtype)
        mask = np.zeros((n, width), dtype=bool)  # N x K booleans: small beside the embeddings
        step = max(1, TEXTS_PER_CHUNK // max(width, 1))
        with progress() as bar:  # a chunk of images at a time goes to the file: memory is a chunk, not N
            task = bar.add_task("embed descriptions", total=len(flat_texts))
            for start in range(0, n, step):
                part = Descriptions(descriptions.ids[start:start + step], descriptions.texts[start:start + step], width)
                texts = [text for item in part.texts for text in item]
                flat = encode_texts(loaded.model, loaded.tokenizer, texts, settings, lambda done: bar.advance(task, done))
                chunk, chunk_mask = scatter(part, flat.reshape(-1, dim), dim)
                rows = np.arange(start, start + len(part.ids))
                put_rows(table, rows, chunk.astype(dtype))
                put_rows(pooled, rows, pool(chunk, chunk_mask).astype(dtype))
                mask[start:start + len(part.ids)] = chunk_mask
        handle.create_dataset("mask", data=mask)
        handle.attrs["precision"] = settings.precision
        handle.attrs["embed_dim"] = int(dim)
        handle.attrs["items_without_text"] = int((~mask.any(axis=1)).sum())
        handle.attrs["descriptions"] = len(flat_texts)
        release(handle, reserved)
        report.computed.append("embed-text")
        return len(descriptions.ids)

    path = store.ensure(spec, compute, force=force, in_memory=False)  # written in place, its space claimed first
    report.texts = len(descriptions.ids)
    report.descriptions = len(flat_texts)
    report.items_without_text = sum(1 for texts in descriptions.texts if not texts)
    return path


def _describe_wanted(cfg: ExperimentConfig, dataset: DatasetIndex, store: ArtifactStore, describe: str | None):
    """The describe spec ``cfg`` asks for, when ``describe`` (a key given by the caller) does not override it."""
    from lmmclf.describe import describe_spec

    wanted = describe_spec(cfg, dataset, store)
    return wanted if describe in (None, wanted.key) else None


def run_embed(cfg: ExperimentConfig, dataset: DatasetIndex, store: ArtifactStore, images: bool = True, texts: bool = True, force: bool = False, describe: str | None = None) -> EmbedReport:
    """The whole ``embed`` stage: image embeddings, then description embeddings (one CLIP load).

    Args:
        cfg: the experiment config.
        dataset: the loaded dataset.
        store: the artifact store.
        images: make the image artifact.
        texts: make the text artifact (needs the describe artifact).
        force: recompute even if cached.
        describe: the describe key (computed from ``cfg`` when None).
    """
    report = EmbedReport()
    holder = _ClipHolder(cfg)
    if texts:  # check the describe artifact first: a missing input should fail before any work
        wanted = _describe_wanted(cfg, dataset, store, describe)
        key = describe or wanted.key
        store.open("describe", key, make_hint=command("describe", dataset.name), wanted=wanted).close()
        describe = key
    if images:
        embed_images(cfg, dataset, store, force=force, clip=holder, report=report)
    if texts:
        embed_texts(cfg, dataset, store, describe=describe, force=force, clip=holder, report=report)
    return report
