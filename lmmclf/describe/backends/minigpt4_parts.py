"""Loading MiniGPT-4's vision side from its released parts, reading only the tensors it uses.

MiniGPT-4 (Vision-CAIR/MiniGPT-4, ``minigpt4/models/minigpt4.py``) is BLIP-2's EVA ViT-g with
``ln_vision``, BLIP-2's Q-Former and 32 query tokens (from ``blip2_pretrained_flant5xxl.pth``),
one ``llama_proj`` Linear trained by MiniGPT-4, and Vicuna. transformers' BLIP-2 checkpoints
hold the first two under ``vision_model.`` (whose ``post_layernorm`` is ``ln_vision``),
``qformer.`` and ``query_tokens``: :func:`load_vision_parts` reads just those tensors, so the
11B T5 of ``Salesforce/blip2-flan-t5-xxl`` is neither loaded nor (for a sharded hub checkpoint
whose index says where each tensor is) downloaded.

:func:`load_projection` reads MiniGPT-4's ``.pth`` with ``torch.load(weights_only=True)``: a
file holding anything but tensors and plain containers is refused, never executed.

A projection on the hub is written ``hf://org/repo/path/in/repo.pth``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lmmclf.errors import ConfigError, LmmclfError

HUB_FILE_PREFIX = "hf://"
VISION_PREFIXES = ("vision_model.", "qformer.", "query_tokens")
# a repository's weights, in the order they are looked for (an index names the shard of each tensor)
_WEIGHT_FILES = ("model.safetensors.index.json", "model.safetensors", "pytorch_model.bin.index.json", "pytorch_model.bin")


def parse_hub_file(ref: str) -> tuple[str, str] | None:
    """``(repo_id, filename)`` for ``hf://org/repo/file``; None for anything else (a local path)."""
    if not ref.startswith(HUB_FILE_PREFIX):
        return None
    parts = ref[len(HUB_FILE_PREFIX):].split("/", 2)
    if len(parts) < 3 or not all(parts):
        raise ConfigError(f"describe.minigpt4_projection '{ref}' is not hf://org/repo/file (e.g. hf://org/repo/pretrained_minigpt4.pth).")
    return f"{parts[0]}/{parts[1]}", parts[2]


def _fetch(repo_or_folder: str, local: bool, name: str, revision: str | None) -> Path | None:
    """One file of a local folder or a hub repository; None when it has no such file."""
    if local:
        path = Path(repo_or_folder) / name
        return path if path.is_file() else None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    try:
        return Path(hf_hub_download(repo_or_folder, name, revision=revision))
    except (EntryNotFoundError, LocalEntryNotFoundError):
        return None


def _read_tensors(files: list[Path]) -> dict[str, Any]:
    """The tensors under :data:`VISION_PREFIXES` in ``files`` (safetensors, or .bin read without pickle code)."""
    import torch

    wanted: dict[str, Any] = {}
    for file in files:
        if file.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(file), framework="pt") as handle:
                for name in handle.keys():
                    if name.startswith(VISION_PREFIXES):
                        wanted[name] = handle.get_tensor(name)
        else:
            try:
                state = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
            except Exception as exc:  # noqa: BLE001 - an UnpicklingError names the refused global
                raise LmmclfError(f"Cannot read {file} as plain tensors (weights_only): {exc}") from exc
            wanted.update({k: v for k, v in state.items() if k.startswith(VISION_PREFIXES)})
    return wanted


