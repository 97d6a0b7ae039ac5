"""Benchmark: wall time of `lmmclf eval --method concat` as a subprocess from a warm cache
(process start, config, dataset index with a warm file-hash memo, keys, HDF5 reads, table,
results.json/.csv/.md and the PNG plot). Target: under 3 s.

The dataset is an image folder of UCF-101's size (101 classes x 131 images = 13,231 PNGs, 32 px)
and the probe artifact holds 3 seeds x 500 epochs of curves over the test split, like a real one.

Usage: python tests/bench/bench_eval.py [--per-class 131] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-class", type=int, default=131)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import numpy as np

    work = Path(tempfile.mkdtemp(prefix="bench-eval-"))
    os.environ["LMMCLF_CACHE"] = str(work / "cache")
    os.environ["LMMCLF_CONFIG_DIR"] = str(work / "user")
    from lmmclf.datasets import load_dataset
    from lmmclf.probe.stage import probe_spec
    from lmmclf.results import TrainingRun, write_runs
    from lmmclf.store import ArtifactStore
    from lmmclf.testing.layouts import make_imagefolder
    from lmmclf.testing.paper1 import toy_config
    from lmmclf.testing.tiny_clip import make_tiny_clip

    n_test = max(1, round(args.per_class * 0.28))
    root = make_imagefolder(work / "images", [f"Class{i:03d}" for i in range(101)], n_train=args.per_class - n_test, n_test=n_test)
    cfg = toy_config(root, make_tiny_clip(work / "clip")).override("probe", seeds=[0, 1, 2])
    store = ArtifactStore()
    dataset = load_dataset(cfg, store, show_progress=False)  # warms the file-hash memo
    test = dataset.split("test")
    rng = np.random.default_rng(0)
    runs = [
        TrainingRun(seed, rng.random(500), np.sort(rng.random(500)), [i.id for i in test],
                    rng.integers(0, 101, len(test)), np.array([i.label for i in test]),
                    weights={"weight": rng.random((101, 1536), dtype=np.float32)})
        for seed in (0, 1, 2)
    ]
    store.ensure(probe_spec(cfg, dataset, store, "concat"), lambda handle: write_runs(handle, runs))
    config = work / "exp.yaml"
    config.write_text(cfg.to_yaml())
    command = [sys.executable, "-m", "lmmclf", "-c", str(config), "eval", "--method", "concat", "--out-dir", str(work / "results")]
    subprocess.run(command, check=True, capture_output=True)  # warm the OS file cache
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    bare = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    bare = time.perf_counter() - bare
    print(f"eval benchmark: {len(dataset.items)} images, {len(test)} test, 3 seeds x 500 epochs")
    print(f"lmmclf eval --method concat: median {statistics.median(times):.2f} s (runs: {', '.join(f'{t:.2f}' for t in times)}); "
          f"bare python start {bare:.2f} s; target < 3 s")


if __name__ == "__main__":
    main()
