"""Synthetic images a linear probe can learn: a class-dependent colour plus noise.

Class ``k`` of ``n`` gets a hue spread evenly around the colour wheel, with a brightness
pattern that also depends on the class (stripes at a class-dependent angle), and every pixel
gets Gaussian noise. So classes are separable, but no two images are byte-identical.
"""

from __future__ import annotations

import colorsys
import math
from pathlib import Path

import numpy as np


def class_image(label: int, n_classes: int, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """An (H, W, 3) uint8 image for class ``label``.

    Args:
        label: the class index.
        n_classes: how many classes share the colour wheel.
        size: (width, height).
        rng: the noise source.
    """
    width, height = size
    hue = label / max(n_classes, 1)
    base = np.array(colorsys.hsv_to_rgb(hue, 0.8, 0.85)) * 255.0
    angle = math.pi * label / max(n_classes, 1)
    ys, xs = np.mgrid[0:height, 0:width]
    stripes = np.sin((xs * math.cos(angle) + ys * math.sin(angle)) * (2 * math.pi / 8.0))
    pixels = base[None, None, :] * (0.8 + 0.2 * stripes[..., None])
    pixels = pixels + rng.normal(0.0, 18.0, size=(height, width, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def write_image(path: Path, pixels: np.ndarray) -> Path:
    """Save an (H, W, 3) uint8 array as an image (format from the suffix)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def write_corrupt_image(path: Path) -> Path:
    """A file with an image suffix whose content is a truncated PNG (decoding fails)."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8) + 127).save(buffer, format="PNG")
    data = buffer.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[: len(data) // 2])
    return path
