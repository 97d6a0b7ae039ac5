"""``load_dataset``: from a dataset name to a verified, fingerprinted :class:`DatasetIndex`.

Steps, shared by every adapter:
1. resolve the name to an adapter type and root (config, then the user registry);
2. the adapter lists the source files (:class:`~lmmclf.datasets.sources.Scan`);
3. images are hashed and read once through :mod:`lmmclf.image_read` (the outcome and the
   image's fingerprint kind remembered per file), videos are hashed and their
   middle frames extracted once (cached by content), in parallel with a progress bar;
4. unusable files are skipped with their reason and reported in one line;
5. items are ordered by class, then id, and fingerprinted.

Cached middle frames are trusted only once verified: the memo remembers each frame that
decoded, by size and mtime, so a frame that changed (truncated, overwritten) is decoded again
and, if broken, extracted again from its video and reported (``DatasetIndex.repaired``).
``recheck=True`` (``datasets check``) decodes every cached frame and compares its bytes with
the ones remembered, which also finds damage that kept the file's size and mtime.
"""

from __future__ import annotations

import os
from concurrent.futures import Executor, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from rich.markup import escape

from lmmclf.config import ExperimentConfig
from lmmclf.console import console, progress
from lmmclf.datasets import fingerprint as fp
from lmmclf.datasets.base import SPLITS, DatasetIndex, Item, SkippedItem
from lmmclf.datasets.frames import extract_many, frame_path
from lmmclf.datasets.registry import ADAPTERS, resolve
from lmmclf.datasets.sources import Scan, Source
from lmmclf.errors import DatasetError
from lmmclf.filehash import FileHashCache
from lmmclf.stages import command

REPORT_FIRST = 3  # skipped files named in the one-line report
_HASH_THREADS = 8  # hashing and image decoding release the GIL; threads suffice
_FLUSH_EVERY = 64  # memo rows per SQLite commit (and files per progress-bar step)
_MAX_CHUNK = 16  # videos per decoding task at most, so the progress bar still moves
VIDEO_KIND = fp.item_kind(True)


@dataclass(frozen=True)
class _Resolved:
    """A usable source: its file hash, the image file that stands for it, and its fingerprint kind."""

    source: Source
    sha256: str
    image: Path
    kind: str


def load_dataset(cfg: ExperimentConfig, store, show_progress: bool = True, recheck: bool = False) -> DatasetIndex:
    """Load ``cfg.dataset.name``: classes, verified items, skipped items, fingerprint.

    Args:
        cfg: the experiment config (its dataset section: name, root, type, split, frame options).
        store: the artifact store (its root holds the frames cache and the file-hash memo).
        show_progress: draw progress bars for hashing and frame extraction.
        recheck: decode every cached middle frame again, whatever the memo says (``datasets check``).

    Raises:
        DatasetError: unknown name, missing root or split file, malformed layout, empty split.
    """
    section = cfg.dataset
    entry = resolve(section)
    scan = ADAPTERS[entry.type]().scan(entry.root, section)
    _check_not_empty(scan, entry.root)
    memo = FileHashCache(store.file_hash_db())
    try:
        images = [s for s in scan.sources if not s.is_video]
        videos = [s for s in scan.sources if s.is_video]
        resolved, skipped = _resolve_images(images, memo, show_progress)
        repaired: list[SkippedItem] = []
        if videos:
            got, lost, repaired = _resolve_videos(
                videos, memo, store.root, section.frame_format, section.decode_workers, show_progress, recheck
            )
            resolved += got
            skipped += lost
    finally:
        memo.close()
    resolved.sort(key=lambda r: (r.source.label, r.source.id))
    for split in SPLITS:
        if not any(r.source.split == split for r in resolved):
            raise DatasetError(
                f"{entry.root}: no usable {split} file ({len(skipped)} unreadable; "
                f"`{command('datasets', None, ['check', entry.name])}` lists them)."
            )
    options = dict(scan.options)
    if videos:
        options["frame_format"] = section.frame_format
    index = DatasetIndex(
        name=entry.name,
        class_names=list(scan.class_names),
        items=[Item(r.source.id, r.image, r.source.label, r.source.split) for r in resolved],
        fingerprint=fp.fingerprint(
            scan.class_names,
            # the release's val items are hashed as "val", so moving an image between train and
            # val changes the fingerprint; releases without val keep their fingerprints
            ((r.source.id, r.sha256, r.kind, r.source.label,
              "val" if r.source.id in scan.val_ids else r.source.split) for r in resolved),
        ),
        skipped=sorted(scan.skipped + skipped, key=lambda s: s.source),
        options=options,
        repaired=sorted({r.source: r for r in repaired}.values(), key=lambda s: s.source),  # one note per frame
        val_ids=frozenset(r.source.id for r in resolved if r.source.id in scan.val_ids),
    )
    report_skipped(index)
    report_repaired(index)
    return index


