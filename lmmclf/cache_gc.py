"""Which cache entries ``lmmclf cache gc`` removes: leftovers first, then old or excess artifacts."""

from __future__ import annotations

import time
from pathlib import Path

from lmmclf.store import ArtifactStore


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size if path.exists() else 0


def plan_gc(store: ArtifactStore, older_than_days: float | None = None, max_size_bytes: float | None = None) -> list[tuple[Path, int, str]]:
    """The (path, size, reason) entries to delete.

    Args:
        store: the artifact store.
        older_than_days: also delete finished artifacts not modified for this long.
        max_size_bytes: also delete the oldest finished artifacts until the rest fit.
    """
    doomed = [(path, _size(path), "leftover") for path in store.leftovers()]
    artifacts = sorted(store.list(), key=lambda info: info.mtime)  # oldest first
    kept = []
    now = time.time()
    for info in artifacts:
        if not info.complete:
            doomed.append((info.path, info.size, "incomplete"))
        elif older_than_days is not None and now - info.mtime > older_than_days * 86400:
            doomed.append((info.path, info.size, f"older than {older_than_days:g} days"))
        else:
            kept.append(info)
    if max_size_bytes is not None:
        total = sum(info.size for info in kept)
        for info in kept:
            if total <= max_size_bytes:
                break
            doomed.append((info.path, info.size, "over the size budget"))
            total -= info.size
    return _with_sidecars(store, doomed)


def _with_sidecars(store: ArtifactStore, doomed: list[tuple[Path, int, str]]) -> list[tuple[Path, int, str]]:
    """An artifact's sidecar files (fine-tuned weights) go with it; its listed size already counts them."""
    out = []
    for path, size, reason in doomed:
        sides = store.sidecars(path) if path.suffix == ".h5" else []
        out.append((path, size - sum(side.stat().st_size for side in sides), reason))
        out.extend((side, side.stat().st_size, reason) for side in sides)
    return out
