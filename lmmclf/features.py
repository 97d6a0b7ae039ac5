"""Feature vectors for the linear probe: image, text, their concatenation, or their mean.

The four rows of the paper's Table 2: the CLIP image embedding ``x_i`` alone; the average of
the description embeddings ``t^M_i`` alone; ``[x_i, t^M_i]`` (1536-d for ViT-L/14, the paper's
method); and ``(x_i + t^M_i) / 2``. Image and text rows are matched by item id, never by
position. With ``normalize`` every embedding is L2-normalised first (each description before
it is averaged); the papers use raw embeddings, so it is off by default.

Items whose image could not be read are dropped (counted); items without any valid description
keep a zero text vector (counted), so that every method is tested on the same images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lmmclf.embed.read import ImageEmbeddings, TextEmbeddings
from lmmclf.errors import LmmclfError


def _l2(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def _text_vectors(texts: TextEmbeddings, normalize: bool) -> np.ndarray:
    if not normalize:
        return texts.pooled
    if texts.table is None:
        raise ValueError("normalised text features need the description table (read_text_embeddings(table=True))")
    weights = texts.mask.astype(np.float32)
    total = np.einsum("nkd,nk->nd", _l2(texts.table), weights)
    return (total / np.maximum(weights.sum(axis=1, keepdims=True), 1.0)).astype(np.float32)


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

    def subset(self, split: str) -> np.ndarray:
        """Row indices of one split."""
        return np.flatnonzero(self.splits == split)


def build_features(kind: str, images: ImageEmbeddings, texts: TextEmbeddings | None = None, normalize: bool = False) -> FeatureSet:
    """Assemble the features of ``kind`` from image and (if needed) text embeddings, by id.

    Args:
        kind: ``image``, ``text``, ``concat`` or ``mean``.
        images: the image embeddings (labels and splits come from here).
        texts: the text embeddings (required unless ``kind`` is ``image``).
        normalize: L2-normalise each embedding first.

    Raises:
        LmmclfError: text needed but missing, or image ids without a describe entry.
    """
    if kind not in FEATURE_KINDS:
        raise LmmclfError(f"Unknown feature kind '{kind}' (known: {', '.join(FEATURE_KINDS)}).")
    uses_text, combine = FEATURE_KINDS[kind]
    keep = np.flatnonzero(images.ok)
    dropped = tuple(images.ids[i] for i in np.flatnonzero(~images.ok))
    ids = [images.ids[i] for i in keep]
    image = images.embeddings[keep]
    image = _l2(image) if normalize else image
    text = None
    without = 0
    if uses_text:
        if texts is None:
            raise LmmclfError(f"Features '{kind}' need description embeddings; run `lmmclf embed` first.")
        rows = {item_id: row for row, item_id in enumerate(texts.ids)}
        missing = [i for i in ids if i not in rows]
        if missing:
            raise LmmclfError(
                f"{len(missing)} images have no entry in the describe artifact (e.g. '{missing[0]}'): "
                "describe and embed cover different items; re-run `lmmclf describe` and `lmmclf embed` with the same config."
            )
        order = np.asarray([rows[i] for i in ids], dtype=np.int64)
        text = _text_vectors(texts, normalize)[order]
        without = int((~texts.has_text[order]).sum())
    features = np.ascontiguousarray(combine(image, text), dtype=np.float32)
    return FeatureSet(ids, features, images.labels[keep], images.splits[keep], images.class_names, without, dropped)
