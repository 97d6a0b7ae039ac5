"""Benchmark of the dataset layer, side by side in one run (not collected by pytest).

1. Loading an image dataset the first time (hash + decode check of every file) against the
   second time (per-file memo: one stat per file).
2. Middle-frame extraction with one decoding process against one per CPU core.

    python tests/bench/bench_datasets.py [--images 3000] [--videos 200]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LMMCLF_NO_PROGRESS", "1")

from lmmclf.config import ExperimentConfig  # noqa: E402
from lmmclf.datasets import load_dataset  # noqa: E402
from lmmclf.datasets.loader import decode_workers  # noqa: E402
from lmmclf.store import ArtifactStore  # noqa: E402
from lmmclf.testing.layouts import make_imagefolder, make_ucf101  # noqa: E402


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--videos", type=int, default=120)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        per_class = max(1, args.images // 10)
        root = make_imagefolder(tmp / "imgs", class_names=[f"c{i}" for i in range(5)], n_train=per_class, n_test=per_class, size=(64, 64))
        cfg = ExperimentConfig().override("dataset", name="bench", root=str(root), type="imagefolder")
        store = ArtifactStore(tmp / "cache")
        first, index = timed(lambda: load_dataset(cfg, store, show_progress=False))
        second, _ = timed(lambda: load_dataset(cfg, store, show_progress=False))
        n = len(index.items)
        print(f"images: {n} files; first load {first:.2f} s ({n / first:.0f}/s), memoized {second:.3f} s "
              f"({n / second:.0f}/s): {first / second:.1f}x faster")

        groups = max(1, args.videos // 6)
        ucf = make_ucf101(tmp / "ucf", groups=groups, clips=2, n_frames=150, size=(320, 240))
        cores = decode_workers(0)
        times = {}
        for workers in (1, cores):
            cfg = ExperimentConfig().override("dataset", name="ucf101", root=str(ucf), decode_workers=workers)
            store = ArtifactStore(tmp / f"cache-{workers}")
            times[workers], index = timed(lambda: load_dataset(cfg, store, show_progress=False))
        n = len(index.items)
        print(f"videos: {n} clips of 150 frames 320x240 (UCF-101-like); 1 process {times[1]:.2f} s, {cores} processes "
              f"{times[cores]:.2f} s: {times[1] / times[cores]:.2f}x")


if __name__ == "__main__":
    main()
