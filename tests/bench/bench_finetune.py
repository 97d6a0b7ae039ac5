"""Benchmark: time per fine-tuning epoch with the frozen-trunk cache against the full forward.

Default (CPU, a few seconds): the tiny 12-block open_clip ViT of the tests, one trainable
block (``--unlocked-blocks 1``), the same images, the same order, side by side in one run.
Target: the cached epoch is at least 5x faster. Prints both times and the ratio.

``--unlocked-blocks 0`` (paper 2's narrow reading: only ln_post, proj and the head train): the
trunk pools, so its cache holds one vector of width floats per image, and a cached epoch runs
two small matrix products per batch; the full forward still runs all 12 blocks per image.

``--gpu-vit-l`` (for a GPU): ViT-L-14 (QuickGELU) with random weights at 224 px, bf16, and
prints images/s per epoch for the full forward and for the trunk cache, plus the one-time
cost of building the cache and its size per image.

Run: ``python tests/bench/bench_finetune.py [--gpu-vit-l] [--unlocked-blocks N] [--train N] [--epochs E]``.
An epoch here is what ``Trainer.fit`` does per epoch: train, evaluate on the test split,
save the checkpoint.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def build_dataset(root: Path, n_train: int, n_test: int, classes: int, size: int):
    """Images on disk in an image folder, loaded through the real dataset loader."""
    import os

    os.environ["LMMCLF_CONFIG_DIR"] = str(root / "user-config")  # never touch the user's dataset registry
    from lmmclf.config import ExperimentConfig
    from lmmclf.datasets import load_dataset
    from lmmclf.store import ArtifactStore
    from lmmclf.testing.layouts import make_imagefolder

    names = tuple(f"class{i}" for i in range(classes))
    make_imagefolder(root / "images", class_names=names, n_train=n_train // classes, n_test=n_test // classes, size=(size, size))
    store = ArtifactStore(root / "cache")
    cfg = ExperimentConfig().override("dataset", name="bench", root=str(root / "images"), type="imagefolder")
    return load_dataset(cfg, store, show_progress=False), store


def epoch_times(model, source, prototypes, settings, device, epochs: int, checkpoint: Path) -> list[float]:
    """Seconds of each epoch (train + test evaluation + checkpoint), as ``Trainer.fit`` runs them."""
    import torch

    from lmmclf.finetune.trainer import Trainer

    trainer = Trainer(model, source, prototypes, settings, seed=0, device=device, checkpoint_path=checkpoint)
    times = []
    for _ in range(epochs):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        trainer.train_epoch()
        trainer.finish_epoch(trainer.evaluate())
        trainer.save()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def compare(clip_model, preprocess, identity: dict, dataset, store, device, precision: str, unlocked: int,
            epochs: int, batch_size: int, num_workers: int, trunk_dtype: str, work: Path) -> dict:
    """Train the same configuration from the trunk cache and with the full forward; time both."""
    import torch

    from lmmclf.finetune.sources import CachedTokens, StreamedImages
    from lmmclf.finetune.tail import FinetuneModel, split_tower
    from functools import partial

    from lmmclf.devices import autocast as autocast_context
    from lmmclf.finetune.trainer import TrainSettings
    from lmmclf.finetune.trunk_cache import bytes_per_image, ensure_trunk_cache, load_trunk_cache, trunk_spec

    clip_model.float().to(device)
    trunk, tail, split = split_tower(clip_model, unlocked)
    embed_dim = tail.proj.shape[1]
    classes = len(dataset.class_names)
    initial = {k: v.detach().clone() for k, v in tail.state_dict().items()}
    prototypes = torch.randn(classes, embed_dim, generator=torch.Generator().manual_seed(0)).to(device)
    settings = TrainSettings(alpha=0.01, epochs=epochs, batch_size=batch_size, lr=1e-4, optimizer="adam", weight_decay=0.0,
                             momentum=0.9, schedule="constant", reg_reduction="mean", precision=precision)
    autocast = partial(autocast_context, precision, device)

    start = time.perf_counter()
    spec = trunk_spec(identity, dataset, split, preprocess, trunk_dtype, precision)
    key = ensure_trunk_cache(store, spec, dataset, trunk, preprocess, device, autocast, batch_size=batch_size,
                             num_workers=num_workers, show_progress=False)
    tensors = load_trunk_cache(store, key, dataset)
    build = time.perf_counter() - start
    cached = CachedTokens(*tensors, device=device)

    train, test = dataset.split("train"), dataset.split("test")
    labels = lambda items: torch.tensor([i.label for i in items])  # noqa: E731
    streamed = StreamedImages(trunk, [i.path for i in train], labels(train), [i.path for i in test], labels(test),
                              preprocess, preprocess, device, autocast, num_workers=num_workers)

    results = {}
    for name, source in (("full forward", streamed), ("trunk cache", cached)):
        tail.load_state_dict(initial)
        model = FinetuneModel(tail, embed_dim, classes).to(device)
        results[name] = epoch_times(model, source, prototypes, settings, device, epochs, work / f"{name}.pt")
    steady = {name: statistics.median(times[1:] if len(times) > 1 else times) for name, times in results.items()}
    return {
        "epochs": results,
        "steady": steady,
        "ratio": steady["full forward"] / steady["trunk cache"],
        "build_seconds": build,
        "bytes_per_image": bytes_per_image(tuple(tensors[0].shape[1:]), trunk_dtype),
        "cached_shape": tuple(tensors[0].shape[1:]),
        "images": len(train) + len(test),
        "train_images": len(train),
        "split": split,
    }


def report(title: str, result: dict) -> None:
    n = result["images"]  # an epoch trains on the training images and evaluates the test images
    print(title)
    for name, seconds in result["steady"].items():
        print(f"  {name:13s} {seconds:8.3f} s/epoch  {n / seconds:9.1f} images/s (train+test)  (epochs: "
              + ", ".join(f"{t:.3f}" for t in result["epochs"][name]) + ")")
    what = "pooled token" if len(result["cached_shape"]) == 1 else "tokens"
    print(f"  trunk cache built once in {result['build_seconds']:.2f} s, {result['bytes_per_image'] / 1e3:.2f} KB per image "
          f"({what}, {' x '.join(map(str, result['cached_shape']))})")
    print(f"  speed-up per epoch (full forward / trunk cache): {result['ratio']:.1f}x")


def tiny(args) -> dict:
    import torch

    from lmmclf.clip import clip_identity, load_clip
    from lmmclf.filehash import FileHashCache
    from lmmclf.testing.tiny_clip import make_tiny_clip

    torch.set_num_threads(args.threads) if args.threads else None
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        name = make_tiny_clip(work / "clip", image_size=args.image_size, width=args.width)
        dataset, store = build_dataset(work, args.train, args.test, classes=4, size=args.image_size)
        clip = load_clip(name, None, "cpu")
        identity = clip_identity(name, None, FileHashCache(store.file_hash_db()))
        result = compare(clip.model, clip.preprocess, identity, dataset, store, torch.device("cpu"), "fp32",
                         args.unlocked_blocks, args.epochs, args.batch_size, args.workers, "float16", work)
    report(f"tiny CLIP ViT ({result['split'].layers} blocks, {args.unlocked_blocks} trainable, width {args.width}, "
           f"{args.image_size} px), {args.train} train + {args.test} test images, CPU fp32, batch {args.batch_size}", result)
    verdict = "meets" if result["ratio"] >= 5 else "MISSES"
    print(f"  target >= 5x: {verdict}")
    return result


def vit_l(args) -> dict:
    import open_clip
    import torch

    from lmmclf.devices import resolve_precision

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    precision = "bf16" if device.type == "cuda" else resolve_precision("auto", device, prefer_bf16=True)
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        dataset, store = build_dataset(work, args.train, args.test, classes=8, size=224)
        model, _, preprocess = open_clip.create_model_and_transforms("ViT-L-14-quickgelu", pretrained=None)
        identity = {"clip": "ViT-L-14-quickgelu", "pretrained": None, "random_init": True}
        result = compare(model, preprocess, identity, dataset, store, device, precision, args.unlocked_blocks,
                         args.epochs, args.batch_size, args.workers, "float16", work)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    report(f"ViT-L-14 (random weights, 224 px, {args.unlocked_blocks} of 24 blocks trainable), {args.train} train + "
           f"{args.test} test images, {name}, {precision}, batch {args.batch_size}, {args.workers} loader workers", result)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpu-vit-l", action="store_true", help="ViT-L-14 with random weights, bf16 (meant for a GPU).")
    parser.add_argument("--train", type=int, help="training images (default 256; 2048 with --gpu-vit-l)")
    parser.add_argument("--test", type=int, help="test images (default 64; 512 with --gpu-vit-l)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per mode; the first is warm-up (default 3)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--unlocked-blocks", type=int, default=1)
    parser.add_argument("--workers", type=int, help="DataLoader workers (default 0 tiny, 8 ViT-L)")
    parser.add_argument("--image-size", type=int, default=32, help="tiny mode: input resolution")
    parser.add_argument("--width", type=int, default=64, help="tiny mode: transformer width")
    parser.add_argument("--threads", type=int, default=0, help="tiny mode: torch CPU threads (0: torch's default)")
    parser.add_argument("--device", help="--gpu-vit-l: torch device (default cuda if available)")
    args = parser.parse_args()
    if args.gpu_vit_l:
        args.train, args.test = args.train or 2048, args.test or 512
        args.workers = 8 if args.workers is None else args.workers
        vit_l(args)
    else:
        args.train, args.test = args.train or 256, args.test or 64
        args.workers = 0 if args.workers is None else args.workers
        tiny(args)


if __name__ == "__main__":
    main()