def _check_not_empty(scan: Scan, root: Path) -> None:
    first_path: dict[str, Path] = {}  # one pass: a million items with one duplicate name it at once
    for source in scan.sources:
        if source.id in first_path:
            other = first_path[source.id]
            files = f"both times for {other}" if other == source.path else f"by {other} and {source.path}"
            raise DatasetError(f"{root}: the id {source.id!r} is used twice, {files} (ids must be unique).")
        first_path[source.id] = source.path
    for split in SPLITS:
        if not any(s.split == split for s in scan.sources):
            raise DatasetError(f"{root}: the {split} split is empty (no images or videos found for it).")


def _resolve_images(sources: list[Source], memo: FileHashCache, show_progress: bool):
    """Hash (and check, the first time) every image; memo hits cost one stat each.

    A hit is trusted when its note says the image is bad, or good with its kind; a bare
    ``image-ok`` (an older memo's) does not say whether the reader changes the image's pixels,
    so that image is checked once more.
    """
    resolved, skipped, todo = [], [], []
    for source in sources:
        hit = _lookup(memo, source.path)
        if hit is None or not fp.settled(hit[1]):
            todo.append(source)
        else:
            _collect_image(source, hit[0], hit[1], resolved, skipped)
    # stat before reading: a file that changes while it is read (a copy in progress) is
    # remembered with its older stat, so the next run reads it again
    stats, todo = _stat_all(todo, skipped)
    if todo:
        with ThreadPoolExecutor(_HASH_THREADS) as pool, _Recorder(memo, "hash + check images", len(todo), show_progress) as recorder:
            futures = {pool.submit(fp.hash_and_verify, str(s.path)): s for s in todo}
            for future in as_completed(futures):
                source = futures[future]
                try:
                    sha, note = future.result()
                except OSError as exc:  # vanished or unreadable since it was listed: not remembered
                    skipped.append(SkippedItem(str(source.path), f"cannot be read ({exc.strerror or exc})"))
                    continue
                recorder.record(source.path, sha, note, stats[source.path])
                _collect_image(source, sha, note, resolved, skipped)
    return resolved, skipped


def _lookup(memo: FileHashCache, path: Path):
    """The memo's (sha256, note) for ``path``, or None (also when the file cannot be stat'ed now)."""
    try:
        return memo.lookup(path)
    except OSError:
        return None


def _stat_all(sources: list[Source], skipped: list[SkippedItem]) -> tuple[dict, list[Source]]:
    """``os.stat`` of each source, and the sources that could be stat'ed (the others are skipped)."""
    stats, kept = {}, []
    for source in sources:
        try:
            stats[source.path] = os.stat(source.path)
        except OSError as exc:  # removed or broken since the adapter listed it
            skipped.append(SkippedItem(str(source.path), f"cannot be read ({exc.strerror or exc})"))
            continue
        kept.append(source)
    return stats, kept


def _collect_image(source, sha, note, resolved, skipped) -> None:
    if note.startswith(fp.NOTE_BAD):
        skipped.append(SkippedItem(str(source.path), note[len(fp.NOTE_BAD):]))
    else:
        resolved.append(_Resolved(source, sha, source.path, fp.note_kind(note)))


