"""UCF-101 as released: class folders of ``.avi`` videos and ``ucfTrainTestlist/``.

Accepted roots (see docs/datasets.md):

- the folder holding ``UCF-101/`` (the videos) and ``ucfTrainTestlist/`` (the split files);
- the videos folder itself, with ``ucfTrainTestlist/`` beside it (in its parent);
- either of the above where the class folders hold already-extracted middle frames with the
  same relative paths and an image extension (``.png``, ``.jpg``...) instead of videos.

The split files are read exactly as released: ``classInd.txt`` lines ``"1 ApplyEyeMakeup"``
give the class order; ``trainlist0N.txt`` lines ``"ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1"``
carry a 1-based label that must agree with the folder; ``testlist0N.txt`` lines carry no label
(the folder gives it). CRLF line ends and blank lines are accepted. The release's quirks are
kept: the folder ``HandstandPushups`` holds ``v_HandStandPushups_*`` files and the lists use
that mixed spelling; a listed file whose case differs from the file on disk is found by a
case-insensitive match within its class folder.

CoOp's middle-frame release (``ucf101/UCF-101-midframes/`` + ``split_zhou_UCF101.json``, see
:mod:`lmmclf.datasets.coop`) is detected under the registered root, or in its ``ucf101/``
folder, and read instead; it holds official split 1 only.

A listed entry that cannot be read (missing, a folder named ``*.avi``, a dangling symlink, a
symlink loop, a pipe) or whose path leads outside the videos folder (``YoYo/../../x.png``, a
symlink to a file elsewhere) is skipped with its reason; the rest of the dataset loads
(:mod:`lmmclf.datasets.sources`; ``dataset.allow_outside_root`` lifts the second check).
"""

from __future__ import annotations

import os
from pathlib import Path

from lmmclf.config import DatasetSection
from lmmclf.datasets import coop
from lmmclf.datasets.adapter import Adapter
from lmmclf.datasets.base import SkippedItem
from lmmclf.datasets.sources import (
    IMAGE_SUFFIXES,
    NOT_FOUND,
    Scan,
    Source,
    child_ci,
    file_problem,
    listed_path,
    listed_reason,
    outside_root,
    require_dir,
    source_id,
)
from lmmclf.errors import DatasetError

LISTS_DIR = "ucfTrainTestlist"
VIDEO_DIRS = ("UCF-101", "UCF101")  # the release's folder name first
SPLITS = (1, 2, 3)


class Ucf101Adapter(Adapter):
    type_name = "ucf101"
    summary = (
        "UCF-101 release: UCF-101/<Class>/*.avi (or extracted frames) + ucfTrainTestlist/; split 1|2|3; "
        "or CoOp's UCF-101-midframes/ + split_zhou_UCF101.json"
    )

    def scan(self, root: Path, section: DatasetSection) -> Scan:
        if section.split not in SPLITS:
            raise DatasetError(f"UCF-101 has splits 1, 2 and 3; dataset.split is {section.split}.")
        require_dir(root, "the UCF-101 release")
        layout = coop.LAYOUTS["ucf101"]
        if coop.find(root, layout) is not None:
            if section.split != 1:
                raise DatasetError(
                    f"CoOp's UCF-101 frames at {root} hold official split 1 only; dataset.split is {section.split}."
                )
            return coop.scan_layout(root, layout, section)
        videos, lists = locate(root)
        class_names = read_class_index(lists / "classInd.txt")
        finder = _FileFinder(videos)
        sources: list[Source] = []
        skipped: list[SkippedItem] = []
        for split, name in (("train", f"trainlist0{section.split}.txt"), ("test", f"testlist0{section.split}.txt")):
            entries = read_split_file(lists / name, class_names, labelled=split == "train")
            for line, relative, label in entries:
                listed = listed_path(videos, relative)
                # the text first (`..`, absolute paths), then the file found (it may be a symlink)
                outside = outside_root(videos, listed, section.allow_outside_root)
                path, problem = (None, "") if outside else finder.find(listed)
                if path is not None:
                    outside = outside_root(videos, path, section.allow_outside_root)
                if label is None and not outside:
                    outside = "is not in a class folder named in classInd.txt"
                if outside or path is None:
                    skipped.append(SkippedItem(str(listed), listed_reason(name, line, outside or problem)))
                    continue
                sources.append(Source(source_id(relative, Path(relative), video_dataset=True), path, label, split))
        return Scan(class_names, sources, skipped, options={"split": section.split})


def locate(root: Path) -> tuple[Path, Path]:
    """The videos (or frames) folder and the split-files folder for a UCF-101 root."""
    lists = child_ci(root, LISTS_DIR)
    if lists is not None and lists.is_dir():
        for name in VIDEO_DIRS:
            videos = child_ci(root, name)
            if videos is not None and videos.is_dir():
                return videos, lists
        return root, lists  # class folders directly in root, lists inside it
    lists = child_ci(root.parent, LISTS_DIR)
    if lists is not None and lists.is_dir():
        return root, lists
    raise DatasetError(
        f"UCF-101 split files not found: expected {root / LISTS_DIR}/classInd.txt "
        f"(or {root.parent / LISTS_DIR}/ beside the videos folder); get UCF101TrainTestSplits-RecognitionTask.zip."
    )


