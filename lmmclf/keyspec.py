"""What identifies an artifact: its key spec (and so its key), and what a listing shows of one.

The key is ``sha256(canonical_json(KeySpec))``: stage name and version, dataset identity, model
identity, every parameter that changes the content, and the keys of the inputs; nothing else.
The store (``lmmclf.store``) files artifacts under these keys.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lmmclf.hashing import canonical_json, hash_json


@dataclass(frozen=True)
class KeySpec:
    """Everything that changes an artifact's content, and nothing else.

    Args:
        stage: the stage name (also the artifact's folder), e.g. ``"describe"``.
        version: the stage's code version; bump it when the stage's output changes.
        dataset: the dataset identity (name, fingerprint, options) or None.
        model: the model identity (name plus revision or weights hash) or None.
        params: every parameter that changes the content.
        inputs: role -> key of every artifact this one was computed from.
    """

    stage: str
    version: int
    dataset: dict[str, Any] | None = None
    model: dict[str, Any] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return hash_json(asdict(self))

    def to_json(self) -> str:
        return canonical_json(asdict(self))


@dataclass(frozen=True)
class ArtifactInfo:
    """What ``cache ls`` shows of one artifact."""

    stage: str
    key: str
    path: Path
    size: int
    mtime: float
    spec: dict[str, Any] | None
    items: int | None
    complete: bool
