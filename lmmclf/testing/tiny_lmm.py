"""Tiny, randomly initialised LMMs with the real LLaVA and InstructBLIP architectures.

Tests and benchmarks need a model that goes through exactly the loaders a user's model goes
through (``AutoProcessor.from_pretrained`` / ``AutoModelForImageTextToText.from_pretrained``)
without a download. These builders train a small byte-level BPE tokenizer on the fly with the
``tokenizers`` library, build the model from transformers configs, and save model, tokenizer,
image processor, processor config and chat template to a folder.

The text is random, of course; what matters is that batching, padding, chat templates, EOS
handling and loading are the real code paths.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# LLaVA-1.5's chat template (as shipped in llava-hf/llava-1.5-*-hf), without the
# assistant-mask markers that only training uses.
LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] != 'system' %}{{ message['role'].upper() + ': ' }}{% endif %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' ' }}{% endfor %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

_WORDS = (
    "give semantic descriptions of the image a photo man woman dog cat car red blue green person "
    "walking running road sky tree water field ball playing outdoor indoor bowling vault board "
    "USER ASSISTANT : 1 2 3 4 5 6 7 8 9 10 . ) - * , emotions elicits joy fear calm"
).split()

# LLaMA-style special tokens; <image> is the placeholder both processors expand.
_SPECIALS = ["<unk>", "<s>", "</s>", "<pad>", "<image>"]
UNK, BOS, EOS, PAD, IMAGE = range(5)


def _corpus() -> list[str]:
    n = len(_WORDS)
    return [" ".join(_WORDS[i:] + _WORDS[:i]) for i in range(n)] + [" ".join(_WORDS[::-1])]


def train_llama_like_tokenizer(vocab_size: int = 320):
    """A byte-level BPE tokenizer with LLaMA's special tokens, trained in memory.

    Args:
        vocab_size: the BPE vocabulary size (special tokens included).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=_SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(_corpus(), trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", BOS)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>", padding_side="left"
    )


