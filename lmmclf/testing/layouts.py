"""Builders of small datasets in the layouts the adapters read (see docs/datasets.md).

``make_imagefolder`` writes ``root/train/<class>/*.png`` and ``root/test/<class>/*.png``;
``make_ucf101``, ``make_bar`` and ``make_era`` write tiny copies of the official releases
(real videos written with PyAV, the release's split files and naming quirks).
Corrupt files for error tests: :func:`lmmclf.testing.images.write_corrupt_image` and
:func:`lmmclf.testing.videos.write_corrupt_video`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from lmmclf.testing.images import class_image, write_corrupt_image, write_image
from lmmclf.testing.videos import write_corrupt_video

__all__ = [
    "make_imagefolder",
    "make_ucf101",
    "make_bar",
    "make_era",
    "write_corrupt_image",
    "write_corrupt_video",
]


def make_imagefolder(
    root: str | Path,
    class_names: Sequence[str] = ("a", "b", "c"),
    n_train: int = 4,
    n_test: int = 2,
    size: tuple[int, int] = (32, 32),
    seed: int = 0,
    n_val: int = 0,
) -> Path:
    """Write an image folder: ``n_train`` and ``n_test`` PNGs per class (and ``n_val`` in ``val/``).

    Args:
        root: the folder to create (``root/train/<class>/<class>_000.png`` ...).
        class_names: the classes (their folders; the adapter sorts them).
        n_train: training images per class.
        n_test: test images per class.
        size: (width, height) of every image.
        seed: noise seed; the same seed gives the same bytes.
        n_val: validation images per class, in ``root/val/<class>/`` (none: no ``val/`` folder).
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    for label, name in enumerate(class_names):
        for split, count in (("train", n_train), ("test", n_test), ("val", n_val)):
            for i in range(count):
                write_image(root / split / name / f"{name}_{i:03d}.png", class_image(label, len(class_names), size, rng))
    return root


# -- UCF-101 -------------------------------------------------------------------------------
# The release names the files of some classes differently from their folder (its best-known
# quirk); the split files use the folder name plus the file's own spelling.
UCF_FILE_NAMES = {"HandstandPushups": "HandStandPushups"}
UCF_OFFICIAL_GROUPS = 25


def ucf_test_groups(split: int, groups: int) -> set[int]:
    """The groups in the test list of ``split``.

    With the official 25 groups: split 1 tests groups 1-7, split 2 groups 8-14, split 3 groups
    15-21 (as in the release). With fewer groups: group g tests in split ``(g - 1) % 3 + 1``.
    """
    if groups >= 21:
        return set(range(7 * (split - 1) + 1, 7 * split + 1))
    return {g for g in range(1, groups + 1) if (g - 1) % 3 == split - 1}


