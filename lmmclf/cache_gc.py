"""Which cache entries ``lmmclf cache gc`` removes, and which it must keep.

Three kinds of files that are not finished artifacts live in the cache:

- **in use**: files of a run that is alive. A run holds its key's lock (``<key>.lock`` while an
  artifact is computed, ``<key>.active-<name>.lock`` for a whole describe run), so gc tests the
  lock without waiting; a temp file whose name carries the id of a living process on this machine,
  or that changed in the last few minutes (a run on another machine sharing the cache), counts too.
  gc never touches them.
- **resumable progress** of runs that stopped: describe journals and fine-tuning checkpoints.
  They hold hours of GPU time, so gc keeps them unless asked (``--discard-progress``) and says
  how much work each holds.
- **debris**: temp files of interrupted writes, files moved aside because they were damaged,
  incomplete artifacts, and weights whose artifact is gone (orphans). gc removes them.

Lock files are neither listed nor removed: they are empty, and deleting one that a waiting
process has open would let two processes hold "the" lock at once.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from lmmclf.store import ArtifactStore

RECENT_SECONDS = 600  # a temp file changed this recently may belong to a run on another machine
_RESUMABLE = ("*.partial.*.jsonl", "*.partial.ckpt*")  # describe journals, fine-tuning checkpoints
_DEBRIS = ("*.tmp-*", "*.partial.*", "*.corrupt-*", "*.bad-*")  # at any depth: frames live in frames/v<N>/
_DEBRIS_MARK = re.compile(r"\.(tmp|corrupt|bad)-")  # a temp or moved-aside copy of a resumable file is debris
_PID_IN_NAME = re.compile(r"(?:tmp-|\.partial\.|weights-)(\d+)(?:[-.]|$)")
_WEIGHTS_SUFFIX = ".safetensors"


@dataclass(frozen=True)
class GcEntry:
    """One file gc looked at.

    Args:
        path: the file (or folder).
        size: bytes.
        reason: why it is removed or kept, for people.
        remove: True if gc removes it (with ``--dry-run``: would remove).
    """

    path: Path
    size: int
    reason: str
    remove: bool


def _size(path: Path) -> int:
    try:
        if path.is_dir():
            return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        return path.stat().st_size
    except OSError:  # removed while we look
        return 0


def _key_of(path: Path) -> str:
    return path.name.split(".", 1)[0]


def _pid_alive(path: Path) -> bool:
    match = _PID_IN_NAME.search(path.name)
    if not match:
        return False
    pid = int(match.group(1))
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # exists but is someone else's (or unknowable): keep
    return True


def _recent(path: Path, now: float) -> bool:
    try:
        return now - path.stat().st_mtime < RECENT_SECONDS
    except OSError:
        return False


def _in_use(store: ArtifactStore, path: Path, now: float) -> bool:
    """Whether a live run may still need ``path``."""
    try:
        stage = path.relative_to(store.root).parts[0]
    except (ValueError, IndexError):
        stage = ""
    return store.is_busy(stage, _key_of(path)) or _pid_alive(path) or _recent(path, now)


def progress_summary(path: Path) -> str:
    """How much finished work a resumable file holds, in words (best effort; never raises)."""
    if path.suffix == ".jsonl":
        done = 0
        try:
            with open(path, "rb") as handle:
                for line in handle:
                    try:
                        record = json.loads(line)
                    except ValueError:
                        continue
                    done += isinstance(record, dict) and record.get("ok") is True
        except OSError:
            return "a describe journal"
        return f"a describe journal with {done} images described"
    return "a fine-tuning checkpoint"


def plan_gc(
    store: ArtifactStore,
    older_than_days: float | None = None,
    max_size_bytes: float | None = None,
    discard_progress: bool = False,
) -> list[GcEntry]:
    """Every file gc looked at, with what it does to each.

    Args:
        store: the artifact store.
        older_than_days: also remove finished artifacts not modified for this long.
        max_size_bytes: also remove the oldest finished artifacts until the rest fit.
        discard_progress: also remove resumable progress (journals, checkpoints) of stopped runs.
    """
    if not store.root.exists():
        return []
    now = time.time()
    entries: list[GcEntry] = []
    resumable = {p for pattern in _RESUMABLE for p in store.root.rglob(pattern) if not _DEBRIS_MARK.search(p.name)}
    debris = {p for pattern in _DEBRIS for p in store.root.rglob(pattern)} - resumable
    for path in sorted(resumable | debris):
        if path.suffix == ".lock":
            continue
        size = _size(path)
        if _in_use(store, path, now):
            entries.append(GcEntry(path, size, "in use by a running process", False))
        elif path in resumable:
            what = progress_summary(path)
            if discard_progress:
                entries.append(GcEntry(path, size, f"resumable: {what} (--discard-progress)", True))
            else:
                entries.append(GcEntry(path, size, f"resumable: {what}; kept (--discard-progress removes it)", False))
        elif re.search(r"\.(bad|corrupt)-", path.name):
            entries.append(GcEntry(path, size, "set aside as damaged, not resumable", True))
        else:
            entries.append(GcEntry(path, size, "leftover of an interrupted write", True))
    entries += _orphans(store, now)
    entries += _artifacts(store, now, older_than_days, max_size_bytes)
    return entries


def _orphans(store: ArtifactStore, now: float) -> list[GcEntry]:
    """Sidecar weights whose artifact is gone (no ``<key>.h5`` beside them)."""
    out = []
    for side in sorted(store.root.glob(f"*/*{_WEIGHTS_SUFFIX}")):
        if ".partial." in side.name or side.with_suffix(".h5").exists():
            continue
        if _in_use(store, side, now):
            out.append(GcEntry(side, _size(side), "in use by a running process", False))
        else:
            out.append(GcEntry(side, _size(side), "orphan: its artifact is gone", True))
    return out


def _artifacts(store: ArtifactStore, now: float, older_than_days: float | None, max_size_bytes: float | None) -> list[GcEntry]:
    doomed: list[tuple[Path, int, str]] = []
    kept = []
    for info in sorted(store.list(), key=lambda info: info.mtime):  # oldest first
        if store.is_busy(info.stage, info.key):
            continue  # being written or read under its lock right now
        if not info.complete:
            doomed.append((info.path, info.size, "incomplete or damaged artifact"))
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
    out = []
    for path, size, reason in doomed:  # an artifact's sidecars (weights) go with it; its size counts them
        sides = store.sidecars(path)
        side_sizes = [_size(side) for side in sides]
        out.append(GcEntry(path, size - sum(side_sizes), reason, True))
        out.extend(GcEntry(side, side_size, reason, True) for side, side_size in zip(sides, side_sizes))
    return out


def orphan_files(store: ArtifactStore) -> list[Path]:
    """Weights files without their artifact (what ``cache ls`` mentions and ``cache gc`` removes)."""
    return [entry.path for entry in _orphans(store, time.time()) if entry.remove]
