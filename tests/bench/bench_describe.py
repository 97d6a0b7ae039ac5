"""Benchmark of describe: batched generation against MiniGPT-4's one-image-at-a-time loop.

CPU mode (default), side by side in one run, same tiny LLaVA-architecture model, same
images, same number of generated tokens per image (``min_new_tokens = max_new_tokens``):

- baseline: the loop MiniGPT-4's demo runs (one image, one ``generate`` call, repeat);
- lmmclf: ``run_describe`` at ``--batch-size 16`` (left-padded batches, journal writes included).

    python tests/bench/bench_describe.py                 # target: >= 6x at batch 16

GPU mode (``--full-size``): a randomly initialised model with the full LLaVA-1.5-13B
configuration (no download), fp16 (and 4-bit NF4 when bitsandbytes is importable), generating
300 tokens per image at ``--batch-size``; prints images/s, tokens/s and the memory-bandwidth
bound (bytes read per decode step / ``--bandwidth``; default 3.35e12 B/s, an H100 SXM).

    python tests/bench/bench_describe.py --full-size --batch-size 16

Quantized modes (issue: a 13B LMM on a 24 GB card):

- CPU, ``--quantized``: the same tiny LLaVA loaded by ``describe``'s own code with
  ``--quantize none`` (fp32) and ``--quantize int8-torchao``, same images, same tokens;
  prints images/s of both and how many answers agree (int8 must work; its CPU speed is secondary);
- GPU, ``--quantized --full-size``: the full architecture (``--arch llava-1.5-13b`` or
  ``qwen2.5-vl-7b``) with random weights, saved once and reloaded through ``from_pretrained``
  with each mode's ``quantization_config`` (:mod:`lmmclf.describe.backends.quantization`), GPU
  memory capped at ``--memory-cap-gib`` (24: an RTX 3090) with
  ``torch.cuda.set_per_process_memory_fraction``; each mode at the largest batch that fits
  (halving from ``--batch-size`` on out-of-memory), 300 new tokens per image; prints images/s,
  the ratio to bitsandbytes 8-bit eager and an RTX 3090 estimate scaled by memory bandwidth
  (936 GB/s / ``--bandwidth``) -- an estimate, not a measurement.

    python tests/bench/bench_describe.py --quantized                                    # CPU
    python tests/bench/bench_describe.py --quantized --full-size --bandwidth 3.35e12   # GPU (H100 SXM)
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("LMMCLF_NO_PROGRESS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

TARGET_RATIO = 6.0


# -- CPU: batched vs one at a time -----------------------------------------------------------
def cpu_benchmark(images: int, batch_size: int, tokens: int, threads: int) -> float:
    """Images/s of both paths; returns the ratio."""
    import torch

    from lmmclf.config import ExperimentConfig
    from lmmclf.datasets.base import DatasetIndex, Item
    from lmmclf.describe import Job, run_describe
    from lmmclf.describe.backends.hf import HFBackend
    from lmmclf.store import ArtifactStore
    from lmmclf.testing.layouts import make_imagefolder
    from lmmclf.testing.tiny_lmm import make_tiny_llava

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = make_tiny_llava(tmp / "model")
        root = make_imagefolder(tmp / "images", class_names=("a", "b", "c", "d"), n_train=(images + 3) // 4, n_test=0)
        paths = sorted(root.rglob("*.png"))[:images]
        dataset = DatasetIndex("bench", ["a"], [Item(p.name, p, 0, "train") for p in paths], "bench")
        cfg = ExperimentConfig().override(
            "describe", model=str(model), device="cpu", quantize="none", max_new_tokens=tokens, batch_size=batch_size)
        backend = HFBackend(cfg.describe, "Give 10 semantic descriptions of the image", {"min_new_tokens": tokens})
        jobs = [Job(p.name, p) for p in paths]
        backend.describe_batch(jobs[:2])  # warm-up: first-call allocations for both paths
        backend.describe_batch(jobs[:1])

        start = time.perf_counter()
        single = [backend.describe_batch([job])[0] for job in jobs]  # MiniGPT-4's demo loop
        single_s = time.perf_counter() - start

        start = time.perf_counter()
        summary = run_describe(cfg, dataset, ArtifactStore(tmp / "cache"), backend=backend, show_progress=False)
        batched_s = time.perf_counter() - start

    assert all(a.generated_tokens == tokens for a in single) and summary.tokens == tokens * len(jobs)
    single_rate, batched_rate = len(jobs) / single_s, len(jobs) / batched_s
    ratio = batched_rate / single_rate
    print(f"tiny LLaVA on CPU ({threads} thread(s)), {len(jobs)} images, {tokens} generated tokens each")
    print(f"  one image at a time (MiniGPT-4 demo loop): {single_rate:8.2f} images/s  {single_rate * tokens:9.0f} tokens/s")
    print(f"  lmmclf describe, batch {batch_size:<3}            : {batched_rate:8.2f} images/s  {batched_rate * tokens:9.0f} tokens/s")
    print(f"  ratio: {ratio:.1f}x (target >= {TARGET_RATIO:.0f}x) -> {'PASS' if ratio >= TARGET_RATIO else 'FAIL'}")
    return ratio


# -- CPU: torchao int8 against fp32 ---------------------------------------------------------
def cpu_quantized_benchmark(images: int, batch_size: int, tokens: int, threads: int) -> dict[str, float]:
    """Images/s of the tiny LLaVA in fp32 and in torchao int8 (weight-only), loaded by describe's own backend."""
    import torch

    from lmmclf.config import ExperimentConfig
    from lmmclf.describe import Job
    from lmmclf.describe.backends.hf import HFBackend
    from lmmclf.testing.layouts import make_imagefolder
    from lmmclf.testing.tiny_lmm import make_tiny_llava

    torch.set_num_threads(threads)
    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # wider than the default tiny model so that the matmuls, not Python, dominate
        model = make_tiny_llava(tmp / "model", hidden=256, layers=4)
        root = make_imagefolder(tmp / "images", class_names=("a", "b", "c", "d"), n_train=(images + 3) // 4, n_test=0)
        jobs = [Job(p.name, p) for p in sorted(root.rglob("*.png"))[:images]]
        for mode in ("none", "int8-torchao"):
            cfg = ExperimentConfig().override("describe", model=str(model), device="cpu", quantize=mode, max_new_tokens=tokens,
                                              batch_size=batch_size)
            backend = HFBackend(cfg.describe, "Give 10 semantic descriptions of the image", {"min_new_tokens": tokens})
            backend.describe_batch(jobs[:2])  # warm-up
            start = time.perf_counter()
            out = [a for i in range(0, len(jobs), batch_size) for a in backend.describe_batch(jobs[i:i + batch_size])]
            rates[mode] = len(jobs) / (time.perf_counter() - start)
            assert all(a.text is not None and a.generated_tokens == tokens for a in out)
        same, taught = _taught_agreement(tmp, jobs)
    print(f"tiny LLaVA (hidden 256, 4 layers) on CPU ({threads} thread(s)), {len(jobs)} images, batch {batch_size}, "
          f"{tokens} generated tokens each")
    print(f"  --quantize none (fp32)     : {rates['none']:8.2f} images/s")
    print(f"  --quantize int8-torchao    : {rates['int8-torchao']:8.2f} images/s  ({rates['int8-torchao'] / rates['none']:.2f}x fp32)")
    # measured on a taught model: the random one's logits are near-tied, so any rounding flips its tokens
    print(f"  int8 answers identical to fp32: {same}/{len(jobs)} (tiny LLaVA taught to answer in a list)")
    return rates


def _taught_agreement(tmp: Path, jobs) -> tuple[int, int]:
    """How many answers of a tiny LLaVA taught to answer in a list are the same in int8 as in fp32."""
    from lmmclf.config import ExperimentConfig
    from lmmclf.describe.backends.hf import HFBackend
    from lmmclf.testing.teach import teach_numbered_lists
    from lmmclf.testing.tiny_lmm import make_tiny_llava

    model = teach_numbered_lists(make_tiny_llava(tmp / "taught"))
    answers = {}
    for mode in ("none", "int8-torchao"):
        cfg = ExperimentConfig().override("describe", model=str(model), device="cpu", quantize=mode, max_new_tokens=40, batch_size=16)
        answers[mode] = [a.text for a in HFBackend(cfg.describe, "Give 10 semantic descriptions of the image").describe_batch(jobs)]
    return sum(a == b for a, b in zip(answers["none"], answers["int8-torchao"])), len(jobs)


# -- GPU: full-size LLaVA-1.5-13B ------------------------------------------------------------
def llava_config(config: dict[str, Any]):
    """A ``LlavaConfig`` from a plain dict like :data:`lmmclf.testing.tiny_lmm.LLAVA_15_13B_CONFIG`."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig

    top = {k: v for k, v in config.items() if k not in ("model_type", "vision_config", "text_config")}
    strip = lambda d: {k: v for k, v in d.items() if k != "model_type"}  # noqa: E731
    return LlavaConfig(vision_config=CLIPVisionConfig(**strip(config["vision_config"])),
                       text_config=LlamaConfig(**strip(config["text_config"])), **top)


def random_llava(config: dict[str, Any], device: str, dtype):
    """A randomly initialised LLaVA built directly on ``device`` in ``dtype`` (no CPU copy, no download)."""
    import torch
    from transformers import LlavaForConditionalGeneration

    with torch.device(device):
        model = LlavaForConditionalGeneration._from_config(llava_config(config), dtype=dtype)
    return model.eval()


def synthetic_inputs(config: dict[str, Any], batch: int, prompt_tokens: int, device: str, dtype) -> dict[str, Any]:
    """What the processor would give for ``batch`` images and a short prompt: BOS, image tokens, text."""
    import torch

    text, vision = config["text_config"], config["vision_config"]
    image = [config["image_token_index"]] * config["image_seq_length"]
    generator = torch.Generator().manual_seed(0)
    words = torch.randint(3, min(text["vocab_size"], 32000) - 1, (prompt_tokens,), generator=generator).tolist()
    ids = torch.tensor([[text["bos_token_id"], *image, *words]] * batch, device=device)
    size = vision["image_size"]
    pixels = torch.randn(batch, 3, size, size, generator=generator).to(device=device, dtype=dtype)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "pixel_values": pixels}


def bandwidth_bound(model, config: dict[str, Any], batch: int, prompt_len: int, new_tokens: int, bandwidth: float) -> dict[str, float]:
    """Tokens/s ceilings: every decode step reads the language model's weights (and the KV cache) once."""
    language = model.model.language_model if hasattr(model.model, "language_model") else model.language_model
    weight_bytes = sum(p.numel() * p.element_size() for p in language.parameters())
    weight_bytes += sum(p.numel() * p.element_size() for p in model.lm_head.parameters())
    text = config["text_config"]
    head_dim = text["hidden_size"] // text["num_attention_heads"]
    kv_per_token = 2 * text["num_hidden_layers"] * text.get("num_key_value_heads", text["num_attention_heads"]) * head_dim * 2
    kv_bytes = kv_per_token * batch * (prompt_len + new_tokens / 2)  # the cache's mean size over the run
    return {
        "weight_bytes": weight_bytes,
        "weights_only_tokens_per_s": batch * bandwidth / weight_bytes,
        "weights_and_kv_tokens_per_s": batch * bandwidth / (weight_bytes + kv_bytes),
    }


def time_generation(model, inputs: dict[str, Any], new_tokens: int, static_cache: bool = False) -> float:
    """Seconds for one ``generate`` of exactly ``new_tokens`` tokens per row (greedy).

    With ``static_cache`` (what ``describe --compile`` does), transformers compiles the decode
    step for the cache's shape; the warm-up then runs the very same call so that compilation
    is not timed (a real run compiles once per batch shape).
    """
    import torch

    kwargs = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, repetition_penalty=1.05,
                  pad_token_id=0, temperature=None, top_p=None, top_k=None)
    if static_cache:
        kwargs["cache_implementation"] = "static"
    with torch.inference_mode():
        if static_cache:
            start = time.perf_counter()
            model.generate(**inputs, **kwargs)
            print(f"  (compile + first run: {time.perf_counter() - start:.0f} s)")
        else:
            model.generate(**{k: v[:1] for k, v in inputs.items()}, **{**kwargs, "max_new_tokens": 4, "min_new_tokens": 4})
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        model.generate(**inputs, **kwargs)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
    return time.perf_counter() - start


