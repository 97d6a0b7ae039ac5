"""Splitting an open_clip vision tower into a frozen trunk and a trainable tail.

An open_clip ``VisionTransformer`` computes ``stem -> blocks[0..L-1] -> ln_post -> pool ->
@ proj``. With ``unlocked_blocks = N`` the trunk is the stem (patch embedding, class and
position embeddings, ``ln_pre``) and the first ``L - N`` blocks; the tail is the last ``N``
blocks, ``ln_post`` and ``proj``. The tail's output is the image embedding x_i of the paper
(the output of CLIP's image encoder), which the classification head and the prototype loss
both read.

With ``unlocked_blocks = 0`` (paper 2's narrow reading: only ``ln_post``, ``proj`` and the
head train) the trunk also pools, so it hands the tail one vector of ``width`` floats per
image instead of ``tokens x width`` (see :func:`trunk_output`): the tail then reads nothing
else, and the trunk cache shrinks by the number of tokens (257x for ViT-L/14).

Trunk and tail share the tower's modules (no copy), so ``tail(trunk(images))`` is exactly
the tower's ``forward``. The trunk always runs in eval mode without gradients: its output
for an image never changes during training, which is what makes the trunk cache valid.

Towers with an attention pooler (CoCa) or a timm / ResNet trunk are rejected with a clear
error: their pooling does not split this way.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from lmmclf.errors import LmmclfError


@dataclass(frozen=True)
class SplitPoint:
    """Where the tower is cut.

    Args:
        layers: number of transformer blocks in the tower.
        unlocked_blocks: trailing blocks in the trainable tail.
    """

    layers: int
    unlocked_blocks: int
    output: str = "tokens"  # what the trunk returns: see :func:`trunk_output`

    @property
    def frozen_blocks(self) -> int:
        return self.layers - self.unlocked_blocks

    def identity(self) -> dict[str, int | str]:
        """What goes into keys: the trunk's output depends on how many blocks it runs and,
        with none unlocked, on what it pools (named only then, so token caches keep their keys)."""
        identity: dict[str, int | str] = {"layers": self.layers, "frozen_blocks": self.frozen_blocks}
        if self.output != "tokens":
            identity["output"] = self.output
        return identity


def trunk_output(visual: nn.Module, unlocked_blocks: int) -> str:
    """What the trunk hands the tail.

    - ``tokens``: every token ``(N, L, W)``; the tail runs blocks, ``ln_post``, pooling, ``proj``.
      Always with at least one unlocked block.
    - ``pooled``: the pooled token *before* ``ln_post`` ``(N, W)``; the tail runs ``ln_post`` and
      ``proj``. Exact when the tower normalises after pooling (``final_ln_after_pool``) or pools
      the class token: LayerNorm acts on each token alone, so ``ln_post(x)[:, 0] == ln_post(x[:, 0])``.
    - ``normalized-mean``: average pooling after ``ln_post`` (mean of normalised tokens is not the
      normalisation of the mean). ``ln_post`` is a normalisation, which has no parameters, then an
      elementwise affine; the mean commutes with the affine, so the trunk stores the mean of the
      *normalised* patch tokens and the tail applies ``ln_post``'s weight and bias.

    A tower whose ``ln_post`` is not a LayerNorm keeps ``tokens`` with average pooling.
    """
    if unlocked_blocks > 0:
        return "tokens"
    if getattr(visual, "final_ln_after_pool", False) or visual.pool_type == "tok":
        return "pooled"
    if isinstance(visual.ln_post, nn.LayerNorm):
        return "normalized-mean"
    return "tokens"


def vision_tower(model: nn.Module) -> nn.Module:
    """The ``VisionTransformer`` of an open_clip model, checked to be splittable.

    Args:
        model: an open_clip ``CLIP`` (or a bare ``VisionTransformer``).

    Raises:
        LmmclfError: the tower is not a plain open_clip ViT with token or average pooling.
    """
    from open_clip.transformer import VisionTransformer

    visual = getattr(model, "visual", model)
    if not isinstance(visual, VisionTransformer):
        raise LmmclfError(
            f"finetune supports open_clip ViT image towers only; this model's tower is a {type(visual).__name__} "
            "(timm and ResNet towers cannot be split into trunk and tail): choose a ViT CLIP model in embed.clip_model."
        )
    if getattr(visual, "attn_pool", None) is not None:
        raise LmmclfError(
            "finetune does not support vision towers with an attentional pooler (CoCa-style models): "
            "choose a CLIP ViT with token or average pooling in embed.clip_model."
        )
    if visual.pool_type not in ("tok", "avg"):
        raise LmmclfError(f"finetune needs a pooled image embedding, but the tower's pool_type is '{visual.pool_type}'.")
    if visual.proj is None:
        raise LmmclfError("The CLIP vision tower has no output projection (pruned head); load the full model.")
    if not hasattr(visual, "_embeds"):
        raise LmmclfError("This open_clip version's VisionTransformer has no _embeds(); install open_clip_torch >= 2.24.")
    return visual


class FrozenTrunk(nn.Module):
    """The stem and the first ``frozen_blocks`` blocks; returns tokens ``(N, L, W)``, batch first,
    or with ``output`` other than ``tokens`` one pooled vector ``(N, W)`` per image.

    Args:
        visual: the open_clip ``VisionTransformer``.
        frozen_blocks: how many leading blocks belong to the trunk.
        output: from :func:`trunk_output`.
    """

    def __init__(self, visual: nn.Module, frozen_blocks: int, output: str = "tokens"):
        super().__init__()
        # The tower itself is held outside the module tree (in a list): registering it would
        # make trunk.eval() / trunk.parameters() reach the tail's blocks too.
        self._tower = [visual]
        self.stem = nn.ModuleList([visual.conv1, visual.patch_dropout, visual.ln_pre])
        self.blocks = nn.ModuleList(list(visual.transformer.resblocks)[:frozen_blocks])
        self.frozen_blocks = frozen_blocks
        self.output = output
        self.pool_type = visual.pool_type
        # only the constants of ln_post: its parameters belong to the tail, which trains them
        self.norm_shape = tuple(getattr(visual.ln_post, "normalized_shape", ()))
        self.norm_eps = getattr(visual.ln_post, "eps", 0.0)
        self.batch_first = getattr(visual.transformer, "batch_first", True)

    @property
    def visual(self) -> nn.Module:
        return self._tower[0]

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.visual._embeds(images)  # patch embedding, class and position embeddings, ln_pre
        if not self.batch_first:
            x = x.transpose(0, 1)
        for block in self.blocks:
            x = block(x)
        if not self.batch_first:
            x = x.transpose(0, 1)
        if self.output == "pooled":
            return _global_pool(x, self.pool_type)
        if self.output == "normalized-mean":
            # ln_post without its affine, in float32 as open_clip's LayerNorm runs under autocast
            normalized = nn.functional.layer_norm(x.float(), self.norm_shape, None, None, self.norm_eps)
            return _global_pool(normalized, "avg")
        return x

    def train(self, mode: bool = True) -> "FrozenTrunk":
        # Always eval: patch dropout (and any other train-only behaviour) must not change
        # the frozen output, or the cache would not equal the full forward.
        return super().train(False)


class VisionTail(nn.Module):
    """The last blocks, ``ln_post``, pooling and ``proj``: tokens ``(N, L, W)`` -> embedding ``(N, D)``;
    with no blocks and a pooled trunk output ``(N, W)``, only ``ln_post`` (or its affine) and ``proj``.

    Args:
        visual: the open_clip ``VisionTransformer`` (its modules are shared, not copied).
        unlocked_blocks: how many trailing blocks belong to the tail.
        output: what the trunk hands over, from :func:`trunk_output`.
    """

    def __init__(self, visual: nn.Module, unlocked_blocks: int, output: str = "tokens"):
        super().__init__()
        layers = len(visual.transformer.resblocks)
        self.blocks = nn.ModuleList(list(visual.transformer.resblocks)[layers - unlocked_blocks :])
        self.ln_post = visual.ln_post
        self.proj = visual.proj
        self.pool_type = visual.pool_type
        self.final_ln_after_pool = bool(getattr(visual, "final_ln_after_pool", False))
        self.batch_first = getattr(visual.transformer, "batch_first", True)
        self.grad_checkpointing = False
        self.input = output

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.input == "pooled":
            return self.ln_post(tokens) @ self.proj
        if self.input == "normalized-mean":
            pooled = tokens
            if self.ln_post.weight is not None:
                pooled = pooled * self.ln_post.weight
            if self.ln_post.bias is not None:
                pooled = pooled + self.ln_post.bias
            return pooled @ self.proj
        x = tokens if self.batch_first else tokens.transpose(0, 1)
        for block in self.blocks:
            if self.grad_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        if not self.batch_first:
            x = x.transpose(0, 1)
        # Same order as VisionTransformer._pool for towers without an attention pooler.
        if self.final_ln_after_pool:
            pooled = self.ln_post(_global_pool(x, self.pool_type))
        else:
            pooled = _global_pool(self.ln_post(x), self.pool_type)
        return pooled @ self.proj


def _global_pool(x: torch.Tensor, pool_type: str) -> torch.Tensor:
    """open_clip's ``VisionTransformer._global_pool`` (its pooled half): patch mean or class token."""
    return x[:, 1:].mean(dim=1) if pool_type == "avg" else x[:, 0]


