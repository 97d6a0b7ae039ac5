"""Benchmark (issue 23, bounded memory): time and peak RSS of prototypes, probe and the
trunk-cache read at N = 2,000 and N = 20,000 images, and the ratio 20k / 2k per stage.

Synthetic embed artifacts are written under their real keys (``embed.specs``) with the embed
stage's own array writer (``embed.rows.row_array``: row-chunked, gzip), D = 768 and K = 10
descriptions per image as for ViT-L/14, then each stage runs in its own subprocess through its
library function, so its peak RSS (``ru_maxrss``) is its own.

Usage: python tests/bench/bench_memory.py [--sizes 2000 20000] [--epochs 3] [--probe-limit BYTES]
``--probe-limit`` sets ``probe.in_memory_max_bytes`` (default 0: features spilled to a
memory-mapped file, the path a dataset larger than memory takes); the trunk cache is read
through :class:`~lmmclf.finetune.trunk_cache.DiskTokens` (limit 0) for one epoch of batches.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

D, K, CLASSES, TRUNK_WIDTH = 768, 10, 101, 1024


def _setup(n: int):
    from lmmclf.config import ExperimentConfig
    from lmmclf.datasets.base import DatasetIndex, Item

    items = [Item(f"img{i:07d}", None, i % CLASSES, "train" if (i // CLASSES) % 10 < 7 else "test") for i in range(n)]
    dataset = DatasetIndex(f"bench{n}", [f"class{c}" for c in range(CLASSES)], items, f"fp{n}")
    return ExperimentConfig(), dataset


def build(root: Path, n: int) -> None:
    """Write the embed-image, embed-text and trunk artifacts of N synthetic images, in row chunks."""
    import h5py

    from lmmclf.embed.rows import row_array
    from lmmclf.embed.specs import image_embed_spec, text_embed_spec
    from lmmclf.finetune.trunk_cache import STAGE as TRUNK
    from lmmclf.finetune.trunk_cache import ordered_items, rows_per_chunk
    from lmmclf.store import ArtifactStore, KeySpec

    cfg, dataset = _setup(n)
    store = ArtifactStore(root)
    rng = np.random.default_rng(0)
    ids = [item.id for item in dataset.items]
    strings = h5py.string_dtype("utf-8")
    centres = rng.normal(size=(CLASSES, D)).astype(np.float32)
    labels = np.array([item.label for item in dataset.items])

    def images(handle) -> int:
        handle.create_dataset("ids", data=np.asarray(ids, dtype=object), dtype=strings)
        handle.create_dataset("labels", data=labels.astype(np.int64))
        handle.create_dataset("splits", data=np.asarray([i.split for i in dataset.items], dtype=object), dtype=strings)
        row_array(handle, "embeddings", (n, D), np.float16)[...] = (centres[labels] + rng.normal(size=(n, D))).astype(np.float16)
        handle.create_dataset("ok", data=np.ones(n, dtype=bool))
        handle.attrs["class_names"] = json.dumps(dataset.class_names)
        return n

    def texts(handle) -> int:
        handle.create_dataset("ids", data=np.asarray(ids, dtype=object), dtype=strings)
        table = row_array(handle, "description_embeddings", (n, K, D), np.float16, row_chunk=64)
        for start in range(0, n, 1024):
            rows = labels[start : start + 1024]
            table[start : start + len(rows)] = (centres[rows][:, None] + rng.normal(size=(len(rows), K, D))).astype(np.float16)
        handle.create_dataset("mask", data=np.ones((n, K), dtype=bool))
        row_array(handle, "pooled", (n, D), np.float16)[...] = (centres[labels] + rng.normal(size=(n, D)) / np.sqrt(K)).astype(np.float16)
        return n

    store.ensure(image_embed_spec(cfg, dataset, store), images)
    store.ensure(text_embed_spec(cfg, dataset, store), texts)
    rows = ordered_items(dataset)
    shape = (n, TRUNK_WIDTH)  # pooled trunk outputs (--unlocked-blocks 0), 2 KB per image

    def trunk(handle) -> int:
        handle.create_dataset("ids", data=np.asarray([i.id for i in rows], dtype=object), dtype=strings)
        handle.create_dataset("labels", data=np.array([i.label for i in rows], dtype=np.int64))
        tokens = handle.create_dataset("tokens", shape=shape, dtype=np.float16, chunks=(rows_per_chunk(shape, "float16"), TRUNK_WIDTH))
        for start in range(0, n, 4096):
            tokens[start : start + 4096] = rng.normal(size=(min(4096, n - start), TRUNK_WIDTH)).astype(np.float16)
        return n

    store.ensure(KeySpec(stage=TRUNK, version=1, dataset=dataset.identity(), params={"bench": True}), trunk, in_memory=False)


def run_stage(root: Path, n: int, stage: str, epochs: int, probe_limit: int) -> dict:
    """Run one stage in this process; returns its seconds."""
    cfg, dataset = _setup(n)
    from lmmclf.store import ArtifactStore, KeySpec

    store = ArtifactStore(root)
    started = time.perf_counter()
    if stage == "prototypes":
        from lmmclf.prototypes import make_prototypes

        make_prototypes(cfg, dataset, store, force=True)
    elif stage.startswith("probe"):
        from lmmclf.probe.stage import run_probe

        cfg = cfg.override("probe", epochs=epochs, in_memory_max_bytes=probe_limit, normalize=stage.endswith("normalize"), device="cpu")
        run_probe(cfg, dataset, store, "concat", force=True)
    else:
        import torch

        from lmmclf.finetune.sources import CachedTokens
        from lmmclf.finetune.trunk_cache import STAGE as TRUNK
        from lmmclf.finetune.trunk_cache import load_trunk_cache

        key = KeySpec(stage=TRUNK, version=1, dataset=dataset.identity(), params={"bench": True}).key
        source = CachedTokens(*load_trunk_cache(store, key, dataset, in_memory_max_bytes=0), device=torch.device("cpu"))
        order = torch.randperm(source.num_train, generator=torch.Generator().manual_seed(0))
        for _ in source.train_batches(order, 64):
            pass
    return {"seconds": time.perf_counter() - started}


STAGES = ("prototypes", "probe", "probe-normalize", "trunk-read")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--probe-limit", type=int, default=0)
    parser.add_argument("--child", nargs=3, metavar=("ROOT", "N", "STAGE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("LMMCLF_NO_PROGRESS", "1")
    if args.child:
        root, n, stage = Path(args.child[0]), int(args.child[1]), args.child[2]
        if stage == "build":
            build(root, n)
            out = {}
        else:
            out = run_stage(root, n, stage, args.epochs, args.probe_limit)
        out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
        print(json.dumps(out))
        return
    results: dict[tuple[int, str], dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            root = Path(tmp) / str(n)
            for stage in ("build", *STAGES):
                command = [sys.executable, __file__, "--epochs", str(args.epochs), "--probe-limit", str(args.probe_limit), "--child", str(root), str(n), stage]
                done = subprocess.run(command, capture_output=True, text=True, check=False)
                if done.returncode:
                    sys.exit(f"{stage} at N={n} failed:\n{done.stderr[-3000:]}")
                results[(n, stage)] = json.loads(done.stdout.strip().splitlines()[-1])
    small, large = min(args.sizes), max(args.sizes)
    print(f"| stage | time N={small} | time N={large} | ratio | peak RSS N={small} | peak RSS N={large} | ratio |")
    print("|---|---|---|---|---|---|---|")
    for stage in STAGES:
        a, b = results[(small, stage)], results[(large, stage)]
        print(f"| {stage} | {a['seconds']:.2f} s | {b['seconds']:.2f} s | {b['seconds'] / a['seconds']:.1f}x "
              f"| {a['peak_mb']:.0f} MB | {b['peak_mb']:.0f} MB | {b['peak_mb'] / a['peak_mb']:.2f}x |")


if __name__ == "__main__":
    main()