def load_vision_parts(source: str, local: bool, what: str = "describe.minigpt4_vision"):
    """The vision model (with ``ln_vision``), the Q-Former and the query tokens of a BLIP-2 checkpoint.

    Args:
        source: a local folder or a hub id of a transformers BLIP-2 checkpoint.
        local: whether ``source`` is a local folder.
        what: the setting, for messages.

    Returns:
        ``(vision_model, qformer, query_tokens, config)``: two modules, a ``(1, n, width)`` tensor,
        and the ``Blip2Config``.

    Raises:
        LmmclfError: no BLIP-2 config or weights there, or tensors missing or of the wrong shape.
    """
    from transformers import Blip2Config, Blip2QFormerModel, Blip2VisionModel

    config_file = _fetch(source, local, "config.json", None)
    if config_file is None:
        raise LmmclfError(f"{what} '{source}' has no config.json: it must be a transformers BLIP-2 checkpoint (e.g. Salesforce/blip2-flan-t5-xxl).")
    config = Blip2Config.from_json_file(str(config_file))
    if not getattr(config, "vision_config", None) or not getattr(config, "qformer_config", None):
        raise LmmclfError(f"{what} '{source}' is not a BLIP-2 checkpoint (its config.json has no vision_config and qformer_config).")
    files: list[Path] = []
    for name in _WEIGHT_FILES:
        found = _fetch(source, local, name, None)
        if found is None:
            continue
        if name.endswith(".index.json"):
            weight_map = json.loads(found.read_text())["weight_map"]
            shards = sorted({shard for key, shard in weight_map.items() if key.startswith(VISION_PREFIXES)})
            files = [_fetch(source, local, shard, None) for shard in shards]  # only the shards holding the parts
            if any(f is None for f in files):
                raise LmmclfError(f"{what} '{source}': a shard named in {name} is missing.")
        else:
            files = [found]
        break
    if not files:
        raise LmmclfError(f"{what} '{source}' holds no model.safetensors or pytorch_model.bin (nor their index).")
    tensors = _read_tensors(files)
    vision, qformer = Blip2VisionModel(config.vision_config), Blip2QFormerModel(config.qformer_config)
    for module, prefix in ((vision, "vision_model."), (qformer, "qformer.")):
        state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise LmmclfError(f"{what} '{source}': its {prefix.rstrip('.')} weights do not match its config.json ({str(exc).splitlines()[0]}).") from exc
    query_tokens = tensors.get("query_tokens")
    if query_tokens is None or tuple(query_tokens.shape[-2:]) != (config.num_query_tokens, config.qformer_config.hidden_size):
        raise LmmclfError(f"{what} '{source}': query_tokens missing or not ({config.num_query_tokens}, {config.qformer_config.hidden_size}).")
    return vision.eval(), qformer.eval(), query_tokens.reshape(1, *query_tokens.shape[-2:]), config


def projection_file(ref: str, what: str = "describe.minigpt4_projection") -> Path:
    """The local path of the projection checkpoint (downloaded into the hub cache for ``hf://``)."""
    hub = parse_hub_file(ref)
    if hub is None:
        path = Path(ref).expanduser()
        if not path.is_file():
            raise LmmclfError(f"Cannot load {what} {path}: no such file (MiniGPT-4's pretrained_minigpt4.pth, or hf://org/repo/file).")
        return path
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(hub[0], hub[1]))
    except Exception as exc:  # noqa: BLE001 - offline, missing repo or file: one sentence naming it
        raise LmmclfError(f"Cannot fetch {what} '{ref}': {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc


def load_projection(path: Path, in_features: int, out_features: int, what: str = "describe.minigpt4_projection"):
    """MiniGPT-4's ``llama_proj`` (``nn.Linear(in_features, out_features)``) from its ``.pth``.

    The checkpoint is ``{"model": {...}}`` as MiniGPT-4 saves it (a bare state dict is accepted,
    as MiniGPT-4's ``load_checkpoint`` does); only ``llama_proj.weight`` and ``.bias`` are used.

    Raises:
        LmmclfError: not loadable without running code, no ``llama_proj``, or the wrong shape.
    """
    import pickle

    import torch

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise LmmclfError(f"Refusing {what} {path}: it holds more than tensors (loaded with weights_only=True, nothing in it ran): "
                          f"{str(exc).splitlines()[0][:200]}") from exc
    except Exception as exc:  # noqa: BLE001 - truncated or not a torch file
        raise LmmclfError(f"Cannot read {what} {path} as a torch checkpoint: {type(exc).__name__}: {exc}") from exc
    state = checkpoint.get("model", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or "llama_proj.weight" not in state or "llama_proj.bias" not in state:
        raise LmmclfError(f"{what} {path} holds no llama_proj.weight and llama_proj.bias (is it MiniGPT-4's pretrained_minigpt4.pth?).")
    weight, bias = state["llama_proj.weight"], state["llama_proj.bias"]
    if tuple(weight.shape) != (out_features, in_features) or tuple(bias.shape) != (out_features,):
        raise LmmclfError(f"{what} {path}: llama_proj is {tuple(weight.shape)}, but the Q-Former's width and the LLM's "
                          f"hidden size need ({out_features}, {in_features}); is it the checkpoint for this Vicuna?")
    projection = torch.nn.Linear(in_features, out_features)
    with torch.no_grad():
        projection.weight.copy_(weight)
        projection.bias.copy_(bias)
    return projection.eval()
