"""The hf backend on tiny random LLaVA and InstructBLIP models loaded through the real loaders."""

from __future__ import annotations

import pytest

from lmmclf.config import ExperimentConfig
from lmmclf.describe.backends.base import Job
from lmmclf.errors import LmmclfError
from lmmclf.testing.images import write_image
from lmmclf.testing.tiny_lmm import LLAVA_15_13B_CONFIG, make_tiny_instructblip, make_tiny_llava

GiB = 1 << 30


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-lmms")
    return {"llava": make_tiny_llava(root / "llava"), "instructblip": make_tiny_instructblip(root / "instructblip")}


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    import numpy as np

    root = tmp_path_factory.mktemp("pictures")
    rng = np.random.default_rng(0)
    paths = []
    for i, size in enumerate([(32, 32), (40, 24), (64, 64), (20, 36), (32, 48)]):
        path = root / f"img{i}.png"
        write_image(path, rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
        paths.append(path)
    return paths


def _backend(model_dir, **overrides):
    from lmmclf.describe.backends.hf import HFBackend

    values = {**dict(model=str(model_dir), max_new_tokens=8, batch_size=4, quantize="none", device="cpu"), **overrides}
    section = ExperimentConfig().override("describe", **values).describe
    return HFBackend(section, "Give 10 semantic descriptions of the image")


@pytest.mark.parametrize("kind", ["llava", "instructblip"])
def test_batched_equals_one_at_a_time_with_left_padding(models, pictures, kind):
    """Prompts of different lengths force padding; every row must match its solo run (greedy)."""
    backend = _backend(models[kind])
    texts = [backend.text, backend.text + " a dog", backend.text + " 1. a 2. b 3. c", backend.text, backend.text + " red"]
    encodings = []
    for path, text in zip(pictures, texts):
        backend.text = text
        encodings.append(backend._encode(Job(path.name, path)))
    lengths = {e["input_ids"].shape[-1] for e in encodings}
    assert len(lengths) > 1, "the test needs rows of different lengths"
    batched = backend._generate(encodings)
    alone = [backend._generate([e])[0] for e in encodings]
    assert batched == alone
    assert all(count == 8 for _, count in batched) or any(text for text, _ in batched)


@pytest.mark.parametrize("kind", ["llava", "instructblip"])
def test_describe_batch_matches_single_calls_and_records_unreadable_images(models, pictures, tmp_path, kind):
    backend = _backend(models[kind])
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png at all")
    jobs = [Job(p.name, p) for p in pictures[:3]] + [Job("broken", broken)]
    answers = backend.describe_batch(jobs)
    assert [a.id for a in answers] == [j.id for j in jobs]
    assert not answers[3].ok and "unreadable image" in answers[3].error
    for job, answer in zip(jobs[:3], answers[:3]):
        solo = backend.describe_batch([job])[0]
        assert answer.ok and (answer.text, answer.generated_tokens) == (solo.text, solo.generated_tokens)


def test_generated_tokens_count_stops_at_eos(models, pictures):
    backend = _backend(models["llava"])
    encoding = backend._encode(Job("x", pictures[0]))
    import torch

    batch = backend._collate([encoding])
    with torch.inference_mode():
        out = backend.model.generate(**batch, **backend.generate_kwargs)
    row = out[0, batch["input_ids"].shape[1]:].tolist()
    assert len(row) == 8
    stop = row[2]  # pretend the third generated token is end-of-sequence
    backend.eos_ids = {stop}
    backend.generate_kwargs["eos_token_id"] = stop
    _, count = backend._generate([encoding])[0]
    assert count == row.index(stop) + 1


def test_greedy_has_no_sampling_arguments_and_sample_has_them(models):
    greedy = _backend(models["llava"]).generate_kwargs
    assert greedy["do_sample"] is False and greedy["repetition_penalty"] == 1.05 and greedy["temperature"] is None
    sampled = _backend(models["llava"], sample=True, temperature=0.7, top_p=0.8).generate_kwargs
    assert sampled["do_sample"] is True and sampled["temperature"] == 0.7 and sampled["top_p"] == 0.8


def test_chat_template_is_used_when_the_processor_has_one(models):
    assert _backend(models["llava"]).text == "USER: <image>\nGive 10 semantic descriptions of the image ASSISTANT:"
    assert _backend(models["instructblip"]).text == "Give 10 semantic descriptions of the image"


def test_quantization_choice_from_free_memory():
    from lmmclf.describe.backends.quantization import choose_quantization

    params = 13_350_000_000  # LLaVA-1.5-13B
    assert choose_quantization(params, 80 * GiB) == "none"
    # an RTX 3090/4090: fp16 (27 GB) does not fit; torchao's schemes compile, bitsandbytes' do not
    assert choose_quantization(params, 24 * GiB, torchao=True) == "int8-torchao"
    assert choose_quantization(params, 24 * GiB, torchao=False) == "8bit"
    assert choose_quantization(params, 12 * GiB, torchao=True) == "int4-torchao"
    assert choose_quantization(params, 12 * GiB, torchao=False) == "4bit"
    with pytest.raises(LmmclfError, match="does not fit"):
        choose_quantization(params, 6 * GiB)


def test_auto_batch_size_for_llava_13b():
    from transformers import LlamaConfig

    from lmmclf.describe.backends.hf import MAX_AUTO_BATCH, auto_batch_size

    text = LlamaConfig(**{k: v for k, v in LLAVA_15_13B_CONFIG["text_config"].items() if k != "model_type"})
    small = auto_batch_size(text, 576, 300, 8 * GiB, 2)
    large = auto_batch_size(text, 576, 300, 50 * GiB, 2)
    assert 1 <= small < large <= MAX_AUTO_BATCH
    assert auto_batch_size(text, 576, 300, 0, 2) == 1


def test_quantization_needs_a_gpu_and_bitsandbytes(models):
    import importlib.util

    from lmmclf.describe.backends.quantization import transformers_config

    with pytest.raises(LmmclfError, match="CUDA GPU"):
        _backend(models["llava"], quantize="4bit")
    if importlib.util.find_spec("bitsandbytes") is None:
        with pytest.raises(LmmclfError, match="pip install bitsandbytes"):
            transformers_config("8bit", None)


def test_compiled_decoding_needs_a_gpu(models):
    with pytest.raises(LmmclfError, match="needs a CUDA device"):
        _backend(models["llava"], compile=True)


def test_missing_model_is_one_clear_error(tmp_path):
    with pytest.raises(LmmclfError, match="Cannot load describe.model"):
        _backend(tmp_path / "no-such-model")


def test_full_size_benchmark_path_runs_on_cpu_with_a_shrunken_config(capsys):
    """The GPU benchmark's model construction, inputs, timing and bound, on a shrunken LLaVA-1.5-13B config."""
    import copy
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parent / "bench" / "bench_describe.py"
    spec = importlib.util.spec_from_file_location("bench_describe", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    config = copy.deepcopy(LLAVA_15_13B_CONFIG)
    config["vision_config"].update(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                   image_size=28, patch_size=14)
    config["text_config"].update(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                                 num_key_value_heads=4, vocab_size=32064)
    config["image_seq_length"] = 4
    results = bench.full_size_benchmark(config, batch=2, new_tokens=4, bandwidth=1e11, device="cpu", four_bit=False)
    assert results["fp16_images_per_s"] > 0
    assert "weights-only bound" in capsys.readouterr().out
