"""Class prototypes in bounded memory: the table is read in row chunks and the result equals
the per-row loop that read it whole, bit for bit."""

from __future__ import annotations

import h5py
import numpy as np

from lmmclf.datasets.base import DatasetIndex, Item
from lmmclf.prototypes import class_prototypes


def _old_prototypes(ids, table, mask, dataset):
    """Eq. 1 as it was computed before issue 23: the whole table, one row at a time."""
    by_id = {item.id: item for item in dataset.items}
    classes = len(dataset.class_names)
    sums = np.zeros((classes, table.shape[2]), dtype=np.float64)
    counts = np.zeros(classes, dtype=np.int64)
    images = np.zeros(classes, dtype=np.int64)
    for row, item_id in enumerate(ids):
        item, valid = by_id[item_id], mask[row]
        if item.split != "train" or not valid.any():
            continue
        sums[item.label] += table[row][valid].astype(np.float64).sum(axis=0)
        counts[item.label] += int(valid.sum())
        images[item.label] += 1
    return (sums / counts[:, None]).astype(np.float32), counts, images


class _Recording:
    """An (N, K, D) array that records how many rows each read asks for."""

    def __init__(self, array):
        self.array, self.shape, self.reads = array, array.shape, []

    def __getitem__(self, index):
        part = self.array[index]
        self.reads.append(len(part))
        return part


def _random(n=300, k=5, d=16, classes=7, seed=0):
    rng = np.random.default_rng(seed)
    items = [Item(f"i{n}", None, int(rng.integers(classes)), "train" if rng.random() < 0.7 else "test") for n in range(n)]
    for c in range(classes):  # every class has a training image
        items[c] = Item(f"i{c}", None, c, "train")
    dataset = DatasetIndex("rand", [f"c{c}" for c in range(classes)], items, "fp")
    table = rng.normal(size=(n, k, d)).astype(np.float32)
    mask = rng.random((n, k)) < 0.8
    mask[:classes] = True
    order = rng.permutation(n)  # rows in describe order, not dataset order: matched by id
    return [items[i].id for i in order], table[order], mask[order], dataset


def test_chunked_prototypes_equal_the_whole_table_loop_bit_for_bit(tmp_path):
    ids, table, mask, dataset = _random()
    expected = _old_prototypes(ids, table, mask, dataset)
    with h5py.File(tmp_path / "t.h5", "w") as handle:
        handle.create_dataset("description_embeddings", data=table)
    with h5py.File(tmp_path / "t.h5", "r") as handle:
        for max_bytes in (1, 5 * 16 * 4 * 7, None):  # one row at a time, 7 rows, the default
            got = class_prototypes(ids, handle["description_embeddings"], mask, dataset, max_bytes=max_bytes)
            for a, b in zip(got, expected):
                np.testing.assert_array_equal(a, b)


def test_the_table_is_never_read_whole():
    ids, table, mask, dataset = _random(n=200, k=4, d=8)
    recorded = _Recording(table)
    class_prototypes(ids, recorded, mask, dataset, max_bytes=4 * 8 * 4 * 32)  # 32 rows a read
    assert max(recorded.reads) == 32 and sum(recorded.reads) == 200
