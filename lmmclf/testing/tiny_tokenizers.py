"""Byte-level BPE tokenizers with a model family's special tokens, trained in memory for tiny models.

Shared by the family builders (``tiny_families``, ``tiny_families_tiling``): each family differs in
its special tokens, its BOS (or none) and whether the EOS is appended, which is what batching and
the "no second BOS" rule depend on.
"""

from __future__ import annotations

from typing import Any

from lmmclf.testing.tiny_lmm import _corpus


def train_tokenizer(specials: list[str], bos: str | None, eos: str, pad: str, unk: str | None = None,
                    append_eos: bool = False, vocab_size: int = 320, **extra: Any):
    """A byte-level BPE tokenizer with a family's special tokens, trained in memory.

    Args:
        specials: special tokens, ids 0.. in this order.
        bos: the BOS token the tokenizer prepends (None: none, as Qwen and T5).
        eos: the end-of-sequence token.
        pad: the pad token.
        unk: the unknown token, if the family has one.
        append_eos: append ``eos`` to every text (T5).
        vocab_size: the BPE vocabulary size.
        extra: further ``PreTrainedTokenizerFast`` attributes (``image_token``...).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=unk))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_corpus(), trainer)
    if bos is not None:
        tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
                                                           special_tokens=[(bos, specials.index(bos))])
    elif append_eos:
        tok.post_processor = processors.TemplateProcessing(single=f"$A {eos}", pair=f"$A {eos} $B {eos}",
                                                           special_tokens=[(eos, specials.index(eos))])
    names = {"bos_token": bos, "eos_token": eos, "pad_token": pad, "unk_token": unk}
    return PreTrainedTokenizerFast(tokenizer_object=tok, padding_side="left", **{k: v for k, v in names.items() if v}, **extra)
