"""Benchmark: images/s of the embed pipeline (decode + preprocess in 2 DataLoader workers, encode,
HDF5 write, bookkeeping) against the bare model forward on the same images already preprocessed
into one tensor, in the same run. Overhead = 1 - pipeline rate / forward rate (target < 15%).

The model is a randomly initialised CLIP with a real architecture, saved as a local-dir: folder
and loaded through open_clip's factory: ViT-B/32-shaped by default (12 blocks, width 768,
patch 32, 224 px), or ViT-L/14-shaped (--shape l14, the papers' encoder). Images are 320x240
PNGs, the size of UCF-101's middle frames.

Usage: python tests/bench/bench_embed.py [--images 384] [--device cpu] [--threads 2] [--workers 2] [--shape b32]
On CPU, pin the process to as many cores as --threads (e.g. taskset -c 0,1) so that the workers
compete with the encoder for the same cores, as on a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

SHAPES = {
    "b32": dict(layers=12, width=768, patch_size=32, image_size=224, embed_dim=512),
    "l14": dict(layers=24, width=1024, patch_size=14, image_size=224, embed_dim=768),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=384)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="b32")
    args = parser.parse_args()

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from lmmclf.clip import load_clip
    from lmmclf.devices import autocast, resolve_precision
    from lmmclf.datasets import load_dataset
    from lmmclf.embed.run import embed_images
    from lmmclf.store import ArtifactStore
    from lmmclf.testing.paper1 import toy_config
    from lmmclf.testing.tiny_clip import make_tiny_clip

    work = Path(tempfile.mkdtemp(prefix="bench-embed-"))
    os.environ["LMMCLF_CONFIG_DIR"] = str(work / "user")
    rng = np.random.default_rng(0)
    classes = 8
    from PIL import Image

    for i in range(args.images):
        split = "test" if i % 4 == 3 else "train"
        folder = work / "images" / split / f"class{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = (rng.random((240, 320, 3)) * 64 + (i % classes) * 24).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:05d}.png")
    clip = make_tiny_clip(work / "clip", **SHAPES[args.shape], text_width=64, text_layers=1)
    cfg = toy_config(work / "images", clip, batch_size=args.batch_size, num_workers=args.workers, device=args.device)
    store = ArtifactStore(work / "cache")
    dataset = load_dataset(cfg, store, show_progress=False)
    loaded = load_clip(clip, None, args.device)
    precision = resolve_precision("auto", args.device)
    n = len(dataset.items)

    def sync():
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    # bare forward on preprocessed tensors (already on the device), same batches and autocast
    pixels = torch.stack([loaded.preprocess(Image.open(item.path).convert("RGB")) for item in dataset.items]).to(args.device)
    with torch.inference_mode(), autocast(precision, args.device):
        loaded.model.encode_image(pixels[: args.batch_size])  # warm-up
        sync()
        start = time.perf_counter()
        for s in range(0, n, args.batch_size):
            loaded.model.encode_image(pixels[s : s + args.batch_size]).float().cpu()
        sync()
        forward = n / (time.perf_counter() - start)
    del pixels

    start = time.perf_counter()
    embed_images(cfg, dataset, store, clip=loaded, force=True)
    sync()
    pipeline = n / (time.perf_counter() - start)
    print(f"embed benchmark: {n} PNG 320x240, {args.shape}-shaped CLIP, device {args.device} ({precision}), "
          f"{args.threads} threads, {args.workers} workers, batch {args.batch_size}")
    print(f"bare forward: {forward:8.1f} images/s")
    print(f"lmmclf embed: {pipeline:8.1f} images/s  -> overhead {100 * (1 - pipeline / forward):.1f}%")


if __name__ == "__main__":
    main()
