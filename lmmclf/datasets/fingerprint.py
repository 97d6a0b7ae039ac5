"""The dataset fingerprint, and the per-file checks behind it.

The fingerprint is ``sha256`` over, in index order, each item's (id, sha256 of its source
file's bytes, kind, label, split), preceded by the class names. ``kind`` is ``image``, or
``video-middle/<FRAME_VERSION>`` for a video whose middle frame is the image, so changing the
frame definition changes the fingerprint. It changes with any image byte, label, split
membership, class name or class order, and with nothing else (not paths, not mtimes).

An image whose pixels under the one reader (:mod:`lmmclf.image_read`) differ from the plain
``convert("RGB")`` that came before it (an EXIF orientation of 2 to 8, transparency, 16-bit
grey) has the kind ``image/read-<READ_RULE>`` instead of ``image``: a dataset holding such images
gets a new identity once, so results computed from sideways or clipped pixels are redone, never
mixed with upright ones. A dataset without them keeps its fingerprint, and its cached results.
The fingerprint itself hashes file bytes only; the kind comes from the check below.

File hashes come from :class:`~lmmclf.filehash.FileHashCache`, so a second run stats the
files instead of reading them. The first time an image is hashed it is also checked through
the reader; the outcome is stored in the memo's ``note`` (``image-ok kind=<kind>`` or
``image-bad: <reason>``), so a later run neither decodes a good image again nor a corrupt one.
A bare ``image-ok`` (written before the kind was recorded, and for cached video frames, which
lmmclf writes itself as plain RGB) says the file decodes but not its kind: an image with that
note is checked once more.
"""

from __future__ import annotations

from typing import Iterable

from lmmclf.errors import ImageReadError
from lmmclf.hashing import hash_file, hash_strings
from lmmclf.image_read import READ_RULE, check_image

# Bump when the definition of the middle frame (or how it is written, lmmclf.datasets.frames)
# changes: it is part of every video dataset's fingerprint, so old artifacts stop matching.
FRAME_VERSION = 1

FINGERPRINT_VERSION = "lmmclf-dataset/1"
NOTE_OK = "image-ok"  # decodes; the kind not recorded (older memos, cached video frames)
NOTE_BAD = "image-bad: "
_KIND = " kind="  # NOTE_OK + _KIND + kind: decodes, and this is its kind
IMAGE = "image"
IMAGE_CHANGED = f"image/read-{READ_RULE}"
VIDEO_OK = "video-ok"
VIDEO_BAD = "video-bad: "


def item_kind(is_video: bool, changed: bool = False) -> str:
    """The kind of an item: a video's middle frame, or an image (``changed``: see the module docstring)."""
    if is_video:
        return f"video-middle/{FRAME_VERSION}"
    return IMAGE_CHANGED if changed else IMAGE


def ok_note(kind: str) -> str:
    """The memo note of an image that reads, with its kind."""
    return f"{NOTE_OK}{_KIND}{kind}"


def note_kind(note: str | None) -> str | None:
    """The kind an ``image-ok kind=...`` note records; None for any other note (bad, bare, none)."""
    if note and note.startswith(NOTE_OK + _KIND):
        return note[len(NOTE_OK + _KIND):]
    return None


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


def pixel_digest(sha256: str, note: str | None) -> str:
    """What per-image work (describe entries) keys an image by: its file's sha256, plus the kind
    when the reader changes its pixels, so an answer about the sideways image is never reused
    for the upright one.

    Args:
        sha256: the file's digest.
        note: its file-hash memo note (``FileHashCache.lookup``; a video frame's bare note is plain).
    """
    kind = note_kind(note)
    return sha256 if kind in (None, IMAGE) else f"{sha256}/{kind}"


def settled(note: str | None) -> bool:
    """The note is a verdict to trust: bad, or good with its kind (not a bare ``image-ok``, not none)."""
    return note_kind(note) is not None or (note or "").startswith(NOTE_BAD)


def verify_image(path: str) -> tuple[str | None, bool]:
    """Check an image through the one reader: (None or the reason it is unusable, its pixels changed).

    ``check_image`` runs Pillow's container checks and then reads the image as every stage does,
    which also catches truncated files that ``verify`` lets through.
    """
    try:
        read = check_image(path)
    except ImageReadError as exc:
        return exc.reason, False
    return None, read.changed


def hash_and_verify(path: str) -> tuple[str, str]:
    """The sha256 of an image file and its memo note (``image-ok kind=...`` or ``image-bad: ...``)."""
    digest = hash_file(path)
    problem, changed = verify_image(path)
    return digest, ok_note(item_kind(False, changed)) if problem is None else NOTE_BAD + problem
