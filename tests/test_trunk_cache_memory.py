"""The trunk cache read per batch from its file when it is large: the same rows as the whole read."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.parametrize("pooled", [False, True])
def test_disk_tokens_give_the_rows_the_whole_read_gives(tmp_path, pooled):
    import torch

    from lmmclf.datasets.base import DatasetIndex, Item
    from lmmclf.finetune.sources import CachedTokens
    from lmmclf.finetune.trunk_cache import STAGE, DiskTokens, load_trunk_cache, ordered_items, rows_per_chunk
    from lmmclf.store import ArtifactStore, KeySpec

    rng = np.random.default_rng(0)
    items = [Item(f"i{n}", None, n % 3, "train" if n % 4 else "test") for n in range(40)]
    dataset = DatasetIndex("toy", ["a", "b", "c"], items, "fp")
    rows = ordered_items(dataset)
    shape = (len(rows), 8) if pooled else (len(rows), 5, 8)
    values = rng.normal(size=shape).astype(np.float16)
    store = ArtifactStore(tmp_path)
    spec = KeySpec(stage=STAGE, version=1, dataset=dataset.identity(), params={"test": pooled})

    def compute(handle) -> int:
        handle.create_dataset("ids", data=[item.id for item in rows])
        handle.create_dataset("labels", data=np.array([item.label for item in rows], dtype=np.int64))
        handle.create_dataset("tokens", data=values, chunks=(rows_per_chunk(shape, "float16"), *shape[1:]))
        return len(rows)

    store.ensure(spec, compute)
    whole = load_trunk_cache(store, spec.key, dataset)
    streamed = load_trunk_cache(store, spec.key, dataset, in_memory_max_bytes=0)
    assert isinstance(streamed[0], DiskTokens) and isinstance(whole[0], torch.Tensor)
    a = CachedTokens(*whole, device=torch.device("cpu"))
    b = CachedTokens(*streamed, device=torch.device("cpu"))
    order = torch.randperm(a.num_train, generator=torch.Generator().manual_seed(1))
    for (xa, ya), (xb, yb) in zip(a.train_batches(order, 7), b.train_batches(order, 7), strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    for (xa, ya), (xb, yb) in zip(a.test_batches(4), b.test_batches(4), strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert torch.equal(streamed[2].to("cpu"), whole[2])