def report(label: str, seconds: float, batch: int, new_tokens: int, bound: dict[str, float]) -> None:
    tokens_per_s = batch * new_tokens / seconds
    print(f"  {label}: {batch / seconds:7.2f} images/s  {tokens_per_s:8.0f} tokens/s  "
          f"({tokens_per_s / bound['weights_only_tokens_per_s']:.0%} of the weights-only bound "
          f"{bound['weights_only_tokens_per_s']:.0f} tokens/s; {tokens_per_s / bound['weights_and_kv_tokens_per_s']:.0%} "
          f"of the weights+KV bound {bound['weights_and_kv_tokens_per_s']:.0f} tokens/s; weights {bound['weight_bytes'] / 1e9:.1f} GB/step)")


def full_size_benchmark(config: dict[str, Any], batch: int, new_tokens: int, bandwidth: float, device: str = "cuda",
                        prompt_tokens: int = 24, four_bit: bool | None = None, static_cache: bool = False) -> dict[str, float]:
    """Build the full-size model (fp16), time ``generate``, then the same in 4-bit if bitsandbytes is there."""
    import importlib.util

    import torch

    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    results = {}
    model = random_llava(config, device, dtype)
    inputs = synthetic_inputs(config, batch, prompt_tokens, device, dtype)
    prompt_len = inputs["input_ids"].shape[1]
    print(f"LLaVA-1.5-13B configuration, random weights, {device}, batch {batch}, {new_tokens} new tokens per image, "
          f"prompt {prompt_len} tokens, bandwidth {bandwidth:.3g} B/s")
    bound = bandwidth_bound(model, config, batch, prompt_len, new_tokens, bandwidth)
    seconds = time_generation(model, inputs, new_tokens)
    report("fp16 " if dtype == torch.float16 else "fp32 ", seconds, batch, new_tokens, bound)
    results["fp16_images_per_s"] = batch / seconds
    if static_cache:
        seconds = time_generation(model, inputs, new_tokens, static_cache=True)
        report("fp16, static cache + compile", seconds, batch, new_tokens, bound)
        results["fp16_compiled_images_per_s"] = batch / seconds
    four_bit = importlib.util.find_spec("bitsandbytes") is not None if four_bit is None else four_bit
    if four_bit and device.startswith("cuda"):
        results["4bit_images_per_s"] = _four_bit(model, config, inputs, batch, new_tokens, bandwidth, prompt_len)
    elif device.startswith("cuda"):
        print("  4-bit: skipped (bitsandbytes is not installed: pip install bitsandbytes)")
    return results


