"""Tiny random LMMs of the tiling families: each image becomes its own number of crops.

LLaVA-OneVision, Idefics3, SmolVLM and InternVL, built like ``tiny_families`` (the layout a user
downloads, real architecture and processor classes). ``TILING_FAMILIES`` joins ``FAMILIES``.

Tiles are 32 px, so the test images (40x30, 120x40, 64x64, 30x90) get different crop counts and
a batch has to pad (or, for InternVL, concatenate) the crop axis. Where the crops go differs:

- LLaVA-OneVision: ``pixel_values`` (image, crop, ...) zero-padded; the model slices each image's
  crops by ``image_sizes`` (as LLaVA-NeXT);
- Idefics3 / SmolVLM: ``pixel_values`` and ``pixel_attention_mask`` (image, crop, ...)
  zero-padded; the model drops all-zero crops. The chat template starts with the BOS;
- InternVL: ``pixel_values`` (crop, ...) is flat, every image's crops one after the other; the
  image tokens say which crop is whose.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from lmmclf.testing.tiny_lmm import _finish_ids, _llama_config
from lmmclf.testing.tiny_tokenizers import train_tokenizer

# LLaVA-OneVision's chat template (llava-hf/llava-onevision-qwen2-7b-ov-hf), images and text only
# (its video loop and the training-only {% generation %} markers left out).
LLAVA_ONEVISION_CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + ' '}}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ '\n' + content['text'] }}{% endfor %}"
    "{{'<|im_end|>'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Idefics3's chat template (HuggingFaceM4/Idefics3-8B-Llama3): it starts with the BOS, which the
# processor must not add a second time.
IDEFICS3_CHAT_TEMPLATE = (
    "<|begin_of_text|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)

# SmolVLM's chat template (HuggingFaceTB/SmolVLM2-2.2B-Instruct; SmolVLM-Instruct's is the same
# for images), images and text only: it starts with <|im_start|>, the tokenizer's BOS.
SMOLVLM_CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)

# InternVL3's chat template (OpenGVLab/InternVL3-1B-hf and -8B-hf), images and text only; the
# processor expands <IMG_CONTEXT> to <img> + one <IMG_CONTEXT> per token of every crop + </img>.
INTERNVL_CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n'}}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for content in message['content'] %}{% if content['type'] == 'image' %}{{ '<IMG_CONTEXT>\n' }}"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}{% endfor %}{% endif %}"
    "{{'<|im_end|>\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{'<|im_start|>assistant\n' }}{% endif %}"
)

# Idefics3 and SmolVLM name each crop by its place in the grid (up to 6x6) and the global image.
_IDEFICS3_IMAGE_TOKENS = ["<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>"] + [
    f"<row_{row}_col_{col}>" for row in range(1, 7) for col in range(1, 7)
]


def make_tiny_llava_onevision(directory: str | Path, hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """A tiny LLaVA-OneVision (tiling: a 32 px base image plus 2 to 4 crops of a 32 px grid, Qwen2 text model).

    The image's crops are zero-padded in a batch; the model slices them by ``image_sizes``.

    Args:
        directory: the output folder.
        hidden: width of both towers.
        layers: layers of each tower.
        seed: torch seed of the random weights.
    """
    import torch
    from transformers import (LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration, LlavaOnevisionImageProcessor,
                              LlavaOnevisionProcessor, LlavaOnevisionVideoProcessor)

    # Qwen2's layout: no BOS, <|im_end|> ends a turn, <|endoftext|> pads
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"]
    tokenizer = train_tokenizer(specials, bos=None, eos="<|im_end|>", pad="<|endoftext|>")
    # [height, width]: 40x30 -> 1x2 crops, 120x40 -> 1x3, 64x64 -> 2x2, 30x90 -> 3x1 (plus the base image)
    pinpoints = [[32, 32], [32, 64], [64, 32], [64, 64], [32, 96], [96, 32]]
    image_processor = LlavaOnevisionImageProcessor(size={"height": 32, "width": 32}, image_grid_pinpoints=pinpoints)
    video_processor = LlavaOnevisionVideoProcessor(size={"height": 32, "width": 32})
    # SigLIP has no CLS token: all 16 patch tokens of a tile ("full"), as the 7B's 729
    processor = LlavaOnevisionProcessor(image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor,
                                        num_image_tokens=16, vision_feature_select_strategy="full",
                                        chat_template=LLAVA_ONEVISION_CHAT_TEMPLATE)
    vision = dict(model_type="siglip_vision_model", hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                  num_attention_heads=2, image_size=32, patch_size=8, vision_use_head=False)
    text = dict(_llama_config(len(tokenizer), hidden, layers), model_type="qwen2", bos_token_id=None,
                eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    config = LlavaOnevisionConfig(vision_config=vision, text_config=text, image_grid_pinpoints=pinpoints,
                                  image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
                                  video_token_index=tokenizer.convert_tokens_to_ids("<video>"),
                                  vision_feature_select_strategy="full", vision_feature_layer=-1)
    torch.manual_seed(seed)
    return _finish_ids(LlavaOnevisionForConditionalGeneration(config), processor, Path(directory), tokenizer, bos=None)


def _idefics3_like_config(tokenizer, hidden: int, layers: int, image_size: int) -> dict:
    """Vision and text settings Idefics3 and SmolVLM share (SigLIP tower, pixel-shuffle connector, Llama text)."""
    vision = dict(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers, num_attention_heads=2,
                  image_size=image_size, patch_size=8, initializer_range=0.2)
    text = dict(_llama_config(len(tokenizer), hidden, layers), bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    # scale_factor 2: the connector folds 2x2 patches into one token, 32 px / 8 px = 4x4 patches -> 4 tokens a crop
    return dict(vision_config=vision, text_config=text, scale_factor=2, image_token_id=tokenizer.convert_tokens_to_ids("<image>"))


def make_tiny_idefics3(directory: str | Path, hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """A tiny Idefics3 (tiling: 32 px crops of the image scaled to 128 px, plus the global image; template holds the BOS).

    40x30 -> 4x3 crops, 120x40 -> 4x2, 64x64 -> 4x4, 30x90 -> 2x4 (plus the global image); a batch
    zero-pads the crop axis and the model drops all-zero crops.

    Args:
        directory: the output folder.
        hidden: width of both towers.
        layers: layers of each tower.
        seed: torch seed of the random weights.
    """
    import torch
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3ImageProcessor, Idefics3Processor

    # Llama 3's layout: the tokenizer prepends <|begin_of_text|>, as does the chat template
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>"] + _IDEFICS3_IMAGE_TOKENS
    tokenizer = train_tokenizer(specials, bos="<|begin_of_text|>", eos="<end_of_utterance>", pad="<|reserved_special_token_0|>",
                                vocab_size=360)
    image_processor = Idefics3ImageProcessor(size={"longest_edge": 128}, max_image_size={"longest_edge": 32})
    processor = Idefics3Processor(image_processor=image_processor, tokenizer=tokenizer, image_seq_len=4,
                                  chat_template=IDEFICS3_CHAT_TEMPLATE)
    config = Idefics3Config(**_idefics3_like_config(tokenizer, hidden, layers, image_size=32))
    torch.manual_seed(seed)
    return _finish_ids(Idefics3ForConditionalGeneration(config), processor, Path(directory), tokenizer)


def make_tiny_smolvlm(directory: str | Path, hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """A tiny SmolVLM (Idefics3's tiling with SmolLM's tokenizer: its BOS opens the template but is not prepended).

    Same crops as :func:`make_tiny_idefics3` (32 px tiles of the image scaled to 128 px). The
    ``SmolVLM*`` classes are SmolVLM2's (HuggingFaceTB/SmolVLM2-2.2B-Instruct); the first
    SmolVLM-Instruct checkpoints load as Idefics3 with this tokenizer layout.

    Args:
        directory: the output folder.
        hidden: width of both towers.
        layers: layers of each tower.
        seed: torch seed of the random weights.
    """
    import torch
    from transformers import (SmolVLMConfig, SmolVLMForConditionalGeneration, SmolVLMImageProcessor, SmolVLMProcessor,
                              SmolVLMVideoProcessor)

    # SmolLM2's layout: <|im_start|> is the BOS, yet the tokenizer adds no special tokens itself
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] + _IDEFICS3_IMAGE_TOKENS + ["<video>"]
    tokenizer = train_tokenizer(specials, bos=None, eos="<end_of_utterance>", pad="<|im_end|>", unk="<|endoftext|>",
                                vocab_size=360, bos_token="<|im_start|>")
    image_processor = SmolVLMImageProcessor(size={"longest_edge": 128}, max_image_size={"longest_edge": 32})
    video_processor = SmolVLMVideoProcessor(size={"longest_edge": 32}, max_image_size={"longest_edge": 32})
    processor = SmolVLMProcessor(image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor,
                                 image_seq_len=4, chat_template=SMOLVLM_CHAT_TEMPLATE)
    config = SmolVLMConfig(**_idefics3_like_config(tokenizer, hidden, layers, image_size=32))
    torch.manual_seed(seed)
    return _finish_ids(SmolVLMForConditionalGeneration(config), processor, Path(directory), tokenizer)


def make_tiny_internvl(directory: str | Path, hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """A tiny InternVL3 (tiling, flattened: every image's 32 px crops in one (crop, ...) tensor, Qwen2 text model).

    Up to 6 crops on the grid closest to the image's aspect ratio, plus a thumbnail: 40x30 -> 3x2,
    120x40 -> 3x1, 64x64 -> 2x2, 30x90 -> 1x3.

    Args:
        directory: the output folder.
        hidden: width of both towers.
        layers: layers of each tower.
        seed: torch seed of the random weights.
    """
    import torch
    from transformers import (GotOcr2ImageProcessor, InternVLConfig, InternVLForConditionalGeneration, InternVLProcessor,
                              InternVLVideoProcessor)

    # Qwen2.5's layout (no BOS) plus the image tokens the processor reads off the tokenizer
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<img>", "</img>", "<IMG_CONTEXT>", "<video>"]
    tokenizer = train_tokenizer(specials, bos=None, eos="<|im_end|>", pad="<|endoftext|>", extra_special_tokens={
        "start_image_token": "<img>", "end_image_token": "</img>", "context_image_token": "<IMG_CONTEXT>", "video_token": "<video>"})
    # saved with crop_to_patches off, as InternVL3-*-hf's preprocessor config: the processor turns it on itself
    image_processor = GotOcr2ImageProcessor(size={"height": 32, "width": 32}, crop_to_patches=False, min_patches=1, max_patches=6,
                                            image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])
    video_processor = InternVLVideoProcessor(size={"height": 32, "width": 32})
    # 32 px / 8 px = 4x4 patches, pixel-shuffled by 0.5 -> 4 tokens a crop
    processor = InternVLProcessor(image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor,
                                  image_seq_length=4, chat_template=INTERNVL_CHAT_TEMPLATE)
    vision = dict(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers, num_attention_heads=2,
                  image_size=32, patch_size=8, initializer_range=0.2)
    text = dict(_llama_config(len(tokenizer), hidden, layers), model_type="qwen2", bos_token_id=None,
                eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    config = InternVLConfig(vision_config=vision, text_config=text, image_token_id=tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>"),
                            image_seq_length=4, downsample_ratio=0.5, vision_feature_layer=-1,
                            vision_feature_select_strategy="default", tie_word_embeddings=False)
    torch.manual_seed(seed)
    return _finish_ids(InternVLForConditionalGeneration(config), processor, Path(directory), tokenizer, bos=None)


# name -> (builder, batching mechanism it stands for, runs in the fast suite)
TILING_FAMILIES: dict[str, tuple[Callable[..., Path], str, bool]] = {
    "llava-onevision": (make_tiny_llava_onevision, "tiling", False),
    "idefics3": (make_tiny_idefics3, "tiling, BOS in template", True),
    "smolvlm": (make_tiny_smolvlm, "tiling, BOS in template", False),
    "internvl": (make_tiny_internvl, "tiling (flattened)", False),
}
