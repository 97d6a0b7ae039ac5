"""Model references and their identities for cache keys: one resolver for CLIP and LMM models.

A reference is either a hub id (``org/name``, identified by its name and revision: ``main``
unless pinned; pin a commit for exact reproducibility) or a local folder or file (identified by
a hash of its bytes, so a retrained or edited local model never reuses another model's artifacts).

:func:`resolve_model_ref` decides which, the same way for every stage. A reference that exists
on disk is local. One that does not exist stays a hub id only if it cannot be a path: a path
(absolute, ``./``, ``../``, ``~``, or with separators but not shaped ``org/name``) or a path this
cache has seen as a local model before is a *moved or missing local model*, never a hub id:

- computing keys (``load=False``) reuses the identity last seen for that path, with a note on
  stderr, so the artifacts made from it stay reachable (eval, probe, embed reading describe);
- loading it (``load=True``) stops with one sentence naming the missing folder.

A loader about to fetch a hub id calls :func:`require_hub_model`: one that is not in the local
Hugging Face cache while offline (``HF_HUB_OFFLINE``, or the hub unreachable within a few seconds)
stops at once with one sentence, instead of a minute of retries.

Quietly switching to the hub would change the key ("No describe artifact ...") and start a
download of a model that is not the one the user meant.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmmclf.errors import LmmclfError
from lmmclf.filehash import FileHashCache
from lmmclf.hashing import hash_strings

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".json", ".model", ".txt", ".gguf", ".ckpt")
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")

# Absolute paths of local models resolved (or remembered) in this process. A loader that has no
# memo at hand still knows that such a path was local when the keys were computed moments before.
_SEEN_LOCAL: set[str] = set()
_NOTED: set[str] = set()  # paths whose "reusing the remembered identity" note was printed


@dataclass(frozen=True)
class ModelRef:
    """A resolved model reference.

    Args:
        kind: ``"hub"`` (fetched by name by its library) or ``"local"`` (a folder or file here).
        name: the reference as given.
        path: the local folder or file (expanded); None for a hub id.
        identity: what enters cache keys (empty when resolved only to load).
        remembered: True when the path is gone and ``identity`` is the one last seen for it.
    """

    kind: str
    name: str
    path: Path | None
    identity: dict[str, Any] = field(default_factory=dict)
    remembered: bool = False

    @property
    def load_name(self) -> str:
        """What to hand to a loader: the expanded path of a local model, else the hub id."""
        return str(self.path) if self.path is not None else self.name


def looks_like_path(ref: str, hub_ids: bool = True) -> bool:
    """True when ``ref`` can only mean a place on disk.

    Args:
        ref: the reference as given.
        hub_ids: whether ``org/name`` may be a hub id (True for models; False for a CLIP
            ``pretrained``, which is a tag or a file, never a hub id).
    """
    if ref in (".", "..", "~") or ref.startswith(("./", "../", "~/", "~")) or os.path.isabs(ref):
        return True
    if os.sep != "/" and ref.startswith((f".{os.sep}", f"..{os.sep}")):
        return True
    separators = {"/", os.sep} | ({os.altsep} if os.altsep else set())
    if not any(sep in ref for sep in separators):
        return False
    return not (hub_ids and _HUB_ID.match(ref))


def local_identity(path: Path, hashes: FileHashCache) -> str:
    """sha256 over the relative names and hashes of a local model's files (or one file)."""
    if path.is_file():
        return hashes.hash(path)
    parts = []
    for file in sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in _WEIGHT_SUFFIXES):
        parts += [file.relative_to(path).as_posix(), hashes.hash(file)]
    return hash_strings(parts)