def _four_bit(model, config, inputs, batch, new_tokens, bandwidth, prompt_len) -> float:
    """Save the random fp16 model and reload it through the real 4-bit path (``from_pretrained``)."""
    import torch
    from transformers import AutoModelForImageTextToText

    from lmmclf.describe.backends.quantization import transformers_config

    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        del model
        torch.cuda.empty_cache()
        model = AutoModelForImageTextToText.from_pretrained(tmp, quantization_config=transformers_config("4bit", torch.float16),
                                                            dtype=torch.float16, device_map={"": 0})
    bound = bandwidth_bound(model, config, batch, prompt_len, new_tokens, bandwidth)
    seconds = time_generation(model, inputs, new_tokens)
    report("4-bit", seconds, batch, new_tokens, bound)
    return batch / seconds


# -- GPU: quantized modes on a 24 GB budget ---------------------------------------------------
RTX_3090_BANDWIDTH = 936e9
UCF101_IMAGES = 13_320
# (label, describe.quantize, static cache + torch.compile as describe --compile)
QUANTIZED_MODES = [("bitsandbytes 8-bit, eager", "8bit", False), ("bitsandbytes 4-bit, eager", "4bit", False),
                   ("torchao int8 + compile", "int8-torchao", True), ("torchao int4 + compile", "int4-torchao", True),
                   ("fp16 + compile (unquantized)", "none", True)]

