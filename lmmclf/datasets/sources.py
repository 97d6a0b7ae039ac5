"""What an adapter finds on disk, before hashing and frame extraction: the source files.

An adapter's only job is to read a release's layout and list its :class:`Source` files (an
image, or a video whose middle frame becomes the image) with labels and splits, in the
release's class order. Hashing, verification, frame extraction and the fingerprint are
shared by every adapter (:mod:`lmmclf.datasets.loader`), so they behave the same everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmmclf.datasets.base import SkippedItem
from lmmclf.errors import DatasetError

# Lower-case suffixes recognised as images and as videos.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".avi", ".mp4", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".m4v")


@dataclass(frozen=True)
class Source:
    """One source file of a dataset.

    Args:
        id: stable identifier (for videos and UCF-101 frames: relative path without extension).
        path: the file on disk (an image, or a video).
        label: index into the class names.
        split: ``"train"`` or ``"test"``.
    """

    id: str
    path: Path
    label: int
    split: str

    @property
    def is_video(self) -> bool:
        return self.path.suffix.lower() in VIDEO_SUFFIXES


@dataclass
class Scan:
    """An adapter's result: class names (fixed order), sources, and files it could not use."""

    class_names: list[str]
    sources: list[Source]
    skipped: list[SkippedItem] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)


def is_media(path: Path) -> bool:
    """True for a visible image or video file (hidden files such as ``._x.jpg`` are ignored)."""
    suffix = path.suffix.lower()
    return not path.name.startswith(".") and (suffix in IMAGE_SUFFIXES or suffix in VIDEO_SUFFIXES)


def require_dir(path: Path, what: str) -> Path:
    """``path`` if it is a folder, else a :class:`DatasetError` naming it.

    Args:
        path: the folder.
        what: what it should hold, for the message (e.g. "the BAR release").
    """
    if not path.exists():
        raise DatasetError(f"Dataset root {path} does not exist ({what} was expected there).")
    if not path.is_dir():
        raise DatasetError(f"Dataset root {path} is not a folder ({what} was expected there).")
    return path


def child_ci(parent: Path, name: str) -> Path | None:
    """The child of ``parent`` called ``name``, ignoring case (``Train`` or ``train``), or None."""
    exact = parent / name
    if exact.exists():
        return exact
    if not parent.is_dir():
        return None
    matches = sorted(p for p in parent.iterdir() if p.name.lower() == name.lower())
    return matches[0] if matches else None


def split_dirs(root: Path, what: str) -> dict[str, Path]:
    """The ``train`` and ``test`` folders of ``root`` (any case), both required."""
    found = {}
    for split in ("train", "test"):
        folder = child_ci(root, split)
        if folder is None or not folder.is_dir():
            raise DatasetError(f"{root / split} is missing: {what} needs train/ and test/ folders in {root}.")
        found[split] = folder
    return found


def media_files(folder: Path) -> list[Path]:
    """Image and video files directly in ``folder``, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and is_media(p))


def class_folder_sources(
    root: Path, class_names: list[str], what: str, strict_classes: bool = True, video_dataset: bool = False
) -> list[Source]:
    """Sources of a ``<split>/<class>/<file>`` layout with a known class list.

    Args:
        root: the folder holding ``train/`` and ``test/`` (any case).
        class_names: the classes in their fixed order; folders are matched ignoring case.
        what: the layout's name, for messages.
        strict_classes: a class folder not in ``class_names`` is an error (else it is ignored).
        video_dataset: ids drop every extension (see :func:`source_id`).
    """
    lower = {name.lower(): index for index, name in enumerate(class_names)}
    sources = []
    for split, folder in split_dirs(root, what).items():
        for class_dir in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
            label = lower.get(class_dir.name.lower())
            if label is None:
                if strict_classes:
                    raise DatasetError(
                        f"Class folder {class_dir} is not one of the {len(class_names)} classes of {what} "
                        f"({', '.join(class_names)})."
                    )
                continue
            for file in media_files(class_dir):
                rel = file.relative_to(root).as_posix()
                sources.append(Source(source_id(rel, file, video_dataset), file, label, split))
    return sources


def source_id(relative: str, path: Path, video_dataset: bool = False) -> str:
    """The id of a source: its relative path, without the extension for videos.

    Args:
        relative: the path relative to the dataset root (posix).
        path: the file.
        video_dataset: the release is videos (UCF-101, ERA): drop the extension of images
            too, so a video and its extracted frame get the same id, and ids (and the
            descriptions keyed by them) survive switching between the two.
    """
    if video_dataset or path.suffix.lower() in VIDEO_SUFFIXES:
        return relative[: -len(path.suffix)] if path.suffix else relative
    return relative
