"""What an adapter finds on disk, before hashing and frame extraction: the source files.

An adapter's only job is to read a release's layout and list its :class:`Source` files (an
image, or a video whose middle frame becomes the image) with labels and splits, in the
release's class order. Hashing, verification, frame extraction and the fingerprint are
shared by every adapter (:mod:`lmmclf.datasets.loader`), so they behave the same everywhere.

Hostile or broken entries are each their own problem, never the whole dataset's: a listed or
found entry that is a folder, a dangling symlink, a symlink loop or not a regular file is
skipped with its reason (:func:`file_problem`, :func:`list_folder`), and a listed path that
leads outside the dataset root is skipped unless ``dataset.allow_outside_root`` is set
(:func:`listed_path`, :func:`outside_root`; the rule is in docs/datasets.md).
"""

from __future__ import annotations

import errno
import os
import stat
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
    val_ids: set[str] = field(default_factory=set)  # train sources that are the release's own val split (CoOp)


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


def split_dirs(root: Path, what: str, optional: tuple[str, ...] = ()) -> dict[str, Path]:
    """The ``train`` and ``test`` folders of ``root`` (any case), both required, and each
    split named in ``optional`` (an image folder's ``val``) whose folder exists."""
    found = {}
    for split in ("train", "test"):
        folder = child_ci(root, split)
        if folder is None or not folder.is_dir():
            raise DatasetError(f"{root / split} is missing: {what} needs train/ and test/ folders in {root}.")
        found[split] = folder
    for split in optional:
        folder = child_ci(root, split)
        if folder is not None and folder.is_dir():
            found[split] = folder
    return found


NOT_FOUND = "not found"
IS_FOLDER = "is a folder, not a file"
OUTSIDE_HINT = "set dataset.allow_outside_root: true to read it"


def file_problem(path: Path) -> str | None:
    """None if ``path`` is a regular file this process can read, else why not (a predicate:
    "not found", "is a symlink loop", ...).

    Everything that would make reading the file raise (``IsADirectoryError``, ``ELOOP``,
    ``FileNotFoundError`` through a dangling symlink) or block (a named pipe) is caught here,
    before any worker opens it.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return "is a dangling symlink (its target is missing)" if os.path.islink(path) else NOT_FOUND
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "is a symlink loop"
        return f"cannot be read ({exc.strerror or exc})"
    if stat.S_ISDIR(info.st_mode):
        return IS_FOLDER
    if not stat.S_ISREG(info.st_mode):
        return "is not a regular file (a pipe, socket or device)"
    if not os.access(path, os.R_OK):
        return "is not readable (permission denied)"
    return None


def listed_reason(listing: str, line: int, problem: str) -> str:
    """The skip reason of a listed entry: ``listed in <file> line <n> but <problem>``."""
    return f"listed in {listing} line {line} but {problem}"


def _under(path: str, folder: str) -> bool:
    """True if ``path`` is ``folder`` or inside it (both absolute and normalised)."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def listed_path(base: Path, listed: str) -> Path:
    """The file a listing line names, relative to ``base``, with ``..`` resolved on the text.

    Resolving ``..`` here (not by the kernel) matters: the kernel resolves ``link/..`` to the
    parent of the link's *target*, so an entry like ``a/link/../../x`` could leave the root
    although its text stays inside it. Absolute entries are kept as they are.
    """
    return Path(os.path.normpath(os.path.join(os.path.abspath(base), listed)))


