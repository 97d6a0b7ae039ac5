"""Teach a tiny random LMM to answer in a numbered list, so that describe has something to parse.

A randomly initialised LMM writes token soup with no list and no end token, which describe
keeps as cut text (tests/test_untaught_pipeline.py runs the pipeline on exactly that). The demo
and most end-to-end tests want answers in the papers' shape, a numbered list that differs
between images and says something about them, so a few seconds of teacher-forced training on the model's own chat format make it answer
"1. a red photo\\n2. green red\\n3. a green field</s>", the words following the image's dominant colour.
The model stays the real architecture, saved and loaded through the real loaders.
"""

from __future__ import annotations

from pathlib import Path

# the words a tiny tokenizer knows (lmmclf.testing.tiny_lmm._WORDS), one per colour channel
_COLOUR_WORDS = ("red", "green", "blue")
_PROMPTS = (
    "Give 10 semantic descriptions of the image",
    "Give 10 semantic descriptions for the image",
    "Give 3 semantic descriptions of the image",
)


def answer_for(pixels) -> str:
    """The list a taught model should write for an (H, W, 3) image: words from its dominant colour."""
    import numpy as np

    means = np.asarray(pixels, dtype=np.float32).reshape(-1, 3).mean(axis=0)
    first, second = (_COLOUR_WORDS[i] for i in np.argsort(-means)[:2])
    return f"1. a {first} photo\n2. {second} {first}\n3. a {second} field"


def _images(count: int, seed: int):
    import numpy as np

    rng = np.random.default_rng(seed)
    images = []
    for index in range(count):
        colour = np.zeros(3, dtype=np.float32)
        colour[index % 3] = 200 + rng.uniform(0, 55)
        colour[(index + 1 + index // 3) % 3] += rng.uniform(0, 120)
        size = (int(rng.integers(24, 72)), int(rng.integers(24, 72)))
        noise = rng.normal(0, 12, (size[1], size[0], 3))
        images.append(np.clip(colour + noise, 0, 255).astype(np.uint8))
    return images


def teach_numbered_lists(directory: str | Path, steps: int = 60, lr: float = 5e-3, seed: int = 0) -> Path:
    """Fine-tune the tiny LMM saved in ``directory`` to answer each prompt with a short list, and save it back.

    Args:
        directory: a folder written by a tiny-LMM builder (model, processor, chat template).
        steps: optimizer steps (each one batch of every training image).
        lr: Adam learning rate.
        seed: seed for the images and the training order.
    """
    import torch
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from lmmclf.describe.backends.hf_inputs import processor_kwargs, prompt_text

    directory = Path(directory)
    torch.manual_seed(seed)
    processor = AutoProcessor.from_pretrained(directory)
    model = AutoModelForImageTextToText.from_pretrained(directory)
    tokenizer = processor.tokenizer
    eos = tokenizer.eos_token or ""
    samples = []
    for index, pixels in enumerate(_images(12, seed)):
        prompt = prompt_text(processor, _PROMPTS[index % len(_PROMPTS)])
        full = prompt + answer_for(pixels) + eos
        image = Image.fromarray(pixels)
        encoded = processor(images=image, text=full, return_tensors="pt", **processor_kwargs(processor, full))
        prompt_length = processor(images=image, text=prompt, return_tensors="pt", **processor_kwargs(processor, prompt))["input_ids"].shape[1]
        labels = encoded["input_ids"].clone()
        labels[:, :prompt_length] = -100  # learn the answer only
        samples.append((encoded, labels))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for step in range(steps):
        optimizer.zero_grad()
        loss = sum(model(**encoded, labels=labels).loss for encoded, labels in samples) / len(samples)
        loss.backward()
        optimizer.step()
    model.eval()
    model.save_pretrained(directory)
    return directory
