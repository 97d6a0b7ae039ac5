"""Tiny, randomly initialised MiniGPT-4 parts, saved in the formats users download.

MiniGPT-4 is three downloads (docs/describe.md): a BLIP-2 checkpoint (of which the vision
model, Q-Former and query tokens are used), MiniGPT-4's ``pretrained_minigpt4.pth`` (the
``llama_proj`` layer) and a Vicuna v0 folder (``LlamaForCausalLM`` + sentencepiece
``tokenizer.model``). These builders write each of them small enough for a test:

- :func:`make_tiny_blip2`: ``Blip2ForConditionalGeneration.save_pretrained`` with a tiny T5;
- :func:`make_tiny_projection`: ``torch.save({"model": {"llama_proj.weight", "llama_proj.bias"}})``,
  as MiniGPT-4's training saves it;
- :func:`make_tiny_vicuna`: a tiny Llama with a sentencepiece tokenizer trained on the spot.
"""

from __future__ import annotations

import io
from pathlib import Path

# the words MiniGPT-4's conversation template and the paper prompt use, so that the tiny
# tokenizer splits them into a few pieces each; "###" and "##" are pieces of LLaMA's vocabulary
# (ids 835 and 2277) that MiniGPT-4's demo stops on, so they are pieces here too.
_TEXT = (
    "Give the following image: <Img>ImageContent</Img>. You will be able to see the image once I provide it "
    "to you. Please answer my questions.###Human: <Img> </Img> Give 10 semantic descriptions of the image"
    "###Assistant: 1. a man running on a road 2. a dog playing with a ball 3. a red car in a field ## # ###"
)
BOS, EOS = 1, 2


def make_tiny_vicuna(directory: str | Path, hidden: int = 48, layers: int = 2, vocab_size: int = 400, seed: int = 0) -> Path:
    """Write a tiny Llama (Vicuna-shaped) folder: ``config.json``, weights and ``tokenizer.model``.

    Args:
        directory: the output folder (created).
        hidden: the model width (``llama_proj`` maps the Q-Former's width to this).
        layers: decoder layers.
        vocab_size: sentencepiece vocabulary size.
        seed: torch seed for the random weights.
    """
    import sentencepiece as spm
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model_file = io.BytesIO()
    sentences = [_TEXT] + [" ".join(_TEXT.split()[i:] + _TEXT.split()[:i]) for i in range(0, 60, 3)]
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences), model_writer=model_file, vocab_size=vocab_size, model_type="bpe",
        unk_id=0, bos_id=BOS, eos_id=EOS, pad_id=-1, byte_fallback=True, user_defined_symbols=["###", "##"],
        hard_vocab_limit=False, minloglevel=2,
        remove_extra_whitespaces=False, split_digits=True,  # as in LLaMA's tokenizer.model
    )
    (directory / "tokenizer.model").write_bytes(model_file.getvalue())
    vocab = spm.SentencePieceProcessor(model_proto=model_file.getvalue()).get_piece_size()
    config = LlamaConfig(
        vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512, bos_token_id=BOS, eos_token_id=EOS,
        pad_token_id=0, initializer_range=0.2,  # a wide init makes greedy argmax decisive (no batch-dependent ties)
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.bos_token_id, model.generation_config.eos_token_id = BOS, EOS
    model.save_pretrained(directory)
    return directory


def make_tiny_blip2(directory: str | Path, hidden: int = 32, layers: int = 2, image_size: int = 32, patch: int = 8,
                    query_tokens: int = 4, seed: int = 0) -> Path:
    """Write a tiny BLIP-2 (ViT + Q-Former + a one-layer T5) folder with ``save_pretrained``.

    Args:
        directory: the output folder (created).
        hidden: width of the vision model and the Q-Former.
        layers: layers of each.
        image_size: the vision model's input resolution (MiniGPT-4's is 224).
        patch: patch size.
        query_tokens: Q-Former query tokens (MiniGPT-4's is 32).
        seed: torch seed.
    """
    import torch
    from transformers import Blip2Config, Blip2ForConditionalGeneration

    config = Blip2Config(
        vision_config=dict(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers, num_attention_heads=2,
                           image_size=image_size, patch_size=patch),
        qformer_config=dict(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers, num_attention_heads=2,
                            encoder_hidden_size=hidden, vocab_size=64, max_position_embeddings=64),
        text_config=dict(model_type="t5", vocab_size=64, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_decoder_layers=1,
                         num_heads=2, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1),
        num_query_tokens=query_tokens,
    )
    torch.manual_seed(seed)
    model = Blip2ForConditionalGeneration(config)
    with torch.no_grad():  # a visible spread, so different images give different query outputs
        model.query_tokens.normal_(0.0, 1.0)
    model.save_pretrained(directory)
    return Path(directory)


def make_tiny_projection(path: str | Path, qformer_hidden: int = 32, llm_hidden: int = 48, seed: int = 0) -> Path:
    """Write MiniGPT-4's checkpoint format: ``{"model": {"llama_proj.weight", "llama_proj.bias"}}``.

    Args:
        path: the ``.pth`` file to write.
        qformer_hidden: input width (the Q-Former's hidden size).
        llm_hidden: output width (the Llama's hidden size).
        seed: torch seed.
    """
    import torch

    generator = torch.Generator().manual_seed(seed)
    state = {
        "llama_proj.weight": torch.randn(llm_hidden, qformer_hidden, generator=generator) * 4.0,  # images visibly steer the tiny LLM
        "llama_proj.bias": torch.randn(llm_hidden, generator=generator) * 0.1,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": state}, path)
    return path