# Qwen/Qwen2.5-VL-7B-Instruct's config.json (the architecture only; weights are random)
QWEN25_VL_7B_CONFIG: dict[str, Any] = {
    "image_token_id": 151655, "video_token_id": 151656, "vision_start_token_id": 151652, "vision_end_token_id": 151653,
    "vision_config": {"depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16, "out_hidden_size": 3584,
                      "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 112,
                      "fullatt_block_indexes": [7, 15, 23, 31], "in_chans": 3, "hidden_act": "silu"},
    "text_config": {"vocab_size": 152064, "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
                    "num_attention_heads": 28, "num_key_value_heads": 4, "max_position_embeddings": 128000, "rms_norm_eps": 1e-6,
                    "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]},
                    "bos_token_id": 151643, "eos_token_id": 151645, "tie_word_embeddings": False},
}
UCF101_FRAME = (320, 240)  # Qwen2.5-VL reads it at 336x224: 24x16 patches, 96 tokens after the 2x2 merge


def _qwen_inputs(config: dict[str, Any], batch: int, prompt_tokens: int, device: str, dtype) -> dict[str, Any]:
    """What Qwen2.5-VL's processor gives for ``batch`` UCF-101-sized frames: flattened patches, grid, ids."""
    import torch

    vision = config["vision_config"]
    grid_h, grid_w = 16, 24  # 224 / 14, 336 / 14
    tokens = grid_h * grid_w // vision["spatial_merge_size"] ** 2
    generator = torch.Generator().manual_seed(0)
    words = torch.randint(1000, 100000, (prompt_tokens,), generator=generator).tolist()
    row = [config["vision_start_token_id"], *[config["image_token_id"]] * tokens, config["vision_end_token_id"], *words]
    ids = torch.tensor([row] * batch, device=device)
    patch = 3 * vision["temporal_patch_size"] * vision["patch_size"] ** 2
    pixels = torch.randn(batch * grid_h * grid_w, patch, generator=generator).to(device=device, dtype=dtype)
    grid = torch.tensor([[1, grid_h, grid_w]] * batch, device=device)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "pixel_values": pixels, "image_grid_thw": grid}


