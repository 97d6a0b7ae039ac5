"""The gallery's thumbnails: one small file per image under the report folder.

Images are read by the project's one image reader (:func:`lmmclf.image_read.read_rgb`: upright,
RGB, as every stage sees them) and shrunk so their longest side is at most :data:`MAX_SIDE`
pixels. WebP at quality 75 keeps a 160-pixel thumbnail of a video frame near 4 KB, so
UCF-101's 13,320 images fit the report's 100 MB budget with room to spare; Pillow without
WebP writes JPEG. A thumbnail newer than its image is kept when the report is built again.
Files are read in a thread pool (decoding and resizing release the GIL). An image that cannot
be read is that image's failure, recorded with its reason; the others go on.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

MAX_SIDE = 160  # pixels: the longest side of a thumbnail (the report's limit is 256)
QUALITY = 75
FOLDER = "thumbs"


def _format() -> tuple[str, str]:
    """(Pillow format, file suffix): WebP where this Pillow writes it, else JPEG."""
    from PIL import features

    return ("WEBP", ".webp") if features.check("webp") else ("JPEG", ".jpg")


def thumbnail_name(item_id: str, suffix: str) -> str:
    """The file name of an item's thumbnail: a digest of its id (ids hold slashes and any character)."""
    return hashlib.sha1(item_id.encode("utf-8")).hexdigest()[:20] + suffix


@dataclass
class Thumbnails:
    """Where the thumbnails went.

    Args:
        paths: item id -> the thumbnail's path relative to the report folder.
        failed: item id -> why its image could not be shrunk.
    """

    paths: dict[str, str]
    failed: dict[str, str]


def write_thumbnail(source: Path, target: Path, fmt: str, max_side: int = MAX_SIDE) -> None:
    """Write the thumbnail of ``source`` to ``target`` (through a temp file, then renamed).

    Raises:
        ImageReadError: the image cannot be read.
        OSError: the thumbnail cannot be written.
    """
    from PIL import Image

    from lmmclf.image_read import read_rgb

    image = read_rgb(source)
    image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    image.save(temp, fmt, quality=QUALITY)
    os.replace(temp, target)


def make_thumbnails(items: Sequence, out_dir: Path, max_side: int = MAX_SIDE, workers: int | None = None) -> Thumbnails:
    """The thumbnails of ``items`` (dataset items: ``id`` and ``path``) under ``out_dir/thumbs``.

    Args:
        items: the images.
        out_dir: the report folder.
        max_side: the longest side in pixels.
        workers: threads (default: the CPU count).
    """
    from lmmclf.errors import ImageReadError

    folder = out_dir / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    fmt, suffix = _format()

    def one(item) -> tuple[str, str | None, str | None]:
        name = thumbnail_name(item.id, suffix)
        target = folder / name
        try:
            if not (target.exists() and target.stat().st_mtime >= Path(item.path).stat().st_mtime):
                write_thumbnail(Path(item.path), target, fmt, max_side)
        except (ImageReadError, OSError, ValueError) as exc:
            return item.id, None, str(exc) or type(exc).__name__
        return item.id, f"{FOLDER}/{name}", None

    paths, failed = {}, {}
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        for item_id, path, error in pool.map(one, items):
            if path:
                paths[item_id] = path
            else:
                failed[item_id] = error or "unreadable"
    return Thumbnails(paths, failed)
