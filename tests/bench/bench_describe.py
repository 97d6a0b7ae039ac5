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
"""

from __future__ import annotations

import argparse
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
    from transformers import AutoModelForImageTextToText, BitsAndBytesConfig

    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        del model
        torch.cuda.empty_cache()
        quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float16)
        model = AutoModelForImageTextToText.from_pretrained(tmp, quantization_config=quantization, dtype=torch.float16,
                                                            device_map={"": 0})
    bound = bandwidth_bound(model, config, batch, prompt_len, new_tokens, bandwidth)
    seconds = time_generation(model, inputs, new_tokens)
    report("4-bit", seconds, batch, new_tokens, bound)
    return batch / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64, help="CPU mode: images described by each path")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=None, help="generated tokens per image (CPU default 32, GPU 300)")
    parser.add_argument("--threads", type=int, default=1, help="CPU mode: torch threads (1: stable on a shared machine)")
    parser.add_argument("--full-size", action="store_true", help="GPU: the full LLaVA-1.5-13B configuration, random weights")
    parser.add_argument("--bandwidth", type=float, default=3.35e12, help="GPU memory bandwidth in B/s (H100 SXM: 3.35e12)")
    parser.add_argument("--static-cache", action="store_true", help="GPU: also time fp16 with a static cache + torch.compile (describe --compile)")
    parser.add_argument("--no-4bit", action="store_true", help="GPU: skip the 4-bit run")
    args = parser.parse_args()
    if args.full_size:
        from lmmclf.testing.tiny_lmm import LLAVA_15_13B_CONFIG

        full_size_benchmark(LLAVA_15_13B_CONFIG, args.batch_size, args.tokens or 300, args.bandwidth,
                            four_bit=False if args.no_4bit else None, static_cache=args.static_cache)
    else:
        cpu_benchmark(args.images, args.batch_size, args.tokens or 32, args.threads)


if __name__ == "__main__":
    main()
