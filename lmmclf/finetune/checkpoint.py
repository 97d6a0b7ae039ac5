"""The in-progress checkpoint of one fine-tuning run: everything needed to continue it exactly.

A checkpoint holds the trainable weights (tail + head), the optimizer, LR-schedule and
grad-scaler states, the RNG states, the position (epoch and step within the epoch), the
running sums of the unfinished epoch and the per-epoch metrics so far. The data order of
every epoch is a function of (seed, epoch), so a run continued from a checkpoint sees the
same batches, in the same order, as an uninterrupted one.

It lives at ``store.partial_path("finetune", key, "ckpt.pt")`` and is written atomically
(temp file beside it, then ``os.replace``): a crash or a full disk while saving leaves the
previous one.

The file is read with ``torch.load(weights_only=True)`` only: a checkpoint sits in a cache
others may share or copy, so it holds nothing but tensors, numbers, strings, lists and dicts
(the numpy and python RNG states are converted). A checkpoint that cannot be read that way
(a pickle payload, garbage, a truncated or empty file, another format) is reported, renamed
to ``<key>.bad-<time>.ckpt.pt`` (kept for inspection; ``cache gc`` finds it by ``*.bad-*``,
resume never looks at it) and training starts fresh.
"""

from __future__ import annotations

import io
import os
import random
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.markup import escape

from lmmclf.console import console
from lmmclf.errors import storage_error

FORMAT = 2  # 1: a full pickle (loaded with weights_only=False); 2: weights_only-safe contents

# The top-level fields and their types; anything else is not one of our checkpoints.
_FIELDS = {
    "seed": int, "settings": dict, "epoch": int, "step": int, "sums": dict, "curves": dict,
    "last_predictions": list, "model": dict, "optimizer": dict, "schedule": dict, "scaler": dict, "rng": dict,
}


def rng_state() -> dict[str, Any]:
    """The state of every RNG a training step may draw from, as tensors and plain values."""
    name, keys, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    version, internal, gauss_next = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"name": str(name), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)},
        "python": {"version": int(version), "internal": list(internal), "gauss_next": gauss_next},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured (CUDA only if both runs see a GPU)."""
    numpy_state, python_state = state["numpy"], state["python"]
    keys = np.asarray(numpy_state["keys"].numpy(), dtype=np.uint32)
    torch.set_rng_state(state["torch"])
    np.random.set_state((numpy_state["name"], keys, numpy_state["pos"], numpy_state["has_gauss"],
                         numpy_state["cached_gaussian"]))
    random.setstate((python_state["version"], tuple(python_state["internal"]), python_state["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` atomically to ``path``.

    The bytes are made in memory and written with Python's file I/O, so a full disk is an
    ``OSError`` (torch's C++ writer reports it as ``RuntimeError: basic_ios::clear``).

    Args:
        path: the checkpoint file.
        state: what :meth:`Trainer.state` returns (tensors, plain values).

    Raises:
        StorageError: the file could not be written (full disk, read-only directory); the
            previous checkpoint is left as it was.
    """
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, **state}, buffer)
    temp = path.with_name(f"{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(temp, "wb") as handle:
            handle.write(buffer.getbuffer())
            handle.flush()
            os.fsync(handle.fileno())  # hours of training: the rename must not outrun the data
        os.replace(temp, path)
    except OSError as exc:
        raise storage_error(exc, path) from exc
    finally:
        try:
            temp.unlink(missing_ok=True)
        except OSError:
            pass


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    """The checkpoint at ``path``, or None if there is none or it cannot be loaded safely.

    An unloadable file is reported and moved aside (:func:`set_aside`), so the run starts fresh.
    """
    if not path.exists():
        return None
    try:
        with warnings.catch_warnings():  # torch warns about foreign pickle protocols; the file is reported below
            warnings.simplefilter("ignore")
            # weights_only: unpickling anything but tensors and plain containers is refused, never run
            state = torch.load(path, map_location="cpu", weights_only=True)
        _check(state)
    except Exception as exc:  # noqa: BLE001 - any failure means the same: not a checkpoint we can use
        set_aside(path, _reason(exc))
        return None
    return state


def set_aside(path: Path, reason: str) -> Path | None:
    """Rename an unusable checkpoint out of resume's way and say so in one sentence.

    Returns:
        the new path, or None if it could not be moved (then it is left for the next save to replace).
    """
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = path.name.replace(".partial.", f".bad-{stamp}.", 1) if ".partial." in path.name else f"{path.name}.bad-{stamp}"
    target = path.with_name(name)
    try:
        os.replace(path, target)
    except OSError as exc:
        console.print(f"[yellow]Warning[/]: checkpoint {escape(str(path))} cannot be used ({escape(str(reason))}) and could not be moved "
                      f"aside ({exc.strerror or exc}); training starts fresh.", soft_wrap=True)
        return None
    console.print(f"[yellow]Warning[/]: checkpoint {escape(str(path))} cannot be used ({escape(str(reason))}); moved it to {escape(target.name)} "
                  "and training starts fresh.", soft_wrap=True)
    return target


def _check(state: Any) -> None:
    if not isinstance(state, dict):
        raise ValueError(f"holds a {type(state).__name__}, not a dict")
    if state.get("format") != FORMAT:
        raise ValueError(f"format {state.get('format')!r}, expected {FORMAT}")
    for name, kind in _FIELDS.items():
        if not isinstance(state.get(name), kind) or isinstance(state.get(name), bool):
            raise ValueError(f"field '{name}' is missing or not a {kind.__name__}")


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValueError) and not isinstance(exc, UnicodeError):
        return str(exc).splitlines()[0][:200] if str(exc) else "unreadable"
    if "Weights only load failed" in str(exc) or type(exc).__name__ == "UnpicklingError":
        return "it holds Python objects beyond tensors and plain values: an older lmmclf's format, or code"
    if isinstance(exc, EOFError) or (isinstance(exc, RuntimeError) and "zip" in str(exc).lower()):
        return "it is empty, truncated or not a checkpoint file"
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else 'unreadable'}"