def _save_random(arch: str, folder: Path, device: str) -> None:
    """The architecture with random fp16 weights, saved as a user's download would be."""
    import torch

    if arch == "tiny-llava":  # a smoke test of this path on any machine
        from lmmclf.testing.tiny_lmm import make_tiny_llava

        make_tiny_llava(folder)
        return
    if arch == "llava-1.5-13b":
        from lmmclf.testing.tiny_lmm import LLAVA_15_13B_CONFIG

        model = random_llava(LLAVA_15_13B_CONFIG, device, torch.float16)
    else:
        from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

        with torch.device(device):
            model = Qwen2_5_VLForConditionalGeneration._from_config(Qwen2_5_VLConfig(**QWEN25_VL_7B_CONFIG), dtype=torch.float16)
    model.save_pretrained(folder)
    del model
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def quantized_benchmark(arch: str, batch_size: int, new_tokens: int, bandwidth: float, cap_gib: float, device: str = "cuda",
                        modes: list[str] | None = None) -> dict[str, float]:
    """Images/s of each quantized mode at the largest batch that fits ``cap_gib`` of GPU memory."""
    import torch
    from transformers import AutoModelForImageTextToText

    from lmmclf.describe.backends import quantization

    cuda = device.startswith("cuda")
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / arch
        _save_random(arch, folder, device)
        saved = json.loads((folder / "config.json").read_text())
        if arch == "qwen2.5-vl-7b":
            make_inputs = lambda n, dtype: _qwen_inputs(QWEN25_VL_7B_CONFIG, n, 24, device, dtype)  # noqa: E731
        else:  # LLaVA: the saved config has the image token and sizes
            make_inputs = lambda n, dtype: synthetic_inputs(saved, n, 24, device, dtype)  # noqa: E731
        if cuda:  # from here on, only what fits a 24 GB card may run
            total = torch.cuda.get_device_properties(0).total_memory
            torch.cuda.set_per_process_memory_fraction(min(1.0, cap_gib * (1 << 30) / total))
        print(f"{arch}, random weights, {device}, memory capped at {cap_gib:g} GiB, {new_tokens} new tokens per image, "
              f"bandwidth {bandwidth:.3g} B/s")
        for label, mode, compiled in QUANTIZED_MODES:
            if modes and mode not in modes:
                continue
            dtype = quantization.compute_dtype(mode, "auto", torch.float16 if cuda else torch.float32)
            try:
                config = quantization.transformers_config(mode, dtype)
            except Exception as exc:  # noqa: BLE001 - a library that is not installed skips that mode, said once
                print(f"  {label}: skipped ({exc})")
                continue
            kwargs = {"dtype": dtype, "device_map": {"": 0} if cuda else None}
            try:
                model = AutoModelForImageTextToText.from_pretrained(folder, quantization_config=config, **kwargs).eval()
            except torch.OutOfMemoryError:
                print(f"  {label}: the weights do not fit in {cap_gib:g} GiB")
                torch.cuda.empty_cache()
                continue
            weights = torch.cuda.memory_allocated() / 1e9 if cuda else float("nan")
            rate, batch = _largest_batch_rate(model, lambda n: make_inputs(n, dtype), batch_size, new_tokens, compiled and cuda)
            del model
            if cuda:
                torch.cuda.empty_cache()
            if rate is None:
                print(f"  {label}: weights {weights:.1f} GB; not even batch 1 fits in {cap_gib:g} GiB")
                continue
            results[mode] = rate
            print(f"  {label:32s}: {rate:6.2f} images/s at batch {batch:<3} ({rate * new_tokens:6.0f} tokens/s; weights "
                  f"{weights:.1f} GB); RTX 3090 estimate {rate * RTX_3090_BANDWIDTH / bandwidth:5.2f} images/s, UCF-101 "
                  f"{UCF101_IMAGES / (rate * RTX_3090_BANDWIDTH / bandwidth) / 3600:5.1f} h")
    if "8bit" in results:
        for mode, rate in results.items():
            print(f"  {mode}: {rate / results['8bit']:.1f}x bitsandbytes 8-bit eager")
    return results


