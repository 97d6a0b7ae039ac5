"""The hf backend across LMM families: tiny random models of the real architectures, mixed-size images.

Fast: one family per batching mechanism (tiling, encoder-decoder, dynamic resolution,
cross-attention, BOS in template); the rest run under ``-m slow`` (docs/describe.md, "Model families").
"""

from __future__ import annotations

import pytest

from lmmclf.config import ExperimentConfig
from lmmclf.describe.backends.base import Job
from lmmclf.testing.images import write_image
from lmmclf.testing.tiny_families import FAMILIES
from lmmclf.testing.tiny_lmm import make_tiny_instructblip, make_tiny_llava

PROMPT = "Give 10 semantic descriptions of the image"
NEW_TOKENS = 6
SIZES = [(40, 30), (120, 40), (64, 64), (30, 90)]  # width x height: tiling gives 1 to 4 crops

BUILDERS = {name: builder for name, (builder, _, _) in FAMILIES.items()}
BUILDERS.update({"llava-1.5": make_tiny_llava, "instructblip-vicuna": make_tiny_instructblip})
CASES = [pytest.param(name, id=name, marks=() if fast else pytest.mark.slow) for name, (_, _, fast) in FAMILIES.items()] + [
    pytest.param(name, id=name, marks=pytest.mark.slow) for name in ("llava-1.5", "instructblip-vicuna")
]


@pytest.fixture(scope="module")
def jobs(tmp_path_factory):
    import numpy as np

    root = tmp_path_factory.mktemp("mixed-sizes")
    rng = np.random.default_rng(1)
    out = []
    for i, (width, height) in enumerate(SIZES):
        path = root / f"img{i}.png"
        write_image(path, rng.integers(0, 255, (height, width, 3), dtype=np.uint8))
        out.append(Job(path.name, path))
    return out


@pytest.fixture(scope="module")
def backends(tmp_path_factory):
    """One loaded backend per family, built on first use."""
    from lmmclf.describe.backends.hf import HFBackend

    root = tmp_path_factory.mktemp("families")
    cache = {}

    def get(name):
        if name not in cache:
            folder = BUILDERS[name](root / name)
            section = ExperimentConfig().override("describe", model=str(folder), max_new_tokens=NEW_TOKENS, batch_size=4,
                                                  quantize="none", device="cpu").describe
            cache[name] = HFBackend(section, PROMPT)
        return cache[name]

    return get


@pytest.mark.parametrize("family", CASES)
def test_batch_of_mixed_sizes_equals_one_at_a_time(backends, jobs, family):
    """Tiling processors crashed here (crop counts differ); encoder-decoders lost their first tokens."""
    backend = backends(family)
    batched = backend.describe_batch(jobs)
    alone = [backend.describe_batch([job])[0] for job in jobs]
    assert all(answer.ok for answer in batched), [answer.error for answer in batched]
    assert [(a.text, a.generated_tokens) for a in batched] == [(a.text, a.generated_tokens) for a in alone]
    # the fixture sees the image: a batch that swapped rows could not pass
    assert len({answer.text for answer in batched}) > 1
    for answer in batched:  # every generated token is kept (encoder-decoders return only new tokens)
        assert answer.generated_tokens <= NEW_TOKENS
    rows = backend._generate_rows([backend._encode(job) for job in jobs])
    assert all(cut == (count == NEW_TOKENS) for _, count, cut in rows)  # truncated: no end token within the budget


@pytest.mark.parametrize("family", CASES)
def test_input_ids_equal_the_processors_reference_path(backends, jobs, family):
    """The ids are those of ``processor.apply_chat_template(..., tokenize=True)``: no second BOS."""
    from PIL import Image

    backend = backends(family)
    processor = backend.processor
    ours = backend._encode(jobs[1])["input_ids"]
    with Image.open(jobs[1].path) as image:
        rgb = image.convert("RGB")
    if getattr(processor, "chat_template", None):
        conversation = [{"role": "user", "content": [{"type": "image", "image": rgb}, {"type": "text", "text": PROMPT}]}]
        reference = processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=True, return_dict=True,
                                                  return_tensors="pt")["input_ids"]
    else:
        reference = processor(images=[rgb], text=[PROMPT], return_tensors="pt")["input_ids"]
    assert ours.tolist() == reference.tolist()
    bos = processor.tokenizer.bos_token_id
    if bos is not None:
        assert ours[0].tolist().count(bos) <= 1


def test_encoder_decoder_keeps_every_generated_token(backends, jobs):
    """BLIP-2 Flan-T5: all ``max_new_tokens`` tokens are in the answer (the prompt length was cut off it)."""
    backend = backends("blip2-flan-t5")
    assert backend.encoder_decoder
    answer = backend.describe_batch(jobs[:1])[0]
    assert answer.ok and answer.generated_tokens == NEW_TOKENS
    ids = backend.processor.tokenizer(answer.text, add_special_tokens=False)["input_ids"]
    assert len(ids) >= NEW_TOKENS // 2  # byte-level tokens re-merge, but nothing like a prompt's length is lost


