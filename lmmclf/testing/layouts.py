"""Builders of small datasets in the layouts the adapters read (see docs/datasets.md).

``make_imagefolder`` writes ``root/train/<class>/*.png`` and ``root/test/<class>/*.png``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from lmmclf.testing.images import class_image, write_image


def make_imagefolder(
    root: str | Path,
    class_names: Sequence[str] = ("a", "b", "c"),
    n_train: int = 4,
    n_test: int = 2,
    size: tuple[int, int] = (32, 32),
    seed: int = 0,
) -> Path:
    """Write an image folder: ``n_train`` and ``n_test`` PNGs per class.

    Args:
        root: the folder to create (``root/train/<class>/<class>_000.png`` ...).
        class_names: the classes (their folders; the adapter sorts them).
        n_train: training images per class.
        n_test: test images per class.
        size: (width, height) of every image.
        seed: noise seed; the same seed gives the same bytes.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    for label, name in enumerate(class_names):
        for split, count in (("train", n_train), ("test", n_test)):
            for i in range(count):
                write_image(root / split / name / f"{name}_{i:03d}.png", class_image(label, len(class_names), size, rng))
    return root
