"""Benchmark of ``lmmclf report`` at UCF-101's size (not collected by pytest).

13,320 generated 320x240 JPEG frames in 101 classes (9,537 train / 3,783 test, UCF-101 split 1's
counts), ten ~70-character descriptions per image (2% failed, with raw answers), and two trained
methods whose runs are written in the training stages' own format (:func:`lmmclf.results.write_runs`)
under the probe keys the settings name, with random predictions (the report reads runs; how
they were trained does not change its cost). Then ``lmmclf report`` through the real command line,
and the page opened from ``file://`` in headless Chromium. Prints the build time, the folder's
size and the time to the first screen (the gallery drawn), against the issue's budgets:
built < 5 min on 2 cores, folder < 100 MB, first screen < 2 s.

    python tests/bench/bench_report.py [--images 13320] [--classes 101] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LMMCLF_NO_PROGRESS", "1")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

WORDS = ("person", "outdoor", "court", "ball", "crowd", "bright", "light", "motion", "blue", "shirt", "grass", "indoor",
         "playing", "standing", "holding", "arms", "background", "wall", "camera", "blurry", "green", "red", "sky")


def write_images(root: Path, classes: list[str], total: int, test_share: float, rng) -> None:
    """JPEG frames with smooth colour fields (a video frame's size and compressibility, roughly)."""
    per_class = total // len(classes)
    extra = total - per_class * len(classes)
    base = np.linspace(0, 1, 320)[None, :, None] * np.linspace(0, 1, 240)[:, None, None]
    for c, name in enumerate(classes):
        count = per_class + (1 if c < extra else 0)
        n_test = round(count * test_share)
        for i in range(count):
            split = "test" if i < n_test else "train"
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            colour = rng.uniform(0, 255, size=3)
            noise = rng.normal(0, 12, size=(60, 80, 3)).repeat(4, 0).repeat(4, 1)
            pixels = np.clip(base * colour + noise + rng.uniform(0, 80), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"v_{name}_g{i:03d}.jpg", quality=85)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=13320)
    parser.add_argument("--classes", type=int, default=101)
    parser.add_argument("--keep", type=Path, default=None, help="work here and keep the files (default: a temp folder)")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-report-"))
    os.environ["LMMCLF_CACHE"] = str(work / "cache")
    os.environ["LMMCLF_CONFIG_DIR"] = str(work / "user-config")

    from lmmclf.config import ExperimentConfig
    from lmmclf.datasets import load_dataset
    from lmmclf.describe import describe_spec
    from lmmclf.evaluation.methods import resolve_methods
    from lmmclf.results import TrainingRun, write_runs
    from lmmclf.store import ArtifactStore
    from lmmclf.testing.describe_artifact import write_describe_artifact
    from lmmclf.testing.tiny_clip import make_tiny_clip

    rng = np.random.default_rng(0)
    classes = [f"Action{c:03d}Move" for c in range(args.classes)]
    root = work / "images"
    start = time.perf_counter()
    if not (root / "test").exists():
        write_images(root, classes, args.images, 3783 / 13320, rng)
    print(f"images written in {time.perf_counter() - start:.0f} s")
    clip = make_tiny_clip(work / "clip", seed=0)
    cfg = ExperimentConfig().override("dataset", name="bench", root=str(root), type="imagefolder")
    cfg = cfg.override("embed", clip_model=clip).override("probe", seeds=[0])
    import dataclasses

    cfg = dataclasses.replace(cfg, embed=dataclasses.replace(cfg.embed, clip_pretrained=None))
    config = work / "exp.yaml"
    config.write_text(cfg.to_yaml())
    store = ArtifactStore(work / "cache")
    dataset = load_dataset(cfg, store, show_progress=False)
    ids = [item.id for item in dataset.items]
    texts, ok = [], []
    for item in dataset.items:
        failed = rng.random() < 0.02
        ok.append(not failed)
        texts.append([] if failed else [" ".join(rng.choice(WORDS, size=10)) for _ in range(10)])
    write_describe_artifact(store, describe_spec(cfg, dataset, store), ids, texts, ok,
                            ["refused: cannot describe" if not good else "" for good in ok], k=10)
    test = dataset.split("test")
    labels = np.array([item.label for item in test])
    for name in ("image", "concat"):
        (method,) = resolve_methods([name])
        (spec,) = method.specs(cfg, dataset, store)
        if store.is_complete(spec.stage, spec.key):
            continue
        right = rng.random(len(test)) < 0.8
        predictions = np.where(right, labels, rng.integers(0, len(classes), len(test)))
        acc = float(np.mean(predictions == labels))
        run = TrainingRun(0, np.ones(3), np.array([acc / 2, acc * 0.9, acc]), [item.id for item in test], predictions, labels)
        store.ensure(spec, lambda handle, run=run: write_runs(handle, [run]))
    print(f"{len(ids)} images, {len(classes)} classes, {len(test)} test images cached in {time.perf_counter() - start:.0f} s")

    out = work / "site"
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "lmmclf", "-q", "-c", str(config), "report", "--out", str(out)],
                            capture_output=True, text=True, check=True)
    built = time.perf_counter() - start
    size = sum(path.stat().st_size for path in out.rglob("*") if path.is_file())
    index = Path(result.stdout.strip().splitlines()[-1])
    print(f"report built in {built:.1f} s (budget 300 s); folder {size / 1e6:.1f} MB (budget 100 MB)")

    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox"])
        for attempt in range(3):
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            start = time.perf_counter()
            page.goto(index.as_uri())
            page.wait_for_selector("body[data-ready='1']")
            first = time.perf_counter() - start
            start = time.perf_counter()
            page.fill("#search", "crowd blurry")
            page.wait_for_function("document.getElementById('gallery-count').textContent !== '%d'" % len(ids))
            search = time.perf_counter() - start
            print(f"first screen {first:.2f} s (budget 2 s); a search over every description {search:.2f} s"
                  f" ({page.text_content('#gallery-count')} images match)")
            page.close()
        browser.close()


if __name__ == "__main__":
    main()