def _resolve_videos(sources, memo, cache_root: Path, frame_format: str, workers: int, show_progress: bool, recheck: bool = False):
    """Hash every video and make sure its middle frame is cached and sound, decoding only what is missing.

    Returns:
        (resolved, skipped, repaired): ``repaired`` lists cached frames found broken and extracted again.
    """
    resolved, skipped, todo, unverified = [], [], [], []
    for source in sources:
        hit = _lookup(memo, source.path)
        frame = frame_path(cache_root, hit[0], frame_format) if hit is not None else None
        if hit is not None and hit[1] and hit[1].startswith(fp.VIDEO_BAD):
            skipped.append(SkippedItem(str(source.path), hit[1][len(fp.VIDEO_BAD):]))
        elif frame is not None and frame.exists():
            known = _lookup(memo, frame)
            if not recheck and known is not None and known[1] == fp.NOTE_OK:
                resolved.append(_Resolved(source, hit[0], frame, VIDEO_KIND))
            else:
                unverified.append((source, hit[0], frame, known[0] if known and known[1] == fp.NOTE_OK else None))
        else:
            todo.append(source)
    repaired = _verify_frames(unverified, memo, show_progress, resolved, todo)
    if not todo:
        return resolved, skipped, repaired
    by_path: dict[str, list[Source]] = {}  # a list: a manifest may name one file under two ids
    stats, todo = _stat_all(todo, skipped)  # before reading (see _resolve_images)
    if not todo:
        return resolved, skipped, repaired
    for s in todo:
        by_path.setdefault(str(s.path), []).append(s)
    decoded = 0
    verified: list[tuple[Path, str]] = []
    count = min(decode_workers(workers), len(todo))
    size = _chunk_size(len(todo), count)
    chunks = [[str(s.path) for s in todo[i : i + size]] for i in range(0, len(todo), size)]
    with _video_pool(count) as pool, _Recorder(memo, "middle frames", len(todo), show_progress) as recorder:
        futures = [pool.submit(extract_many, chunk, str(cache_root), frame_format) for chunk in chunks]
        for future in as_completed(futures):
            for result in future.result():
                source = by_path[result.video].pop()
                decoded += result.decoded
                if result.repaired:
                    repaired.append(_repair_note(frame_path(cache_root, result.sha256, frame_format), source, result.repaired))
                if result.error:
                    if result.sha256:  # a decoder's verdict is remembered; a failed read is not
                        recorder.record(source.path, result.sha256, fp.VIDEO_BAD + result.error, stats[source.path])
                    skipped.append(SkippedItem(result.video, result.error))
                else:
                    recorder.record(source.path, result.sha256, fp.VIDEO_OK, stats[source.path])
                    verified.append((Path(result.frame), result.frame_sha256))  # the worker decoded it
                    resolved.append(_Resolved(source, result.sha256, Path(result.frame), VIDEO_KIND))
    _remember_frames(memo, verified)
    if decoded:
        console.print(f"Decoded {decoded} video(s); middle frames cached under {escape(str(cache_root / 'frames'))}.")
    return resolved, skipped, repaired


def _remember_frames(memo: FileHashCache, frames: list[tuple[Path, str]]) -> None:
    """Remember cached frames the workers verified, so the next run trusts them after one stat."""
    rows = []
    for frame, sha in frames:
        try:
            rows.append((frame, sha, fp.NOTE_OK, os.stat(frame)))
        except OSError:  # gone already (another process repairing it): checked again next run
            continue
    memo.remember_many(rows)


def _verify_frames(unverified, memo: FileHashCache, show_progress: bool, resolved: list, todo: list) -> list[SkippedItem]:
    """Decode cached frames the memo cannot vouch for; sound ones join ``resolved``, broken ones
    are removed and their videos join ``todo`` (extracted again). Returns the repair notes.

    Args:
        unverified: (source, video sha256, frame path, sha256 the memo remembers for the frame or None).
    """
    repaired: list[SkippedItem] = []
    if not unverified:
        return repaired
    users: dict[Path, list[tuple[Source, str]]] = {}  # one frame may stand for several sources
    known_sha = {}
    for source, sha, frame, known in unverified:
        users.setdefault(frame, []).append((source, sha))
        known_sha[frame] = known
    with ThreadPoolExecutor(_HASH_THREADS) as pool, _Recorder(memo, "check cached frames", len(users), show_progress) as recorder:
        futures = {pool.submit(_check_frame, frame, known_sha[frame]): frame for frame in users}
        for future in as_completed(futures):
            frame = futures[future]
            frame_sha, problem, stat = future.result()
            if problem is None:
                recorder.record(frame, frame_sha, fp.NOTE_OK, stat)
                resolved.extend(_Resolved(source, sha, frame, VIDEO_KIND) for source, sha in users[frame])
                continue
            _discard(frame)  # extracted again below, then written atomically
            repaired.append(_repair_note(frame, users[frame][0][0], problem))
            todo.extend(source for source, _ in users[frame])
    return repaired


