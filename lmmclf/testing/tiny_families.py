"""Tiny random LMMs of the model families ``describe`` supports, one builder per family.

Each builder writes a folder in the layout a user downloads from the hub (config, weights,
tokenizer, image processor, processor config, chat template), built from the real transformers
architecture and processor classes, so ``describe --model DIR`` goes through the same
``from_pretrained`` loaders and the same processor code as a real checkpoint. Each family stands
for a batching mechanism (docs/describe.md, "Model families"):

- tiling (per-image crop counts): LLaVA-NeXT;
- encoder-decoder language model (``generate`` returns new tokens only): BLIP-2 Flan-T5;
- dynamic resolution (flattened patches + ``image_grid_thw``): Qwen2-VL;
- cross-attention to the image (``cross_attention_mask``), chat template holding the BOS: Mllama;
- chat template holding the BOS, image tokens marked by ``token_type_ids``: Gemma 3.

The slow suite adds more of the same mechanisms: Qwen2.5-VL and Qwen3-VL (dynamic resolution),
InstructBLIP Flan-T5 and BLIP-2 OPT (Q-Former), PaliGemma (no chat template: the processor puts
``<image>`` tokens and the BOS first; prefix-LM ``token_type_ids``).

``FAMILIES`` maps a name to its builder; the tests run every family.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from lmmclf.testing.tiny_lmm import LLAVA_CHAT_TEMPLATE, _finish_ids, _llama_config, _train_bert_like_tokenizer, train_llama_like_tokenizer
from lmmclf.testing.tiny_tokenizers import train_tokenizer

# Qwen2-VL's chat template (Qwen/Qwen2-VL-7B-Instruct), images only, default system prompt.
QWEN2_VL_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% for content in message['content'] %}{% if content['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Llama-3.2-Vision's chat template (meta-llama/Llama-3.2-11B-Vision-Instruct), images and text only:
# it starts with the BOS, which the processor must not add a second time.
MLLAMA_CHAT_TEMPLATE = (
    "{{- bos_token }}{% for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' }}"
    "{% for content in message['content'] %}{% if content['type'] == 'image' %}{{ '<|image|>' }}"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}{% endfor %}{{ '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)


def make_tiny_llava_next(directory: str | Path, hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """A tiny LLaVA-NeXT (tiling: a 32 px base image plus 1 to 4 crops of a 32 px grid per image).

    Args:
        directory: the output folder.
        hidden: width of both towers.
        layers: layers of each tower.
        seed: torch seed of the random weights.
    """
    import torch
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaNextConfig, LlavaNextForConditionalGeneration, LlavaNextImageProcessor, LlavaNextProcessor

    tokenizer = train_llama_like_tokenizer()
    pinpoints = [[32, 64], [64, 32], [64, 64]]
    image_processor = LlavaNextImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32},
                                              image_grid_pinpoints=pinpoints)
    processor = LlavaNextProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=8,
                                   vision_feature_select_strategy="default", chat_template=LLAVA_CHAT_TEMPLATE,
                                   num_additional_image_tokens=1)
    vision = CLIPVisionConfig(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers, num_attention_heads=2,
                              image_size=32, patch_size=8, projection_dim=hidden, initializer_factor=4.0)
    config = LlavaNextConfig(vision_config=vision, text_config=LlamaConfig(**_llama_config(len(tokenizer), hidden, layers)),
                             image_token_index=tokenizer.convert_tokens_to_ids("<image>"), image_grid_pinpoints=pinpoints,
                             vision_feature_select_strategy="default", vision_feature_layer=-2, image_seq_length=16)
    torch.manual_seed(seed)
    return _finish_ids(LlavaNextForConditionalGeneration(config), processor, Path(directory), tokenizer)


def make_tiny_blip2_t5(directory: str | Path, hidden: int = 32, layers: int = 2, query_tokens: int = 4, seed: int = 0) -> Path:
    """A tiny BLIP-2 on Flan-T5 (encoder-decoder: ``generate`` returns only new tokens).

    Args:
        directory: the output folder.
        hidden: width of the three towers.
        layers: layers of each tower.
        query_tokens: Q-Former query tokens.
        seed: torch seed of the random weights.
    """
    import torch
    from transformers import (Blip2Config, Blip2ForConditionalGeneration, Blip2Processor, Blip2QFormerConfig, Blip2VisionConfig,
                              BlipImageProcessor, T5Config)

    # T5's layout: <pad> 0 (also the decoder's start token), </s> 1, <unk> 2; no BOS, EOS appended
    tokenizer = train_tokenizer(["<pad>", "</s>", "<unk>", "<image>"], bos=None, eos="</s>", pad="<pad>", unk="<unk>",
                                append_eos=True)
    processor = Blip2Processor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tokenizer,
                               num_query_tokens=query_tokens)
    vision = Blip2VisionConfig(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers, num_attention_heads=2,
                               image_size=32, patch_size=8, initializer_range=0.2)
    qformer = Blip2QFormerConfig(vocab_size=64, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                                 intermediate_size=2 * hidden, encoder_hidden_size=hidden, initializer_range=0.2)
    text = T5Config(vocab_size=len(tokenizer), d_model=hidden, d_kv=hidden // 2, d_ff=2 * hidden, num_layers=layers,
                    num_decoder_layers=layers, num_heads=2, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
                    initializer_factor=4.0, is_encoder_decoder=True, tie_word_embeddings=False)
    config = Blip2Config(vision_config=vision.to_dict(), qformer_config=qformer.to_dict(), text_config=text.to_dict(),
                         num_query_tokens=query_tokens, image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
                         initializer_range=0.2)
    torch.manual_seed(seed)
    return _finish_ids(Blip2ForConditionalGeneration(config), processor, Path(directory), tokenizer, bos=None)


def make_tiny_qwen2_vl(directory: str | Path, hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """A tiny Qwen2-VL (dynamic resolution: an image's token count follows its size).

    Args:
        directory: the output folder.
        hidden: width of both towers.
        layers: layers of each tower.
        seed: torch seed of the random weights.
    """
    import torch
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLImageProcessor, Qwen2VLProcessor, Qwen2VLVideoProcessor

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
    tokenizer = train_tokenizer(specials, bos=None, eos="<|im_end|>", pad="<|endoftext|>",
                                extra_special_tokens={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>"})
    # 28 px per merged token: a 40x30 image gives 2 tokens, a 120x40 one 4x1 (+ the resize to multiples of 28)
    image_processor = Qwen2VLImageProcessor(min_pixels=28 * 28, max_pixels=28 * 28 * 16, patch_size=14, merge_size=2, temporal_patch_size=2)
    video_processor = Qwen2VLVideoProcessor(min_pixels=28 * 28, max_pixels=28 * 28 * 16, patch_size=14, merge_size=2, temporal_patch_size=2)
    processor = Qwen2VLProcessor(image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor,
                                 chat_template=QWEN2_VL_CHAT_TEMPLATE)
    ids = {name: tokenizer.convert_tokens_to_ids(token) for name, token in
           (("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"), ("vision_start_token_id", "<|vision_start|>"),
            ("vision_end_token_id", "<|vision_end|>"))}
    text = dict(_llama_config(len(tokenizer), hidden, layers), bos_token_id=None, eos_token_id=2, pad_token_id=0,
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]}, model_type="qwen2_vl_text")
    vision = dict(depth=layers, embed_dim=hidden, hidden_size=hidden, num_heads=2, mlp_ratio=2, patch_size=14,
                  spatial_merge_size=2, temporal_patch_size=2, in_channels=3, initializer_range=0.2)
    config = Qwen2VLConfig(text_config=text, vision_config=vision, **ids)
    torch.manual_seed(seed)
    return _finish_ids(Qwen2VLForConditionalGeneration(config), processor, Path(directory), tokenizer, bos=None)


def make_tiny_mllama(directory: str | Path, hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """A tiny Mllama / Llama-3.2-Vision (cross-attention layers read the image; template holds the BOS).

    Args:
        directory: the output folder.
        hidden: width of both towers.
        layers: self-attention layers of the language model (one more is the cross-attention layer).
        seed: torch seed of the random weights.
    """
    import torch
    from transformers import MllamaConfig, MllamaForConditionalGeneration, MllamaImageProcessor, MllamaProcessor

    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>",
                "<|finetune_right_pad_id|>", "<|image|>"]
    tokenizer = train_tokenizer(specials, bos="<|begin_of_text|>", eos="<|eot_id|>", pad="<|finetune_right_pad_id|>")
    image_processor = MllamaImageProcessor(size={"height": 32, "width": 32}, max_image_tiles=2)
    processor = MllamaProcessor(image_processor=image_processor, tokenizer=tokenizer, chat_template=MLLAMA_CHAT_TEMPLATE)
    vision = dict(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers, num_global_layers=1,
                  attention_heads=2, image_size=32, patch_size=8, max_num_tiles=2, intermediate_layers_indices=[0],
                  vision_output_dim=2 * hidden, supported_aspect_ratios=[[1, 1], [1, 2], [2, 1]], initializer_range=0.2)
    text = dict(_llama_config(len(tokenizer), hidden, layers + 1), bos_token_id=0, eos_token_id=2,
                pad_token_id=5, cross_attention_layers=[1])
    text.pop("max_position_embeddings")  # Mllama sizes its rotary table from rope settings
    config = MllamaConfig(vision_config=vision, text_config=text, image_token_index=tokenizer.convert_tokens_to_ids("<|image|>"))
    torch.manual_seed(seed)
    model = MllamaForConditionalGeneration(config)
    with torch.no_grad():  # the cross-attention gates start at 0 (tanh(0): the image is ignored); open them
        for name, parameter in model.named_parameters():
            if name.endswith(("cross_attn_attn_gate", "cross_attn_mlp_gate")):
                parameter.fill_(1.0)
    return _finish_ids(model, processor, Path(directory), tokenizer)


_QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]

# Qwen3-VL's chat template (Qwen/Qwen3-VL-8B-Instruct), images and text only: unlike Qwen2(.5)-VL's, no default system prompt.
QWEN3_VL_CHAT_TEMPLATE = (
    "{%- for message in messages %}{%- if message.role == \"user\" %}{{- '<|im_start|>' + message.role + '\\n' }}"
    "{%- for content in message.content %}{%- if content.type == 'image' or 'image' in content or 'image_url' in content %}"
    "<|vision_start|><|image_pad|><|vision_end|>{%- elif 'text' in content %}{{- content.text }}{%- endif %}{%- endfor %}"
    "{{- '<|im_end|>\\n' }}{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

# Gemma 3's chat template (google/gemma-3-4b-it), images and text only: it starts with the BOS, which
# the processor must not add a second time.
GEMMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}{%- for message in messages -%}"
    "{%- if (message['role'] == 'assistant') -%}{%- set role = \"model\" -%}{%- else -%}{%- set role = message['role'] -%}{%- endif -%}"
    "{{ '<start_of_turn>' + role + '\\n' }}"
    "{%- for item in message['content'] -%}{%- if item['type'] == 'image' -%}{{ '<start_of_image>' }}"
    "{%- elif item['type'] == 'text' -%}{{ item['text'] | trim }}{%- endif -%}{%- endfor -%}"
    "{{ '<end_of_turn>\\n' }}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{'<start_of_turn>model\\n'}}{%- endif -%}"
)

# Gemma's layout: <pad> 0, <eos> 1, <bos> 2, <unk> 3
_GEMMA_SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>"]


def _qwen_tokenizer():
    return train_tokenizer(_QWEN_SPECIALS, bos=None, eos="<|im_end|>", pad="<|endoftext|>",
                           extra_special_tokens={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>"})


def _qwen_ids(tokenizer) -> dict[str, int]:
    return {name: tokenizer.convert_tokens_to_ids(token) for name, token in
            (("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"), ("vision_start_token_id", "<|vision_start|>"),
             ("vision_end_token_id", "<|vision_end|>"))}


def make_tiny_qwen2_5_vl(directory: str | Path, hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """A tiny Qwen2.5-VL (dynamic resolution, as Qwen2-VL; the vision tower attends in windows but its last layer).

    Args:
        directory: the output folder.
        hidden: width of both towers.
        layers: layers of each tower.
        seed: torch seed of the random weights.
    """
    import torch
    from transformers import (Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor, Qwen2VLImageProcessor,
                              Qwen2VLVideoProcessor)

    tokenizer = _qwen_tokenizer()
    pixels = dict(min_pixels=28 * 28, max_pixels=28 * 28 * 16, patch_size=14, merge_size=2, temporal_patch_size=2)
    # Qwen2.5-VL ships Qwen2-VL's image processor and chat template (Qwen/Qwen2.5-VL-7B-Instruct)
    processor = Qwen2_5_VLProcessor(image_processor=Qwen2VLImageProcessor(**pixels), tokenizer=tokenizer,
                                    video_processor=Qwen2VLVideoProcessor(**pixels), chat_template=QWEN2_VL_CHAT_TEMPLATE)
    text = dict(_llama_config(len(tokenizer), hidden, layers), bos_token_id=None, eos_token_id=2, pad_token_id=0,
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]}, model_type="qwen2_5_vl_text")
    # windows of 56 px (2x2 merged tokens): a 120x40 image spans two of them
    vision = dict(depth=layers, hidden_size=hidden, intermediate_size=2 * hidden, num_heads=2, out_hidden_size=hidden, patch_size=14,
                  spatial_merge_size=2, temporal_patch_size=2, window_size=56, fullatt_block_indexes=[layers - 1], initializer_range=0.2)
    config = Qwen2_5_VLConfig(text_config=text, vision_config=vision, **_qwen_ids(tokenizer))
    torch.manual_seed(seed)
    return _finish_ids(Qwen2_5_VLForConditionalGeneration(config), processor, Path(directory), tokenizer, bos=None)


def make_tiny_qwen3_vl(directory: str | Path, hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """A tiny Qwen3-VL (dynamic resolution with 32 px merged tokens, DeepStack vision features, interleaved M-RoPE).

    Args:
        directory: the output folder.
        hidden: width of both towers.
        layers: layers of each tower.
        seed: torch seed of the random weights.
    """
    import torch
    from transformers import Qwen2VLImageProcessor, Qwen3VLConfig, Qwen3VLForConditionalGeneration, Qwen3VLProcessor, Qwen3VLVideoProcessor

    tokenizer = _qwen_tokenizer()
    # 16 px patches merged 2x2: a 40x30 image gives 2 tokens (Qwen/Qwen3-VL-8B-Instruct's processor, sizes reduced)
    pixels = dict(min_pixels=32 * 32, max_pixels=32 * 32 * 16, patch_size=16, merge_size=2, temporal_patch_size=2,
                  image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])
    processor = Qwen3VLProcessor(image_processor=Qwen2VLImageProcessor(**pixels), tokenizer=tokenizer,
                                 video_processor=Qwen3VLVideoProcessor(**pixels), chat_template=QWEN3_VL_CHAT_TEMPLATE)
    text = dict(_llama_config(len(tokenizer), hidden, layers), head_dim=hidden // 2, eos_token_id=2, pad_token_id=0,
                rope_parameters={"rope_type": "default", "rope_theta": 5000000.0, "mrope_section": [4, 2, 2], "mrope_interleaved": True})
    text.pop("bos_token_id")
    vision = dict(depth=layers, hidden_size=hidden, intermediate_size=2 * hidden, num_heads=2, out_hidden_size=hidden, patch_size=16,
                  spatial_merge_size=2, temporal_patch_size=2, num_position_embeddings=16, deepstack_visual_indexes=[0],
                  initializer_range=0.2)
    config = Qwen3VLConfig(text_config=text, vision_config=vision, **_qwen_ids(tokenizer))
    torch.manual_seed(seed)
    return _finish_ids(Qwen3VLForConditionalGeneration(config), processor, Path(directory), tokenizer, bos=None)


def _t5_tokenizer():
    # T5's layout: <pad> 0 (also the decoder's start token), </s> 1, <unk> 2; no BOS, EOS appended
    return train_tokenizer(["<pad>", "</s>", "<unk>", "<image>"], bos=None, eos="</s>", pad="<pad>", unk="<unk>", append_eos=True)


def make_tiny_instructblip_t5(directory: str | Path, hidden: int = 32, layers: int = 2, query_tokens: int = 4, seed: int = 0) -> Path:
    """A tiny InstructBLIP on Flan-T5 (Q-Former reading the prompt too; encoder-decoder language model).

    Args:
        directory: the output folder.
        hidden: width of the three towers.
        layers: layers of each tower.
        query_tokens: Q-Former query tokens.
        seed: torch seed of the random weights.
    """
    import torch
    from transformers import (BlipImageProcessor, InstructBlipConfig, InstructBlipForConditionalGeneration, InstructBlipProcessor,
                              InstructBlipQFormerConfig, InstructBlipVisionConfig, T5Config)

    tokenizer = _t5_tokenizer()
    qformer_tokenizer = _train_bert_like_tokenizer()
    processor = InstructBlipProcessor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tokenizer,
                                      qformer_tokenizer=qformer_tokenizer, num_query_tokens=query_tokens)
    vision = InstructBlipVisionConfig(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers, num_attention_heads=2,
                                      image_size=32, patch_size=8, initializer_range=0.2)
    qformer = InstructBlipQFormerConfig(vocab_size=len(qformer_tokenizer), hidden_size=hidden, num_hidden_layers=layers,
                                        num_attention_heads=2, intermediate_size=2 * hidden, encoder_hidden_size=hidden,
                                        max_position_embeddings=128, pad_token_id=0, cross_attention_frequency=1, initializer_range=0.2)
    text = T5Config(vocab_size=len(tokenizer), d_model=hidden, d_kv=hidden // 2, d_ff=2 * hidden, num_layers=layers,
                    num_decoder_layers=layers, num_heads=2, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
                    initializer_factor=4.0, is_encoder_decoder=True, tie_word_embeddings=False)
    config = InstructBlipConfig(vision_config=vision.to_dict(), qformer_config=qformer.to_dict(), text_config=text.to_dict(),
                                num_query_tokens=query_tokens, image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
                                initializer_range=0.2)
    torch.manual_seed(seed)
    return _finish_ids(InstructBlipForConditionalGeneration(config), processor, Path(directory), tokenizer, bos=None)


def make_tiny_blip2_opt(directory: str | Path, hidden: int = 32, layers: int = 2, query_tokens: int = 4, seed: int = 0) -> Path:
    """A tiny BLIP-2 on OPT (Q-Former, decoder-only; the BOS is OPT's ``</s>`` and generation stops at "\\n").

    Args:
        directory: the output folder.
        hidden: width of the three towers.
        layers: layers of each tower.
        query_tokens: Q-Former query tokens.
        seed: torch seed of the random weights.
    """
    import torch
    from transformers import (Blip2Config, Blip2ForConditionalGeneration, Blip2Processor, Blip2QFormerConfig, Blip2VisionConfig,
                              BlipImageProcessor, OPTConfig)

    # OPT's layout (GPT-2 byte-level BPE): <s> 0, <pad> 1, </s> 2 (prepended as the BOS), <unk> 3
    tokenizer = train_tokenizer(["<s>", "<pad>", "</s>", "<unk>"], bos="</s>", eos="</s>", pad="<pad>", unk="<unk>")
    # the processor adds <image> after the vocabulary, where Salesforce/blip2-opt-2.7b has it
    processor = Blip2Processor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tokenizer,
                               num_query_tokens=query_tokens)
    # BLIP-2 OPT's generation ends at "\n" ("Ċ"), not at </s>: its conversion set eos_token_id = tokenizer("\n")
    newline = tokenizer.convert_tokens_to_ids("Ċ")
    vision = Blip2VisionConfig(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers, num_attention_heads=2,
                               image_size=32, patch_size=8, initializer_range=0.2)
    qformer = Blip2QFormerConfig(vocab_size=64, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                                 intermediate_size=2 * hidden, encoder_hidden_size=hidden, initializer_range=0.2)
    text = OPTConfig(vocab_size=len(tokenizer), hidden_size=hidden, ffn_dim=2 * hidden, num_hidden_layers=layers, num_attention_heads=2,
                     max_position_embeddings=512, word_embed_proj_dim=hidden, bos_token_id=tokenizer.bos_token_id, eos_token_id=newline,
                     pad_token_id=tokenizer.pad_token_id, init_std=0.2)
    config = Blip2Config(vision_config=vision.to_dict(), qformer_config=qformer.to_dict(), text_config=text.to_dict(),
                         num_query_tokens=query_tokens, image_token_index=tokenizer.convert_tokens_to_ids("<image>"), initializer_range=0.2)
    torch.manual_seed(seed)
    model = Blip2ForConditionalGeneration(config)
    directory = _finish_ids(model, processor, Path(directory), tokenizer)
    model.generation_config.eos_token_id = newline
    model.generation_config.save_pretrained(directory)
    return directory


def _siglip_vision(hidden: int, layers: int, **extra) -> dict:
    return dict(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers, num_attention_heads=2, image_size=32,
                patch_size=8, **extra)


def _gemma_text(tokenizer, hidden: int, layers: int, **extra) -> dict:
    return dict(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                num_attention_heads=2, num_key_value_heads=1, head_dim=hidden // 2, max_position_embeddings=512,
                bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                initializer_range=0.2, **extra)


def make_tiny_paligemma(directory: str | Path, hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """A tiny PaliGemma (no chat template: the processor puts the image tokens and the BOS before the prompt;
    the image and prompt attend to each other both ways, marked by ``token_type_ids``).

    Args:
        directory: the output folder.
        hidden: width of both towers.
        layers: layers of each tower.
        seed: torch seed of the random weights.
    """
    import torch
    from transformers import PaliGemmaConfig, PaliGemmaForConditionalGeneration, PaliGemmaProcessor, SiglipImageProcessor

    tokenizer = train_tokenizer(_GEMMA_SPECIALS, bos="<bos>", eos="<eos>", pad="<pad>", unk="<unk>")
    # google/paligemma-3b-mix-448's image processor, 32 px instead of 448
    image_processor = SiglipImageProcessor(size={"height": 32, "width": 32}, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    image_processor.image_seq_length = 16  # (32 / 8) ** 2 patches, an image token each
    # the processor adds <image>, the 1024 <locXXXX> and 128 <segXXX> tokens, and turns the tokenizer's BOS off
    processor = PaliGemmaProcessor(image_processor=image_processor, tokenizer=tokenizer)
    config = PaliGemmaConfig(vision_config=_siglip_vision(hidden, layers), text_config=_gemma_text(tokenizer, hidden, layers),
                             image_token_index=processor.image_token_id, vocab_size=len(tokenizer), projection_dim=hidden,
                             hidden_size=hidden)
    torch.manual_seed(seed)
    return _finish_ids(PaliGemmaForConditionalGeneration(config), processor, Path(directory), tokenizer)


def make_tiny_gemma3(directory: str | Path, hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """A tiny Gemma 3 (chat template holding the BOS; image tokens attend to each other both ways via ``token_type_ids``).

    Args:
        directory: the output folder.
        hidden: width of both towers.
        layers: layers of each tower (the language model's: one sliding-window, one global).
        seed: torch seed of the random weights.
    """
    import torch
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3ImageProcessor, Gemma3Processor

    specials = _GEMMA_SPECIALS + ["<start_of_turn>", "<end_of_turn>", "<start_of_image>", "<end_of_image>", "<image_soft_token>"]
    tokenizer = train_tokenizer(specials, bos="<bos>", eos="<eos>", pad="<pad>", unk="<unk>",
                                extra_special_tokens={"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>",
                                                      "image_token": "<image_soft_token>"})
    # google/gemma-3-4b-it's processor: 896 px images pooled to 256 tokens; here 32 px (4x4 patches) pooled to 2x2
    image_processor = Gemma3ImageProcessor(size={"height": 32, "width": 32}, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    processor = Gemma3Processor(image_processor=image_processor, tokenizer=tokenizer, chat_template=GEMMA3_CHAT_TEMPLATE,
                                image_seq_length=4)
    text = _gemma_text(tokenizer, hidden, layers, query_pre_attn_scalar=hidden // 2, sliding_window=512,
                       layer_types=["sliding_attention", "full_attention"])
    ids = {name: tokenizer.convert_tokens_to_ids(token) for name, token in
           (("boi_token_index", "<start_of_image>"), ("eoi_token_index", "<end_of_image>"), ("image_token_index", "<image_soft_token>"))}
    config = Gemma3Config(vision_config=_siglip_vision(hidden, layers, vision_use_head=False), text_config=text, mm_tokens_per_image=4,
                          initializer_range=0.2, **ids)
    torch.manual_seed(seed)
    model = Gemma3ForConditionalGeneration(config)
    with torch.no_grad():
        # the image projection starts at 0 (the image is ignored): give it random weights; and SigLIP's own
        # narrow init made the pooled image tokens so alike that 3 images of 4 got the same answer
        model.model.multi_modal_projector.mm_input_projection_weight.normal_(0.0, 0.2)
        for parameter in model.model.vision_tower.parameters():
            if parameter.dim() >= 2:
                parameter.normal_(0.0, 0.2)
    directory = _finish_ids(model, processor, Path(directory), tokenizer)
    # Gemma 3 -it ends a turn with <end_of_turn> as well as <eos> (its generation_config.json)
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<end_of_turn>")]
    model.generation_config.save_pretrained(directory)
    return directory


# name -> (builder, batching mechanism it stands for, runs in the fast suite)
FAMILIES: dict[str, tuple[Callable[..., Path], str, bool]] = {
    "llava-next": (make_tiny_llava_next, "tiling", True),
    "blip2-flan-t5": (make_tiny_blip2_t5, "encoder-decoder", True),
    "qwen2-vl": (make_tiny_qwen2_vl, "dynamic resolution", True),
    "mllama": (make_tiny_mllama, "cross-attention", True),
    "qwen2.5-vl": (make_tiny_qwen2_5_vl, "dynamic resolution", False),
    "qwen3-vl": (make_tiny_qwen3_vl, "dynamic resolution", False),
    "instructblip-flan-t5": (make_tiny_instructblip_t5, "Q-Former, encoder-decoder", False),
    "blip2-opt": (make_tiny_blip2_opt, "Q-Former", False),
    "paligemma": (make_tiny_paligemma, "prefix-LM, no chat template", False),
    "gemma3": (make_tiny_gemma3, "BOS in template", True),
}


# the tiling families live in their own module; keep this import last (it needs nothing from here)
from lmmclf.testing.tiny_families_tiling import TILING_FAMILIES  # noqa: E402

FAMILIES.update(TILING_FAMILIES)
