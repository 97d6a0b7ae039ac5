"""The in-progress checkpoint of one fine-tuning run: everything needed to continue it exactly.

A checkpoint holds the trainable weights (tail + head), the optimizer, LR-schedule and
grad-scaler states, the RNG states, the position (epoch and step within the epoch), the
running sums of the unfinished epoch and the per-epoch metrics so far. The data order of
every epoch is a function of (seed, epoch), so a run continued from a checkpoint sees the
same batches, in the same order, as an uninterrupted one.

It lives at ``store.partial_path("finetune", key, "ckpt.pt")`` and is written atomically
(temp file beside it, then ``os.replace``): a crash while saving leaves the previous one.
"""

from __future__ import annotations

import os
import random
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch

FORMAT = 1


def rng_state() -> dict[str, Any]:
    """The state of every RNG a training step may draw from."""
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured (CUDA only if both runs see a GPU)."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` atomically to ``path``.

    Args:
        path: the checkpoint file.
        state: what :meth:`Trainer.state` returns (tensors, plain values).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f"{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        torch.save({"format": FORMAT, **state}, temp)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    """The checkpoint at ``path``, or None if there is none or it is from another format."""
    if not path.exists():
        return None
    # weights_only=False: the state holds numpy and python RNG states; the file is our own.
    state = torch.load(path, map_location="cpu", weights_only=False)
    if state.get("format") != FORMAT:
        return None
    return state
