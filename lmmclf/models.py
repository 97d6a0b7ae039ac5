"""Model identities for cache keys: a name plus a revision, or a hash of local weights.

A hub id is identified by its name and revision (``main`` unless pinned: pin a commit for
exact reproducibility). A local directory or file is identified by a hash of its bytes, so a
retrained or edited local model never reuses another model's artifacts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lmmclf.filehash import FileHashCache
from lmmclf.hashing import hash_strings

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".json", ".model", ".txt", ".gguf", ".ckpt")


def local_identity(path: Path, hashes: FileHashCache) -> str:
    """sha256 over the relative names and hashes of a local model's files (or one file)."""
    if path.is_file():
        return hashes.hash(path)
    parts = []
    for file in sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in _WEIGHT_SUFFIXES):
        parts += [file.relative_to(path).as_posix(), hashes.hash(file)]
    return hash_strings(parts)


def hf_model_identity(name_or_path: str, revision: str | None, hashes: FileHashCache) -> dict[str, Any]:
    """Identity of a Hugging Face model given as a hub id or a local directory."""
    path = Path(name_or_path).expanduser()
    if path.exists():
        return {"name": path.name, "local_sha256": local_identity(path, hashes)}
    return {"name": name_or_path, "revision": revision or "main"}
