"""CLIP text embeddings of the LMM descriptions, and their per-image average (the paper's t^M_i).

All descriptions of all images are flattened, sorted by length and encoded in batches; for
OpenAI-style text towers (causal mask, pooling at the end-of-text token) each batch is cut to
its longest sequence instead of the fixed 77-token context, which gives bit-for-bit the same
embeddings (a causal token never sees the padding after it) at a fraction of the cost.

Validity: description ``k`` of image ``i`` is used when the describe run for that image
succeeded (``ok``), ``k < num_descriptions`` and the text is not empty. An image with no valid
description keeps an all-False mask row and a zero pooled vector; methods that use text see a
zero text feature for it (reported, and counted in their artifacts) so that every method is
tested on the same images.

What counts as a valid description, re-parsing under a newer parser and the answer policy
(``describe.require_list``) live in :mod:`lmmclf.describe.reading`, which the text key's digest
of the descriptions also comes from.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from lmmclf.describe.reading import Descriptions, read_descriptions

__all__ = ["Descriptions", "read_descriptions", "encode_texts", "encode_tokens", "scatter", "pool"]


def _trimmable(model: Any) -> bool:
    """True for open_clip's built-in causal text tower pooled at the EOT token (OpenAI's design)."""
    from open_clip.model import CLIP

    return isinstance(model, CLIP) and model.text_pool_type == "argmax" and getattr(model, "attn_mask", None) is not None


def encode_tokens(model: Any, tokens: Any):
    """``model.encode_text(tokens)``, cut to the batch's longest sequence when that is exact.

    Args:
        model: an open_clip model.
        tokens: (B, context) token ids from the model's tokenizer.
    """
    if not _trimmable(model):
        return model.encode_text(tokens)
    import torch
    from open_clip.transformer import text_global_pool

    length = int(tokens.argmax(dim=-1).max()) + 1
    tokens = tokens[:, :length]
    cast = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens).to(cast) + model.positional_embedding[:length].to(cast)
    x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
    x = model.ln_final(x)
    # open_clip 3.0 has no text_eos_id and its text_global_pool takes no eos_token_id
    eos = getattr(model, "text_eos_id", None)
    x = text_global_pool(x, tokens, model.text_pool_type, **({} if eos is None else {"eos_token_id": eos}))
    projection = model.text_projection
    if projection is None:
        return x
    return projection(x) if isinstance(projection, torch.nn.Linear) else x @ projection


def encode_texts(model: Any, tokenizer: Callable, texts: Sequence[str], settings, advance: Callable[[int], None] | None = None) -> np.ndarray:
    """Encode ``texts`` longest first; rows of the result follow the input order (float32).

    Args:
        model: an open_clip model in eval mode on ``settings.device``.
        tokenizer: its tokenizer.
        texts: the strings to encode.
        settings: an :class:`~lmmclf.embed.images.EncodeSettings`.
        advance: called with the number of texts finished after each batch.
    """
    import torch

    from lmmclf.devices import autocast

    order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
    out: np.ndarray | None = None
    with torch.inference_mode(), autocast(settings.precision, settings.device):
        for start in range(0, len(order), settings.batch_size):
            rows = order[start : start + settings.batch_size]
            tokens = tokenizer([texts[i] for i in rows]).to(settings.device)
            vectors = encode_tokens(model, tokens).float().cpu().numpy()
            if out is None:
                out = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
            out[rows] = vectors
            if advance:
                advance(len(rows))
    return out if out is not None else np.zeros((0, 0), dtype=np.float32)


def scatter(descriptions: Descriptions, flat: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Place flat description embeddings into ``(N, K, D)`` with an ``(N, K)`` validity mask.

    Args:
        descriptions: the read descriptions (flat rows follow their item-major order).
        flat: (M, D) embeddings of every valid description.
        dim: D (used when there are no descriptions at all).
    """
    n, k = len(descriptions.ids), max(descriptions.capacity, max((len(t) for t in descriptions.texts), default=0))
    table = np.zeros((n, k, dim), dtype=np.float32)
    mask = np.zeros((n, k), dtype=bool)
    row = 0
    for i, texts in enumerate(descriptions.texts):
        count = len(texts)
        table[i, :count] = flat[row : row + count]
        mask[i, :count] = True
        row += count
    return table, mask


def pool(table: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The mean of each image's valid description embeddings; zeros where there are none.

    Args:
        table: (N, K, D) description embeddings.
        mask: (N, K) validity.
    """
    counts = mask.sum(axis=1, keepdims=True).astype(np.float32)
    total = np.einsum("nkd,nk->nd", table, mask.astype(np.float32))
    return np.divide(total, np.maximum(counts, 1.0)).astype(np.float32)
