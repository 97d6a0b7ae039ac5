"""Inputs of the ``hf`` backend built exactly as each model family's processor builds them.

Three things differ between families and each broke batching once (docs/describe.md, "Model
families"):

- the prompt's special tokens: chat templates of Gemma 3, Idefics3 and Mllama already hold the
  BOS, and tokenizing the rendered text again adds a second one. :func:`processor_kwargs` passes
  ``add_special_tokens=False`` in that case, the rule of transformers' own
  ``processor.apply_chat_template(..., tokenize=True)`` (tests compare the ids with it);
- the image axis: tiling processors (LLaVA-NeXT, OneVision, Idefics3, SmolVLM) give each image
  its own number of crops, so per-image tensors differ in shape. :func:`collate` zero-pads every
  non-batch axis to the batch's largest; those models drop all-zero crops (Idefics3) or slice
  each image's crops by its ``image_sizes`` (LLaVA-NeXT), so a padded batch equals single runs.
  InternVL's ``pixel_values`` are flat (crop, ...), every image's crops in a row: concatenating
  along the first axis, as for any tensor, is already its batch layout;
- sequence-aligned tensors (ids, masks, Mllama's ``cross_attention_mask``) are padded on the
  LEFT, the side batched generation needs (LLaVA #1149, #1305); the Q-Former's BERT ids on the right.
"""

from __future__ import annotations

from typing import Any

# key -> (side, pad value: an int, or the processor attribute whose pad_token_id to use);
# the padded axis is 1 (the sequence axis of a (batch, sequence, ...) tensor).
SEQUENCE_PADDING: dict[str, tuple[str, Any]] = {
    "input_ids": ("left", "tokenizer"),
    "attention_mask": ("left", 0),
    "token_type_ids": ("left", 0),
    "mm_token_type_ids": ("left", 0),
    "cross_attention_mask": ("left", 0),  # Mllama: (batch, sequence, images, tiles)
    "qformer_input_ids": ("right", "qformer_tokenizer"),  # BERT positions: pad after the text
    "qformer_attention_mask": ("right", 0),
}

# Processors that warn on every call unless the prompt holds their image token (PaliGemma adds
# it itself otherwise, with the same ids, after a warning per image: thousands of log lines).
_IMAGE_TOKEN_FIRST = ("PaliGemmaProcessor",)

# A large, common photo size: tiling and dynamic-resolution processors give it as many image
# tokens as a real dataset's largest images, so the batch size is not sized for tiny inputs.
PROBE_SIZE = (1024, 768)


def prompt_text(processor: Any, prompt: str) -> str:
    """The processor's chat template around one image and the prompt; else the bare prompt.

    Args:
        processor: the model's processor.
        prompt: the describe prompt.
    """
    if getattr(processor, "chat_template", None):
        conversation = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
        return processor.apply_chat_template(conversation, add_generation_prompt=True)
    if type(processor).__name__ in _IMAGE_TOKEN_FIRST and processor.image_token not in prompt:
        return processor.image_token + prompt
    return prompt


def processor_kwargs(processor: Any, text: str) -> dict[str, Any]:
    """Tokenizer options for ``processor(text=...)``: no second BOS when the text starts with one.

    Args:
        processor: the model's processor.
        text: the rendered prompt.
    """
    bos = getattr(processor.tokenizer, "bos_token", None)
    return {"add_special_tokens": False} if bos and text.startswith(bos) else {}


def encode(processor: Any, image: Any, text: str) -> dict[str, Any]:
    """One image and its prompt through the processor, as tensors of a batch of one.

    Args:
        processor: the model's processor.
        image: a PIL RGB image.
        text: the rendered prompt (:func:`prompt_text`).
    """
    return dict(processor(images=[image], text=[text], return_tensors="pt", **processor_kwargs(processor, text)))


def image_tokens(processor: Any, text: str, size: tuple[int, int] = PROBE_SIZE) -> int:
    """Tokens the language model reads for one ``size`` image and the prompt, from the processor.

    Config fields (``image_seq_length``) guess wrong for tiling and dynamic-resolution models
    (16 for LLaVA-NeXT, where a 336 px tile grid gives thousands): this encodes a gray image.

    Args:
        processor: the model's processor.
        text: the rendered prompt.
        size: (width, height) of the probe image.
    """
    from PIL import Image

    return int(encode(processor, Image.new("RGB", size, (128, 128, 128)), text)["input_ids"].shape[-1])


def _pad_to(tensor, shape: tuple[int, ...], value, left_axis: int | None):
    """``tensor`` padded with ``value`` to ``shape``: at the start of ``left_axis``, at the end elsewhere."""
    import torch.nn.functional as F

    pads: list[int] = []
    for axis in reversed(range(1, tensor.dim())):  # F.pad lists the last axis first
        missing = shape[axis] - tensor.shape[axis]
        pads += [missing, 0] if axis == left_axis else [0, missing]
    return F.pad(tensor, pads, value=value) if any(pads) else tensor


def collate(processor: Any, encodings: list[dict[str, Any]], pad_id: int) -> dict[str, Any]:
    """One batch from per-image encodings (see the module docstring for the padding rules).

    Args:
        processor: the model's processor (pad ids of its tokenizers).
        encodings: :func:`encode` outputs.
        pad_id: the language model's pad id when its tokenizer has none.
    """
    import torch

    batch: dict[str, Any] = {}
    for key in encodings[0]:
        tensors = [e[key] for e in encodings]
        if not isinstance(tensors[0], torch.Tensor):
            batch[key] = [item for value in tensors for item in value]
            continue
        side, value, left_axis = "end", 0, None
        if key in SEQUENCE_PADDING:
            side, value = SEQUENCE_PADDING[key]
            if isinstance(value, str):
                value = getattr(processor, value).pad_token_id
                value = pad_id if value is None and key == "input_ids" else value
            left_axis = 1 if side == "left" else None
        dims = {t.dim() for t in tensors}
        if len(dims) != 1:
            raise ValueError(f"cannot batch '{key}': per-image tensors of {sorted(dims)} dimensions")
        shape = tuple(max(t.shape[axis] for t in tensors) for axis in range(tensors[0].dim()))
        batch[key] = torch.cat([_pad_to(t, shape, value, left_axis) for t in tensors])
    return batch
