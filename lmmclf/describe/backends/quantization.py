"""Weight quantization of the LMMs ``describe`` runs in-process (``hf``, ``minigpt4``).

The modes of ``describe.quantize`` and what each needs:

- ``none``: the weights in ``describe.dtype``;
- ``int8-torchao`` / ``int4-torchao``: torchao weight-only schemes through transformers'
  ``TorchAoConfig``. The weights stay ordinary tensors (subclasses), so the static KV cache and
  ``torch.compile`` work (``--compile``): the path that makes a 13B model fast on a 24 GB card.
  int8 runs on CUDA and the CPU; int4 uses the tinygemm kernel (bfloat16, CUDA compute capability
  8.0+: an RTX 3090 has it, a T4 or V100 does not, where ``auto`` takes bitsandbytes' 4-bit instead);
- ``8bit`` / ``4bit``: bitsandbytes LLM.int8 / NF4. CUDA only, eager decoding only (transformers
  cannot compile them), so several times slower than torchao with ``--compile``;
- ``auto``: on CUDA the widest format whose weights fit the free memory (:func:`choose_quantization`),
  the torchao schemes when torchao is installed, else bitsandbytes; on the CPU ``none``. A
  checkpoint that is already quantized (its config has a ``quantization_config``: AWQ, GPTQ, a
  saved bitsandbytes or torchao model) is loaded as it is: ``auto`` adds nothing and an explicit
  mode is refused.

The configured mode enters the describe key as written (``auto`` stays ``auto``), so a key is the
same on every machine; the mode ``auto`` resolved to is in the run summary.
"""

from __future__ import annotations

import importlib.util
from typing import Any, Callable

from lmmclf.errors import LmmclfError

GiB = 1 << 30
MODES = ("none", "int8-torchao", "int4-torchao", "8bit", "4bit", "auto")
TORCHAO = ("int8-torchao", "int4-torchao")
BITSANDBYTES = ("8bit", "4bit")
PREQUANTIZED = "pre-quantized"  # what auto resolves to for a checkpoint saved quantized
# weight bytes per parameter (int4: 4 bits plus a scale and zero point per group of 128)
BYTES_PER_PARAMETER = {"none": 2.0, "int8-torchao": 1.0, "8bit": 1.0, "int4-torchao": 0.55, "4bit": 0.55}
INT4_GROUP_SIZE = 128  # torchao's default; layers whose input width it does not divide stay in 16 bits


def torchao_installed() -> bool:
    return importlib.util.find_spec("torchao") is not None


def choose_quantization(parameters: int, free_bytes: int, headroom: int = 2 * GiB, torchao: bool | None = None,
                        int4_kernel: bool = True) -> str:
    """The widest weight format whose weights (+15% and ``headroom``) fit in ``free_bytes``.

    Args:
        parameters: the model's parameter count.
        free_bytes: free GPU memory.
        headroom: memory kept for activations and the KV cache of a small batch.
        torchao: use the torchao schemes (compile-friendly); default: whether torchao is installed.
        int4_kernel: the GPU runs torchao's int4 kernel (compute capability 8.0+); else 4-bit is bitsandbytes'.

    Raises:
        LmmclfError: not even 4-bit fits.
    """
    torchao = torchao_installed() if torchao is None else torchao
    four_bit = "int4-torchao" if torchao and int4_kernel else "4bit"
    for mode in ("none", "int8-torchao" if torchao else "8bit", four_bit):
        if parameters * BYTES_PER_PARAMETER[mode] * 1.15 + headroom <= free_bytes:
            return mode
    raise LmmclfError(
        f"The describe model ({parameters / 1e9:.1f}B parameters) does not fit in {free_bytes / GiB:.1f} GiB of free GPU "
        "memory even in 4-bit; free the GPU, use a smaller --model, or serve it with vLLM on more GPUs (--backend openai)."
    )


def int4_kernel_runs(device: str) -> bool:
    """Whether torchao's int4 kernel (tinygemm: bfloat16 tensor cores) runs on ``device``: compute capability 8.0+ (RTX 30xx on)."""
    import torch

    return torch.cuda.get_device_capability(torch.device(device))[0] >= 8


def parameter_count(config: Any, auto_class: Any) -> int:
    """Parameters of the model ``auto_class`` builds from ``config``, counted on the meta device (nothing allocated)."""
    import torch

    with torch.device("meta"):
        model = auto_class.from_config(config)
    return sum(p.numel() for p in model.parameters())


