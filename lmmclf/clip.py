"""Loading a CLIP model through open_clip, and naming it for cache keys.

Every stage that runs CLIP (embed, zero-shot, finetune) loads it here, through the real
``open_clip.create_model_and_transforms`` factory, so a user's model name means exactly what
it means in open_clip: a built-in architecture plus a pretrained tag (``ViT-L-14-quickgelu`` +
``openai``, the papers' ViT-L/14), a built-in architecture plus a local checkpoint file,
``hf-hub:org/repo`` or ``local-dir:/path`` (a plain folder holding ``open_clip_config.json`` is read
as ``local-dir:`` that folder).

The identity that goes into cache keys is the name plus the pretrained tag for built-in
weights, and a hash of the bytes for anything local (a checkpoint file or a ``local-dir:``
folder), so a retrained local model never reuses another model's embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from lmmclf.devices import resolve_device
from lmmclf.errors import LmmclfError
from lmmclf.filehash import FileHashCache
from lmmclf.models import ModelRef, looks_like_path, resolve_model_ref

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


def local_dir_name(model: str) -> str:
    """``model``, spelled ``local-dir:DIR`` when it is a plain folder holding ``open_clip_config.json``.

    open_clip reads a bare path as an architecture name and fails with a list of 150 names;
    a folder saved the open_clip way can only mean that folder.
    """
    if model.startswith((LOCAL_DIR, HF_HUB)) or not model:
        return model
    if (Path(model).expanduser() / "open_clip_config.json").is_file():
        return LOCAL_DIR + model
    return model


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

    model = local_dir_name(model)
    schema = _schema(model)
    if schema == "local-dir":  # a folder that moved is one sentence naming it, never a download
        folder = resolve_model_ref(model[len(LOCAL_DIR):], None, None, what="embed.clip_model folder", local=True, load=True).path
        if not (folder / "open_clip_config.json").is_file():
            raise LmmclfError(f"CLIP folder {folder} has no open_clip_config.json (needed for a 'local-dir:' model).")
    if schema is None and pretrained is None:
        raise LmmclfError(
            f"CLIP model '{model}' has no pretrained weights given: set embed.clip_pretrained "
            "(e.g. openai) or use a local-dir:/hf-hub: model."
        )
    checkpoint = _checkpoint_ref(pretrained, None, load=True) if schema is None else None
    if checkpoint is not None:
        pretrained = checkpoint.load_name  # the file clip_identity hashed (open_clip does not expand ~)
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

    Local folders and checkpoint files go through :func:`lmmclf.models.resolve_model_ref`: one
    that has moved since its artifacts were made keeps its last seen identity (with a note), so
    keys computed without loading CLIP still find those artifacts.

    Args:
        model: the model name as given to :func:`load_clip`.
        pretrained: the pretrained tag or checkpoint file.
        hashes: the file-hash memo (local folders and files are identified by their bytes).

    Raises:
        LmmclfError: a ``local-dir:`` folder or a checkpoint file that does not exist and is not remembered.
    """
    model = local_dir_name(model)
    schema = _schema(model)
    if schema == "local-dir":
        folder = resolve_model_ref(model[len(LOCAL_DIR):], None, hashes, what="embed.clip_model folder", local=True)
        if not folder.remembered and not folder.path.is_dir():
            raise LmmclfError(f"CLIP folder {folder.path} is not a folder (from model name '{model}').")
        return {"clip": "local-dir", "name": folder.identity["name"], "local_sha256": folder.identity["local_sha256"]}
    if schema == "hf-hub":
        # open_clip fetches hf-hub weights at the repo's main revision; the name is all it exposes.
        return {"clip": model, "pretrained": None}
    checkpoint = _checkpoint_ref(pretrained, hashes)
    if checkpoint is not None:
        return {"clip": model, "pretrained_sha256": checkpoint.identity["local_sha256"]}
    return {"clip": model, "pretrained": pretrained}


def _checkpoint_ref(pretrained: str | None, hashes: FileHashCache | None, load: bool = False) -> ModelRef | None:
    """``pretrained`` as a local checkpoint file, or None when it is a tag (``openai``).

    A file that exists is a checkpoint (as before); so is a missing one written as a path
    (open_clip tags never hold a separator or start with ``~``), which the resolver then
    remembers or reports, instead of handing open_clip a path it would take for a tag.
    """
    if not pretrained:
        return None
    path = Path(pretrained).expanduser()
    if path.exists() and not path.is_file():
        return None  # a folder is no checkpoint: open_clip reports it when loading, as before
    ref = resolve_model_ref(pretrained, None, hashes, what="embed.clip_pretrained",
                            local=path.is_file() or looks_like_path(pretrained, hub_ids=False), load=load)
    return ref if ref.kind == "local" else None