def _train_bert_like_tokenizer():
    """A WordPiece tokenizer with BERT's special tokens (InstructBLIP's Q-Former reads BERT ids).

    Its vocabulary is listed, not trained: ``WordPieceTrainer`` numbers the tokens differently in
    every process, so the Q-Former's ids, and with them the tiny InstructBLIPs' answers, changed
    from one test run to the next (in some runs every image got the same answer).
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words = sorted({word.lower() for word in _WORDS})
    letters = sorted({letter for word in words for letter in word})
    tokens = dict.fromkeys(specials + words + letters + ["##" + letter for letter in letters])
    tok = Tokenizer(models.WordPiece(vocab={token: i for i, token in enumerate(tokens)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]", padding_side="right",
    )


def _llama_config(vocab_size: int, hidden: int, layers: int) -> dict[str, Any]:
    return dict(
        vocab_size=vocab_size, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
        bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD,
        # a wide init makes greedy argmax decisive, so batched and single runs cannot tie-break differently
        initializer_range=0.2,
    )


def _finish(model, processor, directory: Path) -> Path:
    generation = model.generation_config
    generation.bos_token_id, generation.eos_token_id, generation.pad_token_id = BOS, EOS, PAD
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


def _finish_ids(model, processor, directory: Path, tokenizer, bos: str | None = "bos") -> Path:
    """Save like :func:`_finish`, with the generation config's ids taken from ``tokenizer``.

    Args:
        bos: None for families without a BOS (Qwen, T5).
    """
    generation = model.generation_config
    generation.bos_token_id = tokenizer.bos_token_id if bos else None
    generation.eos_token_id, generation.pad_token_id = tokenizer.eos_token_id, tokenizer.pad_token_id
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


def make_tiny_llava(directory: str | Path, hidden: int = 32, layers: int = 2, image_size: int = 32, patch: int = 8, seed: int = 0) -> Path:
    """Write a tiny LLaVA-1.5-architecture model (CLIP ViT + MLP projector + LLaMA) to ``directory``.

    Args:
        directory: the output folder (created).
        hidden: width of the vision tower and the language model.
        layers: transformer layers of each tower.
        image_size: input resolution of the vision tower.
        patch: patch size (image tokens = (image_size / patch) ** 2).
        seed: torch seed for the random weights.

    Returns:
        The folder, loadable with ``AutoProcessor`` / ``AutoModelForImageTextToText``.
    """
    import torch
    from transformers import CLIPImageProcessor, CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    directory = Path(directory)
    tokenizer = train_llama_like_tokenizer()
    image_processor = CLIPImageProcessor(size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size})
    processor = LlavaProcessor(
        image_processor=image_processor, tokenizer=tokenizer, patch_size=patch, vision_feature_select_strategy="default",
        chat_template=LLAVA_CHAT_TEMPLATE, num_additional_image_tokens=1,
    )
    vision = CLIPVisionConfig(
        hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers, num_attention_heads=2,
        image_size=image_size, patch_size=patch, projection_dim=hidden,
    )
    config = LlavaConfig(
        vision_config=vision, text_config=LlamaConfig(**_llama_config(len(tokenizer), hidden, layers)),
        image_token_index=IMAGE, image_seq_length=(image_size // patch) ** 2,
        vision_feature_select_strategy="default", vision_feature_layer=-2,
    )
    torch.manual_seed(seed)
    return _finish(LlavaForConditionalGeneration(config), processor, directory)


def make_tiny_instructblip(directory: str | Path, hidden: int = 32, layers: int = 2, image_size: int = 32, patch: int = 8,
                           query_tokens: int = 4, seed: int = 0) -> Path:
    """Write a tiny InstructBLIP-architecture model (ViT + Q-Former + LLaMA) to ``directory``.

    InstructBLIP is MiniGPT-4's design (EVA ViT-g + Q-Former + Vicuna); its processor ships no
    chat template, so the prompt goes to the model as plain text.

    Args:
        directory: the output folder (created).
        hidden: width of all three towers.
        layers: transformer layers of each tower.
        image_size: input resolution of the vision tower.
        patch: patch size.
        query_tokens: Q-Former query tokens (the image's length in the language model).
        seed: torch seed for the random weights.
    """
    import torch
    from transformers import (
        BlipImageProcessor,
        InstructBlipConfig,
        InstructBlipForConditionalGeneration,
        InstructBlipProcessor,
        InstructBlipQFormerConfig,
        InstructBlipVisionConfig,
    )

    directory = Path(directory)
    tokenizer = train_llama_like_tokenizer()
    qformer_tokenizer = _train_bert_like_tokenizer()
    processor = InstructBlipProcessor(
        image_processor=BlipImageProcessor(size={"height": image_size, "width": image_size}),
        tokenizer=tokenizer, qformer_tokenizer=qformer_tokenizer, num_query_tokens=query_tokens,
    )
    vision = InstructBlipVisionConfig(
        hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers, num_attention_heads=2,
        image_size=image_size, patch_size=patch, initializer_range=0.2,
    )
    qformer = InstructBlipQFormerConfig(
        vocab_size=len(qformer_tokenizer), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
        intermediate_size=2 * hidden, encoder_hidden_size=hidden, max_position_embeddings=128, pad_token_id=0, cross_attention_frequency=1,
        initializer_range=0.2,
    )
    # a wide init in every tower: with the default 0.02 the image barely reaches the language
    # model and every image got the same answer, so a batch that swapped rows would pass
    config = InstructBlipConfig(
        vision_config=vision.to_dict(), qformer_config=qformer.to_dict(), initializer_range=0.2,
        text_config=_llama_config(len(tokenizer), hidden, layers), num_query_tokens=query_tokens, image_token_index=IMAGE,
    )
    torch.manual_seed(seed)
    return _finish(InstructBlipForConditionalGeneration(config), processor, directory)


# The full LLaVA-1.5-13B configuration (llava-hf/llava-1.5-13b-hf's config.json), for the
# GPU benchmark: a randomly initialised model of the real size, built without a download.
LLAVA_15_13B_CONFIG: dict[str, Any] = {
    "model_type": "llava",
    "image_token_index": 32000,
    "image_seq_length": 576,
    "projector_hidden_act": "gelu",
    "vision_feature_layer": -2,
    "vision_feature_select_strategy": "default",
    "vision_config": {
        "model_type": "clip_vision_model", "hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24,
        "num_attention_heads": 16, "image_size": 336, "patch_size": 14, "projection_dim": 768, "hidden_act": "quick_gelu",
    },
    "text_config": {
        "model_type": "llama", "vocab_size": 32064, "hidden_size": 5120, "intermediate_size": 13824,
        "num_hidden_layers": 40, "num_attention_heads": 40, "num_key_value_heads": 40, "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-5, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 32001,
    },
}