def test_image_tokens_are_counted_from_the_processor(backends):
    """A tiling processor gives a large photo several crops: far more than the config's guess."""
    from lmmclf.describe.backends import hf_inputs
    from lmmclf.describe.backends.hf import _image_tokens

    backend = backends("llava-next")
    config_guess = _image_tokens(backend.model.config)
    counted = hf_inputs.image_tokens(backend.processor, backend.text)
    assert counted > 3 * config_guess
    small = hf_inputs.image_tokens(backends("qwen2-vl").processor, backends("qwen2-vl").text, size=(40, 30))
    large = hf_inputs.image_tokens(backends("qwen2-vl").processor, backends("qwen2-vl").text)
    assert large > small  # dynamic resolution: tokens follow the image's size
    # Idefics3's config has no token count at all (the guess is a fallback); the 4:3 probe becomes
    # 4x3 crops of 32 px plus the global image, image_seq_len tokens each, all of them counted
    idefics3 = backends("idefics3")
    text_only = len(idefics3.processor.tokenizer(idefics3.text, add_special_tokens=False)["input_ids"])
    assert hf_inputs.image_tokens(idefics3.processor, idefics3.text) - text_only >= 13 * idefics3.processor.image_seq_len


def test_collate_pads_crops_and_sequence_axes():
    import torch

    from lmmclf.describe.backends import hf_inputs

    class Processor:
        class tokenizer:  # noqa: N801 - a stand-in for the processor's attribute
            pad_token_id = 9

    one = {"input_ids": torch.tensor([[1, 2, 3]]), "pixel_values": torch.ones(1, 2, 3, 4, 4),
           "cross_attention_mask": torch.ones(1, 3, 1, 2, dtype=torch.long)}
    two = {"input_ids": torch.tensor([[5]]), "pixel_values": torch.ones(1, 5, 3, 4, 4),
           "cross_attention_mask": torch.ones(1, 1, 1, 2, dtype=torch.long)}
    batch = hf_inputs.collate(Processor, [one, two], pad_id=0)
    assert batch["input_ids"].tolist() == [[1, 2, 3], [9, 9, 5]]
    assert batch["pixel_values"].shape == (2, 5, 3, 4, 4) and batch["pixel_values"][0, 2:].abs().sum() == 0
    assert batch["cross_attention_mask"][1, :, 0, 0].tolist() == [0, 0, 1]


def test_paligemma_does_not_warn_per_image(backends, jobs):
    """PaliGemma's processor warns on every image whose prompt lacks ``<image>`` (thousands of lines); describe's prompt has it.

    What transformers says and how it words it is its own; the contract is that describing a batch and each image
    alone repeats no log record of the libraries.
    """
    import logging
    from collections import Counter

    from transformers.utils import logging as hf_logging

    backend = backends("paligemma")
    assert backend.text == backend.processor.image_token + PROMPT
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_warning()
    hf_logging.get_logger("transformers").addHandler(handler)
    try:
        hf_logging.get_logger("transformers.lmmclf_probe").warning("the capture works")
        assert [record.getMessage() for record in records] == ["the capture works"]
        answers = backend.describe_batch(jobs) + [backend.describe_batch([job])[0] for job in jobs]
    finally:
        hf_logging.get_logger("transformers").removeHandler(handler)
        hf_logging.set_verbosity(verbosity)
    assert all(answer.ok for answer in answers)
    ours = [record.getMessage() for record in records[1:]]
    assert all(count == 1 for count in Counter(ours).values())  # whatever transformers says, it says it once, not per image


def test_command_line_batch_of_mixed_sizes_equals_one_at_a_time(tmp_path, isolated_user_dirs, runner):
    """Through `lmmclf describe` as a user runs it: a tiling family, a folder of mixed sizes, batch 4 then batch 1."""
    import json

    import h5py
    import numpy as np

    from lmmclf.cli.app import app
    from lmmclf.datasets import register

    rng = np.random.default_rng(5)
    for split in ("train", "test"):
        for label in ("a", "b"):
            for i, (width, height) in enumerate([*SIZES, (320, 240)]):  # + a UCF-101 frame's size
                path = tmp_path / "data" / split / label / f"{label}{i}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                write_image(path, rng.integers(0, 255, (height, width, 3), dtype=np.uint8))
    register("mixed", tmp_path / "data", "imagefolder")
    model = BUILDERS["idefics3"](tmp_path / "idefics3")
    raws = []
    for batch in ("4", "1"):
        result = runner.invoke(app, ["describe", "mixed", "--model", str(model), "--device", "cpu", "--quantize", "none",
                                     "--max-new-tokens", str(NEW_TOKENS), "--batch-size", batch, "--split", "train", "--json",
                                     "--force"])
        summary = json.loads(result.stdout)  # every answer is token soup: failures, still recorded with their raw text
        with h5py.File(summary["artifact"], "r") as handle:
            raws.append(list(handle["raw"][...]))
    assert raws[0] == raws[1] and len(raws[0]) == 10 and len(set(raws[0])) > 1