def outside_root(base: Path, path: Path, allow: bool) -> str | None:
    """Why a listed ``path`` (from :func:`listed_path`) may not be read, or None if it may.

    The rule: the path's text must stay inside ``base``; and following symlinks, the file must
    lie inside the real ``base`` or inside the real folder that holds it. So a symlinked root
    and symlinked folders (class folders on another disk) work, while a listed entry that is
    itself a symlink to a file outside the root does not.

    Args:
        base: the folder the listing's paths are relative to (the dataset root).
        path: the file the entry names.
        allow: ``dataset.allow_outside_root``: every path may be read.
    """
    if allow:
        return None
    root = os.path.normpath(os.path.abspath(base))
    if not _under(str(path), root):
        return f"lies outside the dataset root {root} ({OUTSIDE_HINT})"
    if not os.path.exists(path):
        return None  # nothing is read; the caller says it is missing or a dangling symlink
    real = os.path.realpath(path)
    if not (_under(real, os.path.realpath(root)) or _under(real, os.path.realpath(path.parent))):
        return f"is a symlink to {real}, outside the dataset root {root} ({OUTSIDE_HINT})"
    return None


@dataclass
class Listing:
    """The visible entries of one folder: sub-folders, media files, and entries that cannot be used."""

    folders: list[Path] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    skipped: list[SkippedItem] = field(default_factory=list)


def list_folder(folder: Path) -> Listing:
    """Sort the visible entries of ``folder`` into sub-folders, media files and skipped entries.

    Skipped, with the reason: a dangling or looping symlink of any name (it may be a class folder
    on an unmounted disk), a media-named entry that is not a regular readable file, and a folder
    symlink leading back to ``folder`` or above it (a loop: as a class it would be empty or
    would hold the dataset itself). Other files (README.txt) are ignored, as before.
    """
    listing = Listing()
    here = os.path.realpath(folder)
    try:
        entries = sorted(folder.iterdir())
    except OSError as exc:  # e.g. a class folder without read permission: its problem, not the dataset's
        listing.skipped.append(SkippedItem(str(folder), f"cannot be listed ({exc.strerror or exc})"))
        return listing
    for entry in entries:
        if entry.name.startswith("."):
            continue
        problem = file_problem(entry)
        if problem is None:
            if is_media(entry):
                listing.files.append(entry)
        elif problem == IS_FOLDER:
            target = os.path.realpath(entry)
            if _under(here, target):
                listing.skipped.append(
                    SkippedItem(str(entry), f"is a symlink to {target}, which holds it (a loop); not used as a folder")
                )
            else:
                listing.folders.append(entry)
        elif entry.is_symlink() or is_media(entry):
            listing.skipped.append(SkippedItem(str(entry), problem))
    return listing


def class_folder_sources(
    root: Path, class_names: list[str], what: str, strict_classes: bool = True, video_dataset: bool = False,
    optional_splits: tuple[str, ...] = (),
) -> tuple[list[Source], list[SkippedItem]]:
    """Sources of a ``<split>/<class>/<file>`` layout with a known class list.

    Args:
        root: the folder holding ``train/`` and ``test/`` (any case).
        class_names: the classes in their fixed order; folders are matched ignoring case.
        what: the layout's name, for messages.
        strict_classes: a class folder not in ``class_names`` is an error (else it is ignored).
        video_dataset: ids drop every extension (see :func:`source_id`).
        optional_splits: further split folders read where they exist (``("val",)``); their
            sources carry that split name, for the adapter to map.

    Returns:
        the sources, and the entries skipped with their reasons (see :func:`list_folder`).
    """
    lower = {name.lower(): index for index, name in enumerate(class_names)}
    sources, skipped = [], []
    for split, folder in split_dirs(root, what, optional_splits).items():
        split_listing = list_folder(folder)
        skipped += split_listing.skipped
        for class_dir in split_listing.folders:
            label = lower.get(class_dir.name.lower())
            if label is None:
                if strict_classes:
                    raise DatasetError(
                        f"Class folder {class_dir} is not one of the {len(class_names)} classes of {what} "
                        f"({', '.join(class_names)})."
                    )
                continue
            class_listing = list_folder(class_dir)
            skipped += class_listing.skipped
            for file in class_listing.files:
                rel = file.relative_to(root).as_posix()
                sources.append(Source(source_id(rel, file, video_dataset), file, label, split))
    return sources, skipped


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
