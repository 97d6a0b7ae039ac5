"""Devices and precision: the one place every stage resolves ``auto`` and enters autocast.

The rules differ between stages on purpose, and each difference is an argument here, not a
second function:

- ``resolve_device(device, mps=...)``: ``auto`` is CUDA, else Apple's MPS, else the CPU. The
  describe ``hf`` backend passes ``mps=False``: its dtype, quantization and batch-size rules
  are written for CUDA or the CPU, and LMM generation on MPS is untested.
- ``resolve_precision(precision, device, prefer_bf16=...)``: ``auto`` is fp16 on CUDA (embed:
  every CUDA GPU has fast fp16 and OpenAI trained CLIP in fp16; fp16 inference needs no grad
  scaler), else fp32. Fine-tuning passes ``prefer_bf16=True``: bf16 on GPUs that have it
  (no overflow, no scaler), fp16 with a grad scaler on older GPUs.
- ``torch_dtype(name, device)``: the dtype a model is loaded in (describe ``--dtype``):
  ``auto`` is float16 on CUDA, float32 elsewhere.
- ``autocast(precision, device)``: the mixed-precision context (a no-op for fp32). A caller
  that needs a factory (the fine-tuning loop enters it every step) uses
  ``functools.partial(autocast, precision, device)``.
"""

from __future__ import annotations

import contextlib
from typing import Any

from lmmclf.errors import LmmclfError

PRECISIONS = ("fp32", "fp16", "bf16")
_TORCH_DTYPES = {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32",
                 "float16": "float16", "bfloat16": "bfloat16", "float32": "float32"}


def device_type(device: Any) -> str:
    """``"cuda"`` for ``"cuda:1"`` or ``torch.device("cuda", 1)``; the same for every other device."""
    return getattr(device, "type", None) or str(device).split(":")[0]


def resolve_device(device: str | None, mps: bool = True) -> str:
    """``"auto"`` (or None, "") -> ``"cuda"`` if available, else ``"mps"`` if allowed and available, else ``"cpu"``.

    Args:
        device: a torch device string or ``"auto"``.
        mps: whether ``auto`` may pick Apple's MPS (False for the describe ``hf`` backend).

    Raises:
        LmmclfError: a CUDA device was asked for on a machine without one.
    """
    import torch

    if device in (None, "", "auto"):
        if torch.cuda.is_available():
            return "cuda"
        if mps and getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise LmmclfError(f"--device {device} was asked for but no CUDA GPU is visible; pass --device cpu.")
    return device


def resolve_precision(precision: str, device: Any, prefer_bf16: bool = False) -> str:
    """The precision ``auto`` means on ``device``; any other value is returned as given.

    Args:
        precision: ``auto``, ``fp32``, ``fp16`` or ``bf16``.
        device: the resolved device (a string or a ``torch.device``).
        prefer_bf16: on CUDA, bf16 where the GPU supports it (fine-tuning); else always fp16 (inference).
    """
    if precision != "auto":
        return precision
    if device_type(device) != "cuda":
        return "fp32"
    if prefer_bf16:
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp16"


def torch_dtype(dtype: str, device: Any):
    """The torch dtype to load a model in: ``auto`` is float16 on CUDA and float32 elsewhere.

    Args:
        dtype: ``auto``, a torch name (``float16``, ``bfloat16``, ``float32``) or a precision (``fp16``...).
        device: the resolved device.
    """
    import torch

    name = resolve_precision("auto", device) if dtype == "auto" else dtype  # the inference rule: fp16 on CUDA
    return getattr(torch, _TORCH_DTYPES[name])


def autocast(precision: str, device: Any):
    """A context manager running the enclosed code under autocast at ``precision`` (a no-op for fp32).

    Args:
        precision: a resolved precision (``fp32``, ``fp16``, ``bf16``).
        device: the resolved device (a string or a ``torch.device``).
    """
    import torch

    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.float16 if precision == "fp16" else torch.bfloat16
    return torch.autocast(device_type=device_type(device), dtype=dtype)
