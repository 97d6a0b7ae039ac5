"""Content hashes: canonical JSON of key inputs, and streaming hashes of files.

Artifact keys are ``sha256(canonical_json(inputs))``. Canonical JSON sorts keys, uses no
whitespace and refuses values that have no stable text form (NaN, arbitrary objects), so the
same inputs give the same key in every process and on every machine.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any, Iterable

_CHUNK = 1 << 20


def _normalise(value: Any) -> Any:
    """Turn tuples, paths and numpy scalars into plain JSON values; reject the rest."""
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"non-finite float {value!r} cannot be part of a cache key")
        return value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _normalise(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalar
        return _normalise(value.item())
    raise TypeError(f"{type(value).__name__} value {value!r} cannot be part of a cache key")


def canonical_json(value: Any) -> str:
    """Serialise ``value`` to one canonical JSON string (sorted keys, no spaces)."""
    return json.dumps(_normalise(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def hash_json(value: Any) -> str:
    """The sha256 hex digest of ``canonical_json(value)``."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


def hash_file(path: str | Path) -> str:
    """Streaming sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def hash_strings(parts: Iterable[str]) -> str:
    """sha256 over a sequence of strings, each length-prefixed so that boundaries count."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()