def _largest_batch_rate(model, make_inputs, batch: int, new_tokens: int, compiled: bool):
    """(images/s, batch) at the largest batch from ``batch`` down (halving) that runs without running out of memory."""
    import torch

    while batch >= 1:
        inputs = None
        try:
            inputs = make_inputs(batch)
            seconds = time_generation(model, inputs, new_tokens, static_cache=compiled)
            return batch / seconds, batch
        except torch.OutOfMemoryError:
            del inputs
            torch.cuda.empty_cache()
            torch._dynamo.reset()  # graphs compiled for the failed shape hold memory
            batch //= 2
    return None, 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64, help="CPU mode: images described by each path")
    parser.add_argument("--batch-size", type=int, default=None, help="default 16; --quantized --full-size: the largest tried (48)")
    parser.add_argument("--tokens", type=int, default=None, help="generated tokens per image (CPU default 32, GPU 300)")
    parser.add_argument("--threads", type=int, default=1, help="CPU mode: torch threads (1: stable on a shared machine)")
    parser.add_argument("--full-size", action="store_true", help="GPU: the full LLaVA-1.5-13B configuration, random weights")
    parser.add_argument("--bandwidth", type=float, default=3.35e12, help="GPU memory bandwidth in B/s (H100 SXM: 3.35e12)")
    parser.add_argument("--static-cache", action="store_true", help="GPU: also time fp16 with a static cache + torch.compile (describe --compile)")
    parser.add_argument("--no-4bit", action="store_true", help="GPU: skip the 4-bit run")
    parser.add_argument("--quantized", action="store_true", help="quantized modes: torchao int8 vs fp32 on the CPU; with --full-size, "
                        "bitsandbytes and torchao on a memory-capped GPU")
    parser.add_argument("--arch", choices=("llava-1.5-13b", "qwen2.5-vl-7b", "tiny-llava"), default="llava-1.5-13b", help="--quantized --full-size: the architecture")
    parser.add_argument("--memory-cap-gib", type=float, default=24.0, help="--quantized --full-size: GPU memory allowed (24: an RTX 3090)")
    parser.add_argument("--device", default="cuda", help="--quantized --full-size: cuda (cpu: a smoke test with --arch tiny-llava)")
    parser.add_argument("--modes", default="", help="--quantized --full-size: comma-separated describe.quantize modes (default: all)")
    args = parser.parse_args()
    if args.quantized and args.full_size:
        quantized_benchmark(args.arch, args.batch_size or 48, args.tokens or 300, args.bandwidth, args.memory_cap_gib, args.device,
                            modes=[m for m in args.modes.split(",") if m] or None)
    elif args.quantized:
        cpu_quantized_benchmark(args.images, args.batch_size or 16, args.tokens or 32, args.threads)
    elif args.full_size:
        from lmmclf.testing.tiny_lmm import LLAVA_15_13B_CONFIG

        full_size_benchmark(LLAVA_15_13B_CONFIG, args.batch_size or 16, args.tokens or 300, args.bandwidth,
                            four_bit=False if args.no_4bit else None, static_cache=args.static_cache)
    else:
        cpu_benchmark(args.images, args.batch_size or 16, args.tokens or 32, args.threads)


if __name__ == "__main__":
    main()