def _check_frame(frame: Path, known_sha: str | None) -> tuple[str, str | None, os.stat_result | None]:
    """(sha256, why the cached frame is broken or None, its stat before reading)."""
    try:
        stat = os.stat(frame)
        sha, note = fp.hash_and_verify(str(frame))
    except OSError as exc:
        return "", f"cannot be read ({exc.strerror or exc})", None
    if note.startswith(fp.NOTE_BAD):
        return sha, note[len(fp.NOTE_BAD):], stat
    if known_sha is not None and known_sha != sha:  # same size and mtime, other bytes: bit rot
        return sha, "its bytes changed since it was written", stat
    return sha, None, stat


def _discard(frame: Path) -> None:
    """Remove a broken cached frame (even a folder someone left under its name): the cache is ours."""
    if frame.is_dir() and not frame.is_symlink():
        import shutil

        shutil.rmtree(frame, ignore_errors=True)
    else:
        frame.unlink(missing_ok=True)


def _repair_note(frame: Path, source: Source, problem: str) -> SkippedItem:
    return SkippedItem(str(frame), f"cached middle frame of {source.path} was broken ({problem}); extracted again")


def decode_workers(configured: int) -> int:
    """The number of decoding processes: ``configured``, or one per CPU core when 0."""
    if configured > 0:
        return configured
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _chunk_size(jobs: int, workers: int) -> int:
    """Videos per task: few round trips, yet about four tasks per worker to balance the load."""
    return max(1, min(_MAX_CHUNK, jobs // (4 * max(workers, 1))))


def _video_pool(count: int) -> Executor:
    """``count`` worker processes for decoding (spawned: safe when torch is already loaded).

    One worker runs in this process (on a helper thread): starting a pool would cost more.
    """
    if count <= 1:
        return _InlineExecutor()
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(count, mp_context=multiprocessing.get_context("spawn"))


class _InlineExecutor(ThreadPoolExecutor):
    """One worker thread: keeps the executor interface without processes."""

    def __init__(self):
        super().__init__(max_workers=1)


class _Recorder:
    """Progress bar plus file-hash memo writes, both in batches.

    One SQLite commit per file, or one bar refresh per file, would cost more than hashing a
    small image; batches of ``_FLUSH_EVERY`` keep an interrupted run's finished work (the
    frames themselves are already on disk) while staying fast.
    """

    def __init__(self, memo: FileHashCache, label: str, total: int, show_progress: bool):
        self.memo = memo
        self.bar = progress()
        self.bar.disable = not show_progress
        self.task = self.bar.add_task(label, total=total)
        self.pending: list[tuple[Path, str, str, os.stat_result | None]] = []

    def __enter__(self) -> "_Recorder":
        self.bar.__enter__()
        return self

    def record(self, path: Path, sha: str, note: str, stat: os.stat_result | None = None) -> None:
        self.pending.append((path, sha, note, stat))
        if len(self.pending) >= _FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.memo.remember_many(self.pending)
            self.bar.advance(self.task, len(self.pending))
            self.pending = []

    def __exit__(self, *exc) -> None:
        try:
            self.flush()
        finally:
            self.bar.__exit__(*exc)


def report_repaired(index: DatasetIndex) -> None:
    """One line naming the cached frames that were broken and extracted again."""
    if not index.repaired:
        return
    first = "; ".join(f"{s.source} ({s.reason})" for s in index.repaired[:REPORT_FIRST])
    more = f"; and {len(index.repaired) - REPORT_FIRST} more" if len(index.repaired) > REPORT_FIRST else ""
    console.print(f"[yellow]Repaired {len(index.repaired)} broken cached frame(s) of {escape(index.name)}:[/] {escape(str(first))}{escape(str(more))}.", soft_wrap=True)


def report_skipped(index: DatasetIndex) -> None:
    """One line naming how many files were skipped and the first few of them."""
    if not index.skipped:
        return
    first = "; ".join(f"{s.source} ({s.reason})" for s in index.skipped[:REPORT_FIRST])
    more = f"; and {len(index.skipped) - REPORT_FIRST} more" if len(index.skipped) > REPORT_FIRST else ""
    console.print(
        f"[yellow]Skipped {len(index.skipped)} unusable file(s) of {index.name}:[/] {first}{more} "
        f"(`{escape(command('datasets', None, ['info', index.name]))}` lists them).",
        soft_wrap=True,
    )
