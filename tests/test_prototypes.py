"""Class prototypes (paper 2, eq. 1) and the feature kinds of the probe (paper 1, Table 2)."""

from __future__ import annotations

import numpy as np
import pytest

from lmmclf.datasets.base import DatasetIndex, Item
from lmmclf.embed.read import ImageEmbeddings, TextEmbeddings
from lmmclf.errors import LmmclfError
from lmmclf.features import build_features
from lmmclf.prototypes import class_prototypes


def _dataset(splits=("train", "train", "train", "test", "test")):
    labels = [0, 0, 1, 0, 1]
    items = [Item(f"i{n}", None, label, split) for n, (label, split) in enumerate(zip(labels, splits))]
    return DatasetIndex("hand", ["cat", "dog"], items, "fp")


def test_eq1_mean_of_all_training_descriptions():
    dataset = _dataset()
    table = np.zeros((5, 2, 2), dtype=np.float32)
    table[0] = [[1, 0], [3, 0]]
    table[1] = [[0, 4], [99, 99]]  # second description masked out
    table[2] = [[2, 2], [4, 4]]
    table[3] = table[4] = 1000.0  # test images: must never enter a prototype
    mask = np.array([[True, True], [True, False], [True, True], [True, True], [True, True]])
    ids = [f"i{n}" for n in (4, 3, 2, 1, 0)]  # rows in another order than the dataset: matched by id
    order = [4, 3, 2, 1, 0]
    prototypes, counts, images = class_prototypes(ids, table[order], mask[order], dataset)
    np.testing.assert_allclose(prototypes, [[4 / 3, 4 / 3], [3, 3]])
    assert counts.tolist() == [3, 2] and images.tolist() == [2, 1]


def test_test_descriptions_never_enter_a_prototype():
    base = _dataset()
    table = np.random.default_rng(0).normal(size=(5, 3, 4)).astype(np.float32)
    mask = np.ones((5, 3), dtype=bool)
    ids = [item.id for item in base.items]
    first, _, _ = class_prototypes(ids, table, mask, base)
    changed = table.copy()
    changed[3:] += 50.0
    second, _, _ = class_prototypes(ids, changed, mask, base)
    np.testing.assert_array_equal(first, second)


def test_class_without_training_descriptions_is_named():
    dataset = _dataset(splits=("train", "train", "test", "test", "test"))
    with pytest.raises(LmmclfError, match="'dog'"):
        class_prototypes([i.id for i in dataset.items], np.ones((5, 1, 2), np.float32), np.ones((5, 1), bool), dataset)


def _embeddings():
    images = ImageEmbeddings(
        ids=["a", "b", "c"], labels=np.array([0, 1, 0]), splits=np.array(["train", "train", "test"]),
        embeddings=np.array([[1, 0], [0, 2], [3, 4]], np.float32), ok=np.array([True, True, True]), class_names=["x", "y"],
    )
    table = np.array([[[0, 6], [0, 0]], [[2, 2], [4, 4]], [[8, 0], [0, 0]]], np.float32)
    mask = np.array([[True, False], [True, True], [False, False]])
    texts = TextEmbeddings(ids=["c", "b", "a"], pooled=np.array([[0, 0], [3, 3], [0, 6]], np.float32), mask=mask[::-1].copy(), table=table[::-1].copy())
    return images, texts


def test_feature_kinds_shapes_and_id_matching():
    images, texts = _embeddings()
    concat = build_features("concat", images, texts)
    assert concat.features.shape == (3, 4)
    np.testing.assert_array_equal(concat.features[0], [1, 0, 0, 6])  # "a" takes its own text, not row 0's
    np.testing.assert_array_equal(build_features("mean", images, texts).features[1], [1.5, 2.5])
    np.testing.assert_array_equal(build_features("text", images, texts).features[2], [0, 0])
    assert build_features("image", images).features.shape == (3, 2)
    assert concat.without_text == 1


def test_normalised_features_normalise_each_description_before_pooling():
    images, texts = _embeddings()
    feats = build_features("concat", images, texts, normalize=True)
    np.testing.assert_allclose(feats.features[2, :2], [0.6, 0.8])
    np.testing.assert_allclose(feats.features[1, 2:], [np.sqrt(0.5), np.sqrt(0.5)], rtol=1e-6)


def test_missing_text_ids_and_bad_images():
    images, texts = _embeddings()
    images.ok[1] = False
    feats = build_features("image", images)
    assert feats.ids == ["a", "c"] and feats.dropped == ("b",)
    texts.ids = ["c", "zz", "a"]
    with pytest.raises(LmmclfError, match="describe and embed cover different items"):
        build_features("concat", _embeddings()[0], texts)
