"""Middle frames of videos: decoded once, in parallel, cached by the video's bytes.

Definition (documented in docs/datasets.md): the middle frame of a video with ``n`` decoded
frames is frame ``floor(n / 2)`` (0-based) of its first video stream, in decode (presentation)
order, counted by decoding every frame. Container frame counts are not used: AVI headers
(UCF-101) often disagree with the frames actually decodable.

Cache: ``<cache root>/frames/<sha256 of the video bytes>.<png|jpg>``. Each frame is written to
a temp file beside its final name and moved into place with ``os.replace``, so an interrupted
run leaves only whole frames, and the next run decodes just the videos still missing.

A cached frame is checked before it is trusted: here, whenever the video is hashed again (a
frame that does not decode is extracted again and reported as repaired), and in the loader,
whose file-hash memo remembers each verified frame by size and mtime (a frame whose stat
changed is decoded again; ``datasets check`` decodes every frame and compares its bytes).
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from lmmclf.datasets.fingerprint import FRAME_VERSION, NOTE_BAD, hash_and_verify
from lmmclf.hashing import hash_file

JPEG_QUALITY = 95  # only for frame_format "jpg"; png is lossless
_PIL_FORMAT = {"png": "PNG", "jpg": "JPEG"}


@dataclass(frozen=True)
class FrameResult:
    """What one worker did with one video."""

    video: str
    sha256: str
    frame: str | None  # the cached frame file, None on failure
    error: str | None  # why the video could not be used
    decoded: bool  # False when the frame was already in the cache
    frame_sha256: str | None = None  # of the cached frame's bytes, verified to decode
    repaired: str | None = None  # why a cached frame was replaced (it did not decode)


def frames_dir(cache_root: Path) -> Path:
    """The folder of cached middle frames under a cache root (one per frame definition version,
    so a change of what "middle frame" means never reuses frames made the old way)."""
    return Path(cache_root) / "frames" / f"v{FRAME_VERSION}"


def frame_path(cache_root: Path, sha256: str, frame_format: str) -> Path:
    """Where the middle frame of the video with this content hash is cached."""
    return frames_dir(cache_root) / f"{sha256}.{frame_format}"


def middle_frame(data: bytes):
    """Decode every frame of the first video stream; return frame ``floor(n/2)`` as a PIL image.

    Only the second half of the frames decoded so far is kept: after ``k`` frames the final
    count ``n >= k``, so the middle index ``floor(n/2) >= floor(k/2)`` and earlier frames can go.

    Args:
        data: the video file's bytes.

    Raises:
        ValueError: no video stream, or no decodable frame.
        av.error.FFmpegError: the container or stream is corrupt.
    """
    import av

    with av.open(io.BytesIO(data), mode="r") as container:
        if not container.streams.video:
            raise ValueError("no video stream")
        stream = container.streams.video[0]
        window: deque = deque()
        first = 0  # index of window[0]
        count = 0
        for frame in container.decode(stream):
            window.append(frame)
            count += 1
            while first < count // 2:
                window.popleft()
                first += 1
        if count == 0:
            raise ValueError("no decodable video frames")
        return window[count // 2 - first].to_image()


def extract_one(video: str, cache_root: str, frame_format: str) -> FrameResult:
    """Hash a video, and cache its middle frame unless a frame of the same bytes exists.

    Runs in a worker process; never raises for a bad or unreadable video (the error is
    returned). A cached frame that does not decode is replaced, and says why in ``repaired``.

    Args:
        video: the video file.
        cache_root: the artifact cache root.
        frame_format: ``"png"`` or ``"jpg"``.
    """

    try:
        data = Path(video).read_bytes()
    except OSError as exc:  # vanished or unreadable since it was listed: this item's problem
        return FrameResult(video, "", None, f"cannot read video: {exc.strerror or exc}", False)
    sha = hashlib.sha256(data).hexdigest()
    target = frame_path(Path(cache_root), sha, frame_format)
    repaired = None
    if target.exists():
        try:
            frame_sha, note = hash_and_verify(str(target))
        except OSError as exc:  # a folder or an unreadable file under the frame's name
            frame_sha, note = "", f"{NOTE_BAD}cannot be read ({exc.strerror or exc})"
        if not note.startswith(NOTE_BAD):
            return FrameResult(video, sha, str(target), None, False, frame_sha)
        repaired = note[len(NOTE_BAD):]
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target, ignore_errors=True)  # os.replace cannot overwrite a folder
    try:
        image = middle_frame(data).convert("RGB")
    except Exception as exc:  # any decoder failure is a property of this file, reported per item
        return FrameResult(video, sha, None, _reason(exc), True, None, repaired)
    write_atomic(image, target, frame_format)
    return FrameResult(video, sha, str(target), None, True, hash_file(target), repaired)


def extract_many(videos: list[str], cache_root: str, frame_format: str) -> list[FrameResult]:
    """:func:`extract_one` for a chunk of videos (one inter-process round trip per chunk)."""
    return [extract_one(video, cache_root, frame_format) for video in videos]


def write_atomic(image, target: Path, frame_format: str) -> None:
    """Save ``image`` to a unique temp file beside ``target``, then ``os.replace`` it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    # "<sha>.partial.*" is the store's in-progress pattern, so `lmmclf cache gc` finds leftovers.
    temp = target.with_name(f"{target.stem}.partial.{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        options = {"quality": JPEG_QUALITY} if frame_format == "jpg" else {}
        image.save(temp, format=_PIL_FORMAT[frame_format], **options)
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)


def _reason(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return f"cannot decode video: {text}"
