"""Tiny random LMMs of the tiling families: each image becomes its own number of crops.

LLaVA-OneVision, Idefics3, SmolVLM and InternVL, built like ``tiny_families`` (the layout a user
downloads, real architecture and processor classes). ``TILING_FAMILIES`` joins ``FAMILIES``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

# name -> (builder, batching mechanism it stands for, runs in the fast suite)
TILING_FAMILIES: dict[str, tuple[Callable[..., Path], str, bool]] = {}
