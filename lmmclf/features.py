"""Feature vectors for the linear probe: image, text, their concatenation, or their mean.

The four rows of the paper's Table 2: the CLIP image embedding ``x_i`` alone; the average of
the description embeddings ``t^M_i`` alone; ``[x_i, t^M_i]`` (1536-d for ViT-L/14, the paper's
method); and ``(x_i + t^M_i) / 2``. Image and text rows are matched by item id, never by
position. With ``normalize`` every embedding is L2-normalised first (each description before
it is averaged); the papers use raw embeddings, so it is off by default.

Items whose image could not be read are dropped (counted); items without any valid description
keep a zero text vector (counted), so that every method is tested on the same images. Because
such a method is then partly image-only, :func:`require_descriptions` refuses it when more than
``embed.max_missing_descriptions`` of the train or the test images lack descriptions (a failed
describe run must not pass for a text result).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lmmclf.embed.read import ImageEmbeddings, TextEmbeddings
from lmmclf.errors import LmmclfError
from lmmclf.stages import command


def _l2(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def take(table, index: np.ndarray) -> np.ndarray:
    """Rows ``index`` of ``table`` (an array, or an unread HDF5 dataset) as float32, in that order.

    An HDF5 dataset is read as the contiguous span the rows lie in when they are dense in it
    (the usual case: rows in dataset order), else by a sorted selection; either way only the
    rows of one chunk are in memory.
    """
    index = np.asarray(index, dtype=np.int64)
    if isinstance(table, np.ndarray) or not len(index):
        return np.asarray(table[index] if len(index) else np.zeros((0, *table.shape[1:])), dtype=np.float32)
    sorted_rows = np.sort(index)
    lo, hi = int(sorted_rows[0]), int(sorted_rows[-1]) + 1
    if hi - lo <= 4 * len(index):
        return np.asarray(table[lo:hi], dtype=np.float32)[index - lo]
    block = np.asarray(table[sorted_rows], dtype=np.float32)  # h5py selections must be increasing
    return block[np.searchsorted(sorted_rows, index)]


def _text_vectors(texts: TextEmbeddings, rows: np.ndarray, normalize: bool) -> np.ndarray:
    """The text vectors of ``rows`` of ``texts``: the pooled embedding, or with ``normalize`` the mean
    of the L2-normalised descriptions (read from the table for these rows only)."""
    if not normalize:
        return take(texts.pooled, rows)
    if texts.table is None:
        raise ValueError("normalised text features need the description table (read_text_embeddings(table=True) or embed.read.text_table)")
    weights = texts.mask[rows].astype(np.float32)
    total = np.einsum("nkd,nk->nd", _l2(take(texts.table, rows)), weights)
    return (total / np.maximum(weights.sum(axis=1, keepdims=True), 1.0)).astype(np.float32)


FEATURE_CHUNK_ROWS = 16384  # rows assembled at once: the inputs of one chunk are all that is read


# kind -> (needs text, combine(image, text) -> features)
FEATURE_KINDS = {
    "image": (False, lambda image, text: image),
    "text": (True, lambda image, text: text),
    "concat": (True, lambda image, text: np.concatenate([image, text], axis=1)),
    "mean": (True, lambda image, text: (image + text) / 2.0),
}


def needs_text(kind: str) -> bool:
    """Whether feature ``kind`` uses the description embeddings."""
    return FEATURE_KINDS[kind][0]


def description_coverage(ids: list[str], splits, has_text: dict[str, bool], only: tuple[str, ...] = ("train", "test")) -> dict[str, tuple[int, int]]:
    """split -> (images without a valid description, images), over ``ids`` (an id absent from ``has_text`` has none).

    Args:
        ids: the images that count.
        splits: each image's split.
        has_text: id -> whether it has at least one valid description.
        only: the splits reported.
    """
    coverage = {split: [0, 0] for split in only}
    for item_id, split in zip(ids, splits):
        if split in coverage:
            coverage[split][1] += 1
            coverage[split][0] += 0 if has_text.get(item_id, False) else 1
    return {split: (missing, total) for split, (missing, total) in coverage.items()}


def require_descriptions(coverage: dict[str, tuple[int, int]], limit: float, uses: str, dataset: str) -> None:
    """Refuse a method that uses descriptions when too many of its train or test images have none.

    Args:
        coverage: from :func:`description_coverage`.
        limit: ``embed.max_missing_descriptions``, the largest share accepted per split.
        uses: what needs the descriptions, e.g. "Features 'concat'" (starts the sentence).
        dataset: the dataset's name (for the command in the hint).

    Raises:
        LmmclfError: one sentence naming the split, the share, the setting and how to go on.
    """
    for split, (missing, total) in coverage.items():
        if total and missing / total > limit:
            raise LmmclfError(
                f"{uses} use descriptions, but {missing} of {total} {split} images ({missing / total:.0%}) have none, more than "
                f"embed.max_missing_descriptions ({limit:.0%}) allows: rerun `{command('describe', dataset, ['--retry-failed'])}` with the same "
                "options to ask again for the failed images, then `embed`, or set embed.max_missing_descriptions in the config "
                "(-c FILE) to accept them."
            )


@dataclass
class FeatureSet:
    """Features of the usable items, in image-artifact (dataset) order.

    Args:
        ids: item ids.
        features: (N, F) float32.
        labels: (N,) int64 class indices.
        splits: (N,) ``train``/``test``.
        class_names: the dataset's classes.
        without_text: items that had no valid description (zero text vector).
        dropped: ids dropped because their image could not be read.
    """

    ids: list[str]
    features: np.ndarray
    labels: np.ndarray
    splits: np.ndarray
    class_names: list[str]
    without_text: int = 0
    dropped: tuple[str, ...] = ()
    coverage: dict[str, tuple[int, int]] = field(default_factory=dict)

    def subset(self, split: str) -> np.ndarray:
        """Row indices of one split."""
        return np.flatnonzero(self.splits == split)


def build_features(kind: str, images: ImageEmbeddings, texts: TextEmbeddings | None = None, normalize: bool = False,
                   allocate=None, chunk_rows: int = FEATURE_CHUNK_ROWS) -> FeatureSet:
    """Assemble the features of ``kind`` from image and (if needed) text embeddings, by id.

    Built in row chunks: the embeddings may be arrays or unread HDF5 datasets (the description
    table with ``normalize``, see :func:`lmmclf.embed.read.text_table`), and only one chunk of
    them is read at a time.

    Args:
        kind: ``image``, ``text``, ``concat`` or ``mean``.
        images: the image embeddings (labels and splits come from here).
        texts: the text embeddings (required unless ``kind`` is ``image``).
        normalize: L2-normalise each embedding first.
        allocate: ``(rows, width) -> array`` that receives the features (default ``np.empty``;
            a memory-mapped file keeps them on disk).
        chunk_rows: rows assembled at once.

    Raises:
        LmmclfError: text needed but missing, or image ids without a describe entry.
    """
    if kind not in FEATURE_KINDS:
        raise LmmclfError(f"Unknown feature kind '{kind}' (known: {', '.join(FEATURE_KINDS)}).")
    uses_text, combine = FEATURE_KINDS[kind]
    keep = np.flatnonzero(images.ok)
    dropped = tuple(images.ids[i] for i in np.flatnonzero(~images.ok))
    ids = [images.ids[i] for i in keep]
    order = None
    without = 0
    coverage: dict[str, tuple[int, int]] = {}
    if uses_text:
        if texts is None:
            raise LmmclfError(f"Features '{kind}' need description embeddings; run `{command('embed')}` first.")
        rows = {item_id: row for row, item_id in enumerate(texts.ids)}
        missing = [i for i in ids if i not in rows]
        if missing:
            raise LmmclfError(
                f"{len(missing)} images have no entry in the describe artifact (e.g. '{missing[0]}'): "
                f"describe and embed cover different items; re-run `{command('describe')}` and `{command('embed')}` with the same config."
            )
        order = np.asarray([rows[i] for i in ids], dtype=np.int64)
        has_text = texts.has_text[order]
        without = int((~has_text).sum())
        coverage = description_coverage(ids, images.splits[keep], dict(zip(ids, has_text.tolist())))
    # the width of the combination, from empty inputs (concat: image + text; the rest: one of them)
    empty = np.zeros((0, images.embeddings.shape[1]), np.float32), np.zeros((0, texts.pooled.shape[1] if uses_text else 0), np.float32)
    width = combine(*empty).shape[1]
    features = (allocate or (lambda n, f: np.empty((n, f), dtype=np.float32)))(len(keep), width)
    for start in range(0, len(keep), chunk_rows):
        stop = min(start + chunk_rows, len(keep))
        image = take(images.embeddings, keep[start:stop])
        image = _l2(image) if normalize else image
        text = _text_vectors(texts, order[start:stop], normalize) if uses_text else None
        features[start:stop] = combine(image, text)
    return FeatureSet(ids, features, images.labels[keep], images.splits[keep], images.class_names, without, dropped, coverage)
