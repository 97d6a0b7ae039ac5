"""Loading a CLIP model through open_clip, and naming it for cache keys.

Every stage that runs CLIP (embed, zero-shot, finetune) loads it here, through the real
``open_clip.create_model_and_transforms`` factory, so a user's model name means exactly what
it means in open_clip: a built-in architecture plus a pretrained tag (``ViT-L-14-quickgelu`` +
``openai``, the papers' ViT-L/14), a built-in architecture plus a local checkpoint file,
``hf-hub:org/repo`` or ``local-dir:/path``.

The identity that goes into cache keys is the name plus the pretrained tag for built-in
weights, and a hash of the bytes for anything local (a checkpoint file or a ``local-dir:``
folder), so a retrained local model never reuses another model's embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from lmmclf.errors import LmmclfError
from lmmclf.filehash import FileHashCache
from lmmclf.models import local_identity

LOCAL_DIR = "local-dir:"
HF_HUB = "hf-hub:"


@dataclass
class LoadedClip:
    """A CLIP model ready for inference.

    Args:
        model: the open_clip model (eval mode, on the requested device).
        preprocess: the validation transform (PIL image -> normalised tensor).
        tokenizer: text -> token ids (``tokenizer(list_of_str) -> LongTensor``).
        name: the model name as given.
        pretrained: the pretrained tag or file as given (None for schema names).
    """

    model: Any
    preprocess: Callable
    tokenizer: Callable
    name: str
    pretrained: str | None

    @property
    def embed_dim(self) -> int:
        """The dimension of the joint embedding space (768 for ViT-L/14)."""
        projection = getattr(self.model.visual, "proj", None)
        if projection is not None:
            return int(projection.shape[1])
        return int(self.model.visual.output_dim)


def resolve_device(device: str | None) -> str:
    """``"auto"`` (or None) -> ``"cuda"`` if available, else ``"mps"`` if available, else ``"cpu"``.

    Args:
        device: a torch device string or ``"auto"``.
    """
    import torch

    if device in (None, "", "auto"):
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise LmmclfError(f"Device '{device}' was requested but CUDA is not available; use --device cpu.")
    return device


def _schema(model: str) -> str | None:
    if model.startswith(LOCAL_DIR):
        return "local-dir"
    if model.startswith(HF_HUB):
        return "hf-hub"
    return None


def load_clip(model: str, pretrained: str | None, device: str = "auto") -> LoadedClip:
    """Load an open_clip model, its validation transform and its tokenizer.

    Args:
        model: an open_clip name (``ViT-L-14-quickgelu``), ``hf-hub:org/repo`` or ``local-dir:/path``.
        pretrained: a pretrained tag (``openai``) or a local checkpoint file; ignored (must be
            None or empty) for ``hf-hub:`` and ``local-dir:`` names, which carry their weights.
        device: a torch device or ``"auto"``.

    Raises:
        LmmclfError: unknown name or tag, missing folder or file, or weights that cannot be fetched.
    """
    import open_clip

    schema = _schema(model)
    if schema == "local-dir":
        folder = Path(model[len(LOCAL_DIR):]).expanduser()
        if not (folder / "open_clip_config.json").is_file():
            raise LmmclfError(f"CLIP folder {folder} has no open_clip_config.json (needed for a 'local-dir:' model).")
    if schema is None and pretrained is None:
        raise LmmclfError(
            f"CLIP model '{model}' has no pretrained weights given: set embed.clip_pretrained "
            "(e.g. openai) or use a local-dir:/hf-hub: model."
        )
    if pretrained and Path(pretrained).expanduser().is_file():
        pretrained = str(Path(pretrained).expanduser())  # the file clip_identity hashed (open_clip does not expand ~)
    torch_device = resolve_device(device)
    try:
        clip, _, preprocess = open_clip.create_model_and_transforms(
            model, pretrained=None if schema else pretrained, device=torch_device
        )
        tokenizer = open_clip.get_tokenizer(model)
    except (RuntimeError, ValueError, FileNotFoundError, OSError) as exc:
        raise LmmclfError(f"Could not load CLIP model '{model}' (pretrained {pretrained!r}): {exc}") from exc
    clip.eval()
    return LoadedClip(model=clip, preprocess=preprocess, tokenizer=tokenizer, name=model, pretrained=pretrained)


def clip_identity(model: str, pretrained: str | None, hashes: FileHashCache) -> dict[str, Any]:
    """What identifies a CLIP model in cache keys.

    Args:
        model: the model name as given to :func:`load_clip`.
        pretrained: the pretrained tag or checkpoint file.
        hashes: the file-hash memo (local folders and files are identified by their bytes).

    Raises:
        LmmclfError: a ``local-dir:`` folder or a checkpoint file that does not exist.
    """
    schema = _schema(model)
    if schema == "local-dir":
        folder = Path(model[len(LOCAL_DIR):]).expanduser()
        if not folder.is_dir():
            raise LmmclfError(f"CLIP folder {folder} does not exist (from model name '{model}').")
        return {"clip": "local-dir", "name": folder.name, "local_sha256": local_identity(folder, hashes)}
    if schema == "hf-hub":
        # open_clip fetches hf-hub weights at the repo's main revision; the name is all it exposes.
        return {"clip": model, "pretrained": None}
    if pretrained and Path(pretrained).expanduser().is_file():
        checkpoint = Path(pretrained).expanduser()
        return {"clip": model, "pretrained_sha256": hashes.hash(checkpoint)}
    return {"clip": model, "pretrained": pretrained}


def resolve_precision(precision: str, device: str) -> str:
    """``auto`` -> ``fp16`` on CUDA (every CUDA GPU has fast fp16; OpenAI trained CLIP in fp16), else ``fp32``.

    Args:
        precision: ``auto``, ``fp32``, ``fp16`` or ``bf16``.
        device: the resolved torch device.
    """
    if precision == "auto":
        return "fp16" if device.startswith("cuda") else "fp32"
    return precision


def autocast(precision: str, device: str):
    """A context manager running CLIP under autocast at ``precision`` (a no-op for fp32).

    Args:
        precision: a resolved precision (``fp32``, ``fp16``, ``bf16``).
        device: the resolved torch device.
    """
    import contextlib

    import torch

    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.float16 if precision == "fp16" else torch.bfloat16
    return torch.autocast(device_type=device.split(":")[0], dtype=dtype)