def resolve_model_ref(
    ref: str,
    revision: str | None,
    hashes: FileHashCache | None,
    *,
    what: str = "model",
    local: bool | None = None,
    load: bool = False,
    extra_files: dict[str, str] | None = None,
) -> ModelRef:
    """Resolve a model reference to a hub id or a local folder/file, with its key identity.

    Args:
        ref: a hub id, a local folder or file (``~`` allowed).
        revision: the hub revision (ignored for local models).
        hashes: the file-hash memo; it hashes local files and remembers the identity of every
            local path. None resolves for loading only (no identity is computed).
        what: the config field, for messages (``describe.model``).
        local: True when the reference is local by construction (``local-dir:``, a checkpoint file).
        load: the model is about to be loaded: a missing local path is an error, never a hub id.
        extra_files: identity key -> file inside a local folder whose hash joins the identity
            when present (``chat_template_sha256`` -> ``chat_template.jinja``).

    Raises:
        LmmclfError: a local path that does not exist (when loading, or when nothing is remembered).
    """
    path = Path(ref).expanduser()
    absolute = os.path.abspath(path)
    if path.exists():
        _SEEN_LOCAL.add(absolute)
        if hashes is None:
            return ModelRef("local", ref, path)
        identity = {"name": path.name, "local_sha256": local_identity(path, hashes)}
        for key, name in (extra_files or {}).items():
            if (path / name).is_file():  # local_identity hashes weights and json, not e.g. a jinja template
                identity[key] = hashes.hash(path / name)
        hashes.remember_model(absolute, json.dumps(identity, sort_keys=True))
        return ModelRef("local", ref, path, identity)
    noted = hashes.model_identity(absolute) if hashes is not None else None
    if not (local or looks_like_path(ref) or noted is not None or absolute in _SEEN_LOCAL):
        return ModelRef("hub", ref, None, {"name": ref, "revision": revision or "main"})
    if load:
        raise LmmclfError(
            f"Cannot load {what} {path}: it does not exist (a local path, not a hub id); "
            f"move it back or set {what} to where it is now."
        )
    identity = _parse(noted)
    if identity is None:
        raise LmmclfError(
            f"{what} {path} does not exist and this cache has no record of it: fix the path "
            "(a hub id is written org/name)."
        )
    if absolute not in _NOTED:
        _NOTED.add(absolute)
        from rich.markup import escape

        from lmmclf.console import console

        console.print(
            f"[yellow]Note[/]: {escape(what)} {escape(str(path))} is gone; its artifacts are found by the identity "
            f"it had when last seen ({escape(str(identity.get('name', '?')))}, sha256 {escape(str(identity.get('local_sha256', ''))[:12])}); "
            "a step that must load it will stop.",
            soft_wrap=True,
        )
    _SEEN_LOCAL.add(absolute)
    return ModelRef("local", ref, path, identity, remembered=True)


HUB_CONNECT_TIMEOUT = 3.0  # seconds: a reachable hub answers a TCP connect far sooner


def require_hub_model(model_id: str, revision: str | None, what: str = "model") -> None:
    """Stop at once, in one sentence, when hub model ``model_id`` can be neither found locally nor fetched.

    A model in the local Hugging Face cache loads offline. One that is not would otherwise cost
    a minute of retries before a traceback when there is no network (or ``HF_HUB_OFFLINE`` is set).

    Raises:
        LmmclfError: not in the local cache, and offline mode is on or the hub cannot be reached.
    """
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants, try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(model_id, "config.json", revision=revision)
    except Exception:  # noqa: BLE001 (a malformed id or cache: leave the verdict to the loader)
        return
    if isinstance(cached, str):
        return
    offline = constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")
    fix = f"set {what} to a local folder, or download it where there is network (`hf download {model_id}`)"
    if offline:
        raise LmmclfError(f"{what} '{model_id}' is neither a local folder nor in the local Hugging Face cache, "
                          f"and HF_HUB_OFFLINE is set: {fix}.")
    endpoint = urlparse(constants.ENDPOINT)
    host, port = endpoint.hostname or "huggingface.co", endpoint.port or (80 if endpoint.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=HUB_CONNECT_TIMEOUT).close()
    except OSError as exc:
        raise LmmclfError(f"{what} '{model_id}' is neither a local folder nor in the local Hugging Face cache, "
                          f"and {host} cannot be reached ({exc.strerror or exc}): {fix}.") from None


def _parse(noted: str | None) -> dict[str, Any] | None:
    """A remembered identity, or None when there is none or it is not a JSON object (a damaged memo)."""
    if noted is None:
        return None
    try:
        identity = json.loads(noted)
    except ValueError:
        return None
    return identity if isinstance(identity, dict) and "local_sha256" in identity else None

