"""A tiny, randomly initialised open_clip CLIP saved as a ``local-dir:`` folder, for tests and demos.

The architecture is the real one (open_clip's ``CLIP`` with a ViT image tower and a causal text
transformer), only narrow: the folder is loaded by ``open_clip.create_model_and_transforms
("local-dir:...")`` exactly like a user's model, and its tokenizer is open_clip's bundled BPE
``SimpleTokenizer`` (vocabulary 49,408), so nothing is downloaded.

The default vision tower has 12 blocks, like ViT-B and ViT-L's depth scale, because the
fine-tuning stage unlocks trailing blocks and its tests and benchmark need a realistic count.
"""

from __future__ import annotations

import json
from pathlib import Path

# OpenAI CLIP's normalisation constants (what every openai-tagged model uses).
_OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
_OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def tiny_clip_config(
    layers: int = 12,
    width: int = 64,
    patch_size: int = 8,
    image_size: int = 32,
    embed_dim: int = 32,
    text_width: int = 32,
    text_layers: int = 2,
    context_length: int = 77,
    quick_gelu: bool = True,
) -> dict:
    """The ``open_clip_config.json`` content of a tiny CLIP.

    Args:
        layers: vision transformer blocks.
        width: vision transformer width (heads of width 32).
        patch_size: ViT patch size.
        image_size: input resolution.
        embed_dim: joint embedding dimension.
        text_width: text transformer width (heads of width 16).
        text_layers: text transformer blocks.
        context_length: tokens per text (77 like every CLIP, so truncation behaves the same).
        quick_gelu: QuickGELU activations, as in OpenAI's weights.
    """
    model_cfg = {
        "embed_dim": embed_dim,
        "quick_gelu": quick_gelu,
        "vision_cfg": {"image_size": image_size, "layers": layers, "width": width, "patch_size": patch_size, "head_width": 32},
        "text_cfg": {"context_length": context_length, "vocab_size": 49408, "width": text_width, "heads": max(1, text_width // 16), "layers": text_layers},
    }
    preprocess_cfg = {"mean": list(_OPENAI_MEAN), "std": list(_OPENAI_STD), "interpolation": "bicubic", "resize_mode": "shortest"}
    return {"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg}


def make_tiny_clip(directory: str | Path, seed: int = 0, **config) -> str:
    """Write a tiny random CLIP to ``directory`` and return its open_clip name ``"local-dir:<abs path>"``.

    Args:
        directory: the folder to create (``open_clip_config.json`` + ``open_clip_model.safetensors``).
        seed: torch seed of the random initialisation (same seed, same weights, same cache key).
        **config: overrides of :func:`tiny_clip_config` (layers, width, image_size, ...).
    """
    import torch
    from open_clip.model import CLIP
    from safetensors.torch import save_file

    folder = Path(directory).expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    full = tiny_clip_config(**config)
    model_cfg = dict(full["model_cfg"])
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = CLIP(
            embed_dim=model_cfg["embed_dim"],
            vision_cfg=model_cfg["vision_cfg"],
            text_cfg=model_cfg["text_cfg"],
            quick_gelu=model_cfg["quick_gelu"],
        )
    finally:
        torch.random.set_rng_state(generator_state)
    state = {name: tensor.detach().contiguous().clone() for name, tensor in model.state_dict().items()}
    save_file(state, str(folder / "open_clip_model.safetensors"))
    (folder / "open_clip_config.json").write_text(json.dumps(full, indent=2))
    return f"local-dir:{folder}"
