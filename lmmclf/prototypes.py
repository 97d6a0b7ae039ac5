"""LMM class prototypes (paper 2, eq. 1): the mean description embedding of each class.

``C_l = mean of t_ik`` over every valid description ``k`` of every *training* image ``i`` of
class ``l`` (all descriptions weigh the same, so an image with 7 descriptions counts 7/10 of
one with 10). Test images never enter a prototype. A class without any description in the
training split is an error that names it, and so is a training split where more than
``embed.max_missing_descriptions`` of the described images have no description (prototypes of
a mostly failed describe run would pass for real ones; fine-tuning reads them, so the same
check guards it). Prototypes are raw (unnormalised) text embeddings,
as in the paper; the zero-shot baseline normalises them itself.

Artifact (stage ``prototypes``)::

    prototypes (C, D) float32, class_names (C,) str, counts (C,) int64 (descriptions per class),
    images (C,) int64 (training images with descriptions per class)
"""

from __future__ import annotations

import numpy as np

from lmmclf.config import ExperimentConfig
from lmmclf.datasets.base import DatasetIndex
from lmmclf.errors import LmmclfError
from lmmclf.stages import command, version
from lmmclf.store import ArtifactStore, KeySpec

STAGE = "prototypes"
VERSION = version(STAGE)


def prototypes_spec(cfg: ExperimentConfig, dataset: DatasetIndex, store: ArtifactStore, text_key: str | None = None) -> KeySpec:
    """The key of the class prototypes made from the text embeddings named by ``cfg``.

    Args:
        cfg: the experiment config.
        dataset: the loaded dataset (labels and splits come from it, matched by id).
        store: the artifact store.
        text_key: the embed-text key (computed from ``cfg`` when None).
    """
    from lmmclf.embed.specs import text_embed_spec

    text_key = text_key or text_embed_spec(cfg, dataset, store).key
    return KeySpec(stage=STAGE, version=VERSION, dataset=dataset.identity(), params={"split": "train"}, inputs={"embed-text": text_key})