class FinetuneModel(nn.Module):
    """The trainable part: tail (ending in CLIP's image embedding) plus a linear head of N_c outputs.

    Args:
        tail: the :class:`VisionTail`.
        embed_dim: D, the CLIP embedding size.
        num_classes: N_c.
    """

    def __init__(self, tail: VisionTail, embed_dim: int, num_classes: int):
        super().__init__()
        self.tail = tail
        self.head = nn.Linear(embed_dim, num_classes)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embedding = self.tail(tokens)
        return embedding, self.head(embedding)


def split_tower(model: nn.Module, unlocked_blocks: int) -> tuple[FrozenTrunk, VisionTail, SplitPoint]:
    """Cut an open_clip model's vision tower; freeze everything but the tail.

    Args:
        model: an open_clip ``CLIP`` model (its text tower is ignored).
        unlocked_blocks: trailing transformer blocks to train (0 trains only ln_post and proj).

    Raises:
        LmmclfError: unsupported tower, or ``unlocked_blocks`` outside ``0..layers``.
    """
    visual = vision_tower(model)
    layers = len(visual.transformer.resblocks)
    if not 0 <= unlocked_blocks <= layers:
        raise LmmclfError(
            f"--unlocked-blocks must be between 0 and {layers} (the tower's number of blocks); got {unlocked_blocks}."
        )
    split = SplitPoint(layers=layers, unlocked_blocks=unlocked_blocks, output=trunk_output(visual, unlocked_blocks))
    for param in model.parameters():
        param.requires_grad_(False)
    tail = VisionTail(visual, unlocked_blocks, split.output)
    for param in tail.parameters():
        param.requires_grad_(True)
    return FrozenTrunk(visual, split.frozen_blocks, split.output), tail, split