def pick_quantization(mode: str, device: str, model_config: Any, model: str, count_parameters: Callable[[], int]) -> str:
    """The mode to load with: ``mode`` checked against the device and the checkpoint, or ``auto`` resolved.

    Args:
        mode: ``describe.quantize``.
        device: the resolved device (``cpu``, ``cuda``, ``cuda:1``).
        model_config: the model's transformers config (a saved ``quantization_config`` means pre-quantized).
        model: ``describe.model`` as given, for messages.
        count_parameters: the model's parameter count (:func:`parameter_count`), called only when ``auto`` needs it.

    Raises:
        LmmclfError: the mode cannot work here, in one sentence naming what to pass instead.
    """
    saved = getattr(model_config, "quantization_config", None)
    if saved is not None:
        if mode in ("auto", "none"):
            return PREQUANTIZED
        method = saved.get("quant_method") if isinstance(saved, dict) else getattr(saved, "quant_method", "?")
        raise LmmclfError(f"describe.model '{model}' is already quantized ({method}); pass --quantize auto to load it as saved.")
    cuda = device.startswith("cuda")
    if mode in BITSANDBYTES and not cuda:
        raise LmmclfError(f"--quantize {mode} needs a CUDA GPU (bitsandbytes); on the CPU pass --quantize int8-torchao or none.")
    if mode == "int4-torchao" and not cuda:
        raise LmmclfError("--quantize int4-torchao needs a CUDA GPU (torchao's int4 kernel); on the CPU pass --quantize int8-torchao or none.")
    if mode == "int4-torchao" and not int4_kernel_runs(device):
        raise LmmclfError("--quantize int4-torchao needs a GPU of compute capability 8.0 or newer (RTX 30xx, A100 and later) "
                          "for torchao's int4 kernel; pass --quantize int8-torchao or 4bit.")
    if mode != "auto":
        return mode
    if not cuda:
        return "none"
    import torch

    free, _ = torch.cuda.mem_get_info(torch.device(device))
    return choose_quantization(count_parameters(), free, int4_kernel=int4_kernel_runs(device))


def compute_dtype(mode: str, configured: str, resolved):
    """The dtype to load with: torchao's int4 kernel computes in bfloat16, which ``--dtype auto`` becomes.

    Args:
        mode: the picked quantization mode.
        configured: ``describe.dtype`` as written.
        resolved: the torch dtype ``configured`` resolved to on this device.
    """
    import torch

    if mode != "int4-torchao" or resolved == torch.bfloat16:
        return resolved
    if configured != "auto":
        raise LmmclfError(f"--quantize int4-torchao computes in bfloat16; pass --dtype bfloat16 or auto, not {configured}.")
    return torch.bfloat16


def transformers_config(mode: str, dtype) -> Any | None:
    """The ``quantization_config`` for ``from_pretrained`` (None: load the weights as they are).

    Args:
        mode: the picked quantization mode.
        dtype: the compute dtype (bitsandbytes 4-bit computes in it).

    Raises:
        LmmclfError: the library the mode needs is not installed (with the install command).
    """
    if mode in ("none", PREQUANTIZED):
        return None
    if mode in TORCHAO:
        return _torchao_config(mode)
    if importlib.util.find_spec("bitsandbytes") is None:
        raise LmmclfError(
            f"--quantize {mode} needs bitsandbytes, which is not installed: `pip install bitsandbytes` "
            "(or `pip install 'lmmclf[quant]'`), or pass --quantize int8-torchao or none."
        )
    from transformers import BitsAndBytesConfig

    if mode == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype)


def _torchao_config(mode: str):
    if not torchao_installed():
        raise LmmclfError(
            f"--quantize {mode} needs torchao, which is not installed: `pip install 'lmmclf[torchao]'` "
            "(torchao's release must match your torch; see docs/describe.md), or pass --quantize none."
        )
    try:
        from torchao.quantization import Int4WeightOnlyConfig, Int8WeightOnlyConfig
        from transformers import TorchAoConfig
    except ImportError as exc:  # a torchao built for another torch release
        raise LmmclfError(f"--quantize {mode}: torchao is installed but cannot be imported ({exc}); install the torchao release "
                          "made for your torch (see docs/describe.md), or pass --quantize none.") from exc

    if mode == "int8-torchao":
        return TorchAoConfig(Int8WeightOnlyConfig())
    # tile_packed_to_4d is tinygemm's layout (CUDA, bfloat16); torchao's default "plain" needs the separate mslk kernels
    return TorchAoConfig(Int4WeightOnlyConfig(group_size=INT4_GROUP_SIZE, int4_packing_format="tile_packed_to_4d"))


def check_compile(mode: str) -> None:
    """Refuse ``--compile`` with weights transformers cannot compile (bitsandbytes layers).

    Raises:
        LmmclfError: naming the modes that do compile.
    """
    if mode in BITSANDBYTES:
        alternative = "int8-torchao" if mode == "8bit" else "int4-torchao"
        raise LmmclfError(f"describe.compile does not work with bitsandbytes {mode} weights (transformers cannot compile them); "
                          f"pass --quantize {alternative} (pip install 'lmmclf[torchao]') or --no-compile.")
