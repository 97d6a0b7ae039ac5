"""The dataset fingerprint, and the per-file checks behind it.

The fingerprint is ``sha256`` over, in index order, each item's (id, sha256 of its source
file's bytes, kind, label, split), preceded by the class names. ``kind`` is ``image``, or
``video-middle/<FRAME_VERSION>`` for a video whose middle frame is the image, so changing the
frame definition changes the fingerprint. It changes with any image byte, label, split
membership, class name or class order, and with nothing else (not paths, not mtimes).

File hashes come from :class:`~lmmclf.filehash.FileHashCache`, so a second run stats the
files instead of reading them. The first time an image is hashed it is also decoded; the
outcome is stored in the memo's ``note`` (``image-ok`` or ``image-bad: <reason>``), so a
corrupt image is skipped on later runs without decoding it again.
"""

from __future__ import annotations

from typing import Iterable

from lmmclf.hashing import hash_file, hash_strings

# Bump when the definition of the middle frame (or how it is written, lmmclf.datasets.frames)
# changes: it is part of every video dataset's fingerprint, so old artifacts stop matching.
FRAME_VERSION = 1

FINGERPRINT_VERSION = "lmmclf-dataset/1"
NOTE_OK = "image-ok"
NOTE_BAD = "image-bad: "
VIDEO_OK = "video-ok"
VIDEO_BAD = "video-bad: "


def item_kind(is_video: bool) -> str:
    return f"video-middle/{FRAME_VERSION}" if is_video else "image"


def fingerprint(class_names: list[str], entries: Iterable[tuple[str, str, str, int, str]]) -> str:
    """sha256 over the class names and each (id, file sha256, kind, label, split), in order.

    Args:
        class_names: the classes in their fixed order.
        entries: one tuple per item, in index order.
    """
    parts = [FINGERPRINT_VERSION, str(len(class_names)), *class_names]
    for item_id, sha, kind, label, split in entries:
        parts.extend((item_id, sha, kind, str(label), split))
    return hash_strings(parts)


def verify_image(path: str) -> str | None:
    """Fully decode an image; None if it is fine, else the reason it is not.

    ``Image.verify`` checks the container (CRCs, structure) and ``load`` decodes the pixels,
    which catches truncated files that ``verify`` lets through.
    """
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            image.load()
    except Exception as exc:  # PIL raises many types for bad files; all mean "unusable image"
        return f"cannot decode image: {str(exc).strip() or type(exc).__name__}"
    return None


def hash_and_verify(path: str) -> tuple[str, str]:
    """The sha256 of an image file and its memo note (``image-ok`` or ``image-bad: ...``)."""
    digest = hash_file(path)
    problem = verify_image(path)
    return digest, NOTE_OK if problem is None else NOTE_BAD + problem