def _lines(path: Path) -> list[tuple[int, str]]:
    """Non-blank lines with their 1-based numbers; CRLF, BOM and trailing spaces removed."""
    if not path.is_file():
        raise DatasetError(f"UCF-101 split file {path} is missing.")
    try:
        text = path.read_text(encoding="utf-8-sig", errors="strict")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"UCF-101 split file {path} is not UTF-8 text ({exc.reason} at byte {exc.start}).") from exc
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]


def read_class_index(path: Path) -> list[str]:
    """Class names in ``classInd.txt`` order (its 1-based indices must run 1..N)."""
    names = []
    for number, line in _lines(path):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise DatasetError(f"{path} line {number}: expected '<index> <ClassName>', got {line!r}.")
        if int(parts[0]) != len(names) + 1:
            raise DatasetError(f"{path} line {number}: index {parts[0]} out of order (expected {len(names) + 1}).")
        names.append(parts[1])
    if not names:
        raise DatasetError(f"UCF-101 class list {path} is empty.")
    return names


def read_split_file(path: Path, class_names: list[str], labelled: bool) -> list[tuple[int, str, int | None]]:
    """(line number, relative path, 0-based label) for every entry of a train/test list.

    An absolute path (not in the release; a hostile or hand-made list) takes its class from
    its parent folder, and gets the label None when that is no class: the adapter skips it
    (it lies outside the dataset root) instead of failing the whole list.

    Args:
        path: ``trainlist0N.txt`` or ``testlist0N.txt``.
        class_names: from ``classInd.txt``.
        labelled: train lists end with the 1-based class index, which must match the folder.
    """
    index = {name: i for i, name in enumerate(class_names)}
    lower = {name.lower(): i for i, name in enumerate(class_names)}
    entries = []
    for number, line in _lines(path):
        parts = line.split()
        relative = parts[0].replace("\\", "/")
        absolute = relative.startswith("/")
        folder = Path(relative).parent.name if absolute else relative.split("/", 1)[0] if "/" in relative else None
        if folder is None:
            raise DatasetError(f"{path} line {number}: expected '<Class>/<video>.avi', got {line!r}.")
        label = index.get(folder, lower.get(folder.lower()))
        if label is None and not absolute:
            raise DatasetError(f"{path} line {number}: class '{folder}' is not in classInd.txt.")
        if labelled and label is not None:
            if len(parts) < 2 or not parts[1].isdigit():
                raise DatasetError(f"{path} line {number}: expected '<Class>/<video>.avi <index>', got {line!r}.")
            if int(parts[1]) != label + 1:
                raise DatasetError(
                    f"{path} line {number}: label {parts[1]} disagrees with the folder '{folder}' "
                    f"(class {label + 1} in classInd.txt)."
                )
        entries.append((number, relative, label))
    if not entries:
        raise DatasetError(f"UCF-101 split file {path} is empty.")
    return entries


class _FileFinder:
    """Finds a listed file (or its extracted frame), exactly or ignoring case, within its class folder."""

    def __init__(self, videos: Path):
        self.videos = Path(os.path.abspath(videos))  # compared with listed_path's absolute paths
        self._folders: dict[str, dict[str, Path]] = {}

    def _listing(self, folder: Path) -> dict[str, Path]:
        """Entries of ``folder`` by lower-case name; a class folder of the release is matched ignoring case."""
        key = str(folder).lower()
        if key not in self._folders:
            directory = child_ci(self.videos, folder.name) if folder.parent == self.videos else folder
            files = {}
            try:
                for path in sorted(directory.iterdir()) if directory is not None and directory.is_dir() else ():
                    files.setdefault(path.name.lower(), path)
            except OSError:  # an unreadable class folder: its entries are reported as not found
                pass
            self._folders[key] = files
        return self._folders[key]

    def find(self, listed: Path) -> tuple[Path | None, str]:
        """The readable file for ``listed`` (a path from :func:`listed_path`), or None and why not.

        The case-insensitive fallback takes the first candidate that is a readable regular file:
        a folder named ``x.avi``, a dangling symlink or a loop is never returned (reading it
        would abort the whole load), but its problem is the reason given when nothing fits.
        """
        problem = file_problem(listed)
        if problem is None:
            return listed, ""
        found = problem
        files = self._listing(listed.parent)
        stem = Path(listed.name).stem.lower()
        for candidate in dict.fromkeys((listed.name.lower(), *(stem + suffix for suffix in IMAGE_SUFFIXES))):
            if candidate in files:
                problem = file_problem(files[candidate])
                if problem is None:
                    return files[candidate], ""
                if found == NOT_FOUND:
                    found = problem
        return None, found