def class_prototypes(ids: list[str], table, mask: np.ndarray, dataset: DatasetIndex, max_bytes: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Eq. 1 on arrays: ``(prototypes (C, D), description counts (C,), image counts (C,))``.

    The table is read in row chunks and summed per class in float64 (in row order, so the result
    is the same whatever the chunk size): memory is one chunk and C x D sums, never the table.

    Args:
        ids: item ids of the rows of ``table``.
        table: (N, K, D) description embeddings: an array, or the unread HDF5 dataset
            (:func:`lmmclf.embed.read.text_table`).
        mask: (N, K) validity of each description.
        dataset: gives each id's label and split (ids not in the dataset are an error).
        max_bytes: rows read at once (default :data:`lmmclf.embed.read.CHUNK_BYTES`).

    Raises:
        LmmclfError: an id unknown to the dataset, or a class with no training description.
    """
    from lmmclf.embed.read import CHUNK_BYTES, row_chunks

    by_id = {item.id: item for item in dataset.items}
    unknown = [i for i in ids if i not in by_id]
    if unknown:
        raise LmmclfError(f"{len(unknown)} described items are not in dataset '{dataset.name}' (e.g. '{unknown[0]}'); re-run `{command('describe', dataset.name)}`.")
    classes = len(dataset.class_names)
    labels = np.fromiter((by_id[i].label for i in ids), dtype=np.int64, count=len(ids))
    mask = np.asarray(mask, dtype=bool)
    # test images never enter a prototype; nor do images without a valid description
    used = np.fromiter((by_id[i].split == "train" for i in ids), dtype=bool, count=len(ids)) & mask.any(axis=1)
    sums = np.zeros((classes, table.shape[2]), dtype=np.float64)
    for start, chunk in row_chunks(table, max_bytes or CHUNK_BYTES):
        rows = slice(start, start + len(chunk))
        keep = used[rows]
        if keep.any():
            valid = mask[rows][keep]
            per_image = np.where(valid[:, :, None], chunk[keep], 0.0).astype(np.float64).sum(axis=1)
            np.add.at(sums, labels[rows][keep], per_image)  # in row order, as a loop over the rows would add them
    counts = np.bincount(labels[used], weights=mask[used].sum(axis=1), minlength=classes).astype(np.int64)
    images = np.bincount(labels[used], minlength=classes).astype(np.int64)
    empty = [dataset.class_names[c] for c in range(classes) if counts[c] == 0]
    if empty:
        shown = ", ".join(f"'{name}'" for name in empty[:5]) + (f" and {len(empty) - 5} more" if len(empty) > 5 else "")
        raise LmmclfError(f"No training-split descriptions for class {shown}: describe its training images (describe.split: train or all) to build its prototype.")
    return (sums / counts[:, None]).astype(np.float32), counts, images


def check_descriptions(cfg: ExperimentConfig, dataset: DatasetIndex, store: ArtifactStore, text_key: str | None = None) -> None:
    """Refuse when more than ``embed.max_missing_descriptions`` of the described training images have no description.

    Checked on every use, cached prototypes included: the setting is in no key. Without the text
    embeddings there is nothing to check (making the prototypes then names ``lmmclf embed``).

    Raises:
        LmmclfError: one sentence naming the setting (see :func:`lmmclf.features.require_descriptions`).
    """
    from lmmclf.embed.read import read_text_index
    from lmmclf.embed.specs import TEXT_STAGE, text_embed_spec
    from lmmclf.features import description_coverage, require_descriptions

    text_key = text_key or text_embed_spec(cfg, dataset, store).key
    if not store.is_complete(TEXT_STAGE, text_key):
        return
    with store.open(TEXT_STAGE, text_key) as handle:
        ids, has_text = read_text_index(handle)
    split_of = {item.id: item.split for item in dataset.items}
    coverage = description_coverage(ids, [split_of.get(i) for i in ids], dict(zip(ids, has_text.tolist())), only=("train",))
    require_descriptions(coverage, cfg.embed.max_missing_descriptions, "Class prototypes", dataset.name)


def make_prototypes(cfg: ExperimentConfig, dataset: DatasetIndex, store: ArtifactStore, force: bool = False):
    """Compute (or find) the prototypes artifact; returns its path.

    Args:
        cfg: the experiment config.
        dataset: the loaded dataset.
        store: the artifact store.
        force: recompute even if cached.

    Raises:
        MissingArtifactError: no text embeddings (the message names ``lmmclf embed``).
    """
    import h5py

    from lmmclf.embed.read import read_text_embeddings, text_table
    from lmmclf.embed.specs import TEXT_STAGE, text_embed_spec

    text_spec = text_embed_spec(cfg, dataset, store)
    text_key = text_spec.key
    spec = prototypes_spec(cfg, dataset, store, text_key)
    check_descriptions(cfg, dataset, store, text_key)

    def compute(handle) -> int:
        with store.open(TEXT_STAGE, text_key, make_hint=command("embed", dataset.name), wanted=text_spec) as source:
            texts = read_text_embeddings(source)
            # the (N, K, D) table is read in row chunks while the file is open, never whole
            prototypes, counts, images = class_prototypes(texts.ids, text_table(source, texts), texts.mask, dataset)
        handle.create_dataset("prototypes", data=prototypes)
        handle.create_dataset("class_names", data=np.asarray(dataset.class_names, dtype=object), dtype=h5py.string_dtype("utf-8"))
        handle.create_dataset("counts", data=counts)
        handle.create_dataset("images", data=images)
        return len(dataset.class_names)

    if not force and not store.is_complete(STAGE, spec.key):
        store.open(TEXT_STAGE, text_key, make_hint=command("embed", dataset.name), wanted=text_spec).close()
    return store.ensure(spec, compute, force=force)


def load_prototypes(cfg: ExperimentConfig, dataset: DatasetIndex, store: ArtifactStore) -> tuple[np.ndarray, list[str]]:
    """The cached prototypes of ``cfg``: ``(prototypes (C, D) float32, class names)``.

    Raises:
        MissingArtifactError: not computed yet (the message names ``lmmclf prototypes``).
    """
    from lmmclf.embed.read import strings
    from lmmclf.embed.specs import text_embed_spec
    from lmmclf.errors import CorruptArtifactError

    text_key = text_embed_spec(cfg, dataset, store).key
    spec = prototypes_spec(cfg, dataset, store, text_key)
    check_descriptions(cfg, dataset, store, text_key)
    with store.open(STAGE, spec.key, make_hint=command(STAGE, dataset.name), wanted=spec) as handle:
        try:
            names = strings(handle["class_names"][()])
            prototypes = handle["prototypes"][()].astype(np.float32)
        except (KeyError, OSError, ValueError, TypeError) as exc:
            raise CorruptArtifactError(f"{handle.filename} is damaged ({str(exc).rstrip('.')}); run `{command(STAGE, dataset.name, ['--force'])}` to recompute it.") from exc
    if prototypes.ndim != 2 or len(prototypes) != len(names):
        raise CorruptArtifactError(f"{store.path(STAGE, spec.key)} is damaged (prototypes of shape {prototypes.shape}); run `{command(STAGE, dataset.name, ['--force'])}` to recompute it.")
    if names != list(dataset.class_names):
        raise LmmclfError(f"The cached prototypes' classes differ from dataset '{dataset.name}'; run `{command(STAGE, dataset.name, ['--force'])}`.")
    return prototypes, names