def make_ucf101(
    root: str | Path,
    classes: Sequence[str] = ("ApplyEyeMakeup", "HandstandPushups", "YoYo"),
    groups: int = 4,
    clips: int | Callable[[int, int], int] = 2,
    n_frames: int = 7,
    size: tuple[int, int] = (32, 24),
    seed: int = 0,
    frames: str | None = None,
) -> Path:
    """Write a UCF-101-shaped release: ``root/UCF-101/<Class>/v_<Class>_gXX_cYY.avi`` and
    ``root/ucfTrainTestlist/`` (classInd.txt, trainlist01-03.txt, testlist01-03.txt, CRLF).

    Args:
        root: the folder to create.
        classes: class folders in classInd order; ``HandstandPushups`` gets the release's
            ``v_HandStandPushups_*`` file names.
        groups: groups per class (the release has 25).
        clips: clips per group, or a function (class index, group) -> clips.
        n_frames: frames per video.
        size: (width, height), both even.
        seed: noise seed.
        frames: write middle frames with this suffix (e.g. ``".png"``) instead of videos,
            i.e. an already-extracted copy of the release.
    """
    from lmmclf.testing.videos import video_frames, write_video

    root = Path(root)
    rng = np.random.default_rng(seed)
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True, exist_ok=True)
    entries: list[tuple[int, int, str]] = []  # (label, group, relative path)
    for label, name in enumerate(classes):
        file_class = UCF_FILE_NAMES.get(name, name)
        for group in range(1, groups + 1):
            count = clips(label, group) if callable(clips) else clips
            for clip in range(1, count + 1):
                relative = f"{name}/v_{file_class}_g{group:02d}_c{clip:02d}.avi"
                clip_frames = video_frames(label, len(classes), n_frames, size, rng)
                if frames:
                    target = (root / "UCF-101" / relative).with_suffix(frames)
                    write_image(target, clip_frames[len(clip_frames) // 2])
                else:
                    write_video(root / "UCF-101" / relative, clip_frames)
                entries.append((label, group, relative))
    _write_crlf(lists / "classInd.txt", [f"{i + 1} {name}" for i, name in enumerate(classes)])
    for split in (1, 2, 3):
        tested = ucf_test_groups(split, groups)
        _write_crlf(lists / f"trainlist0{split}.txt", [f"{rel} {label + 1}" for label, g, rel in entries if g not in tested])
        _write_crlf(lists / f"testlist0{split}.txt", [rel for label, g, rel in entries if g in tested])
    return root


def _write_crlf(path: Path, lines: list[str]) -> None:
    """Write lines with CRLF ends, as the release's list files have."""
    path.write_bytes("".join(line + "\r\n" for line in lines).encode("utf-8"))


# -- BAR -----------------------------------------------------------------------------------
BAR_PREFIXES = ("climbing", "diving", "fishing", "racing", "throwing", "pole vaulting")


def make_bar(
    root: str | Path,
    n_train: int = 3,
    n_test: int = 2,
    size: tuple[int, int] = (32, 32),
    seed: int = 0,
) -> Path:
    """Write a BAR-shaped release: flat ``train/`` and ``test/`` of ``<class>_<n>.jpg``.

    As in the release, vaulting images are named ``pole vaulting_<n>.jpg`` and numbers run on
    from train into test within a class.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    for label, prefix in enumerate(BAR_PREFIXES):
        for number in range(n_train + n_test):
            split = "train" if number < n_train else "test"
            write_image(root / split / f"{prefix}_{number}.jpg", class_image(label, len(BAR_PREFIXES), size, rng))
    return root


# -- ERA -----------------------------------------------------------------------------------
def era_folder_names() -> list[str]:
    """The 25 ERA events as folder names ("Parade/protest" -> "Parade_protest", spaces -> "_")."""
    from lmmclf.datasets.era import EVENTS

    return [name.replace("/", "_").replace(" ", "_") for name in EVENTS]


def make_era(
    root: str | Path,
    classes: Sequence[str] | None = None,
    n_train: int = 1,
    n_test: int = 1,
    n_frames: int = 5,
    size: tuple[int, int] = (32, 32),
    seed: int = 0,
    frames: str | None = None,
) -> Path:
    """Write an ERA-shaped release: ``Train/<class>/*.mp4`` and ``Test/<class>/*.mp4``.

    Args:
        root: the folder to create.
        classes: class folders (default: the 25 ERA events, see :func:`era_folder_names`).
        n_train: training clips per class.
        n_test: test clips per class.
        n_frames: frames per clip.
        size: (width, height), both even.
        seed: noise seed.
        frames: write images with this suffix (e.g. ``".jpg"``) instead of videos.
    """
    from lmmclf.testing.videos import video_frames, write_video

    root = Path(root)
    rng = np.random.default_rng(seed)
    classes = list(classes) if classes is not None else era_folder_names()
    for label, name in enumerate(classes):
        for split, count in (("Train", n_train), ("Test", n_test)):
            for i in range(count):
                clip = video_frames(label, len(classes), n_frames, size, rng)
                stem = root / split / name / f"{name.lower()}_{split.lower()}_{i:03d}"
                if frames:
                    write_image(stem.with_suffix(frames), clip[len(clip) // 2])
                else:
                    write_video(stem.with_suffix(".mp4"), clip)
    return root
