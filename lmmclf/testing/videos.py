"""Tiny real videos written with PyAV, for tests and demos of the video datasets.

Every frame shows its class colour (see :mod:`lmmclf.testing.images`) plus a brightness that
grows with the frame index, so the middle frame differs visibly from its neighbours.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lmmclf.testing.images import class_image

# container suffix -> codec; MPEG-4 Part 2 is what UCF-101's XviD AVIs hold, and every
# FFmpeg build (PyAV's wheels included) can both encode and decode it.
CODECS = {".avi": "mpeg4", ".mp4": "mpeg4", ".mkv": "mpeg4"}


def video_frames(label: int, n_classes: int, n_frames: int, size: tuple[int, int], rng) -> list[np.ndarray]:
    """The (H, W, 3) uint8 frames of one clip of class ``label``."""
    base = class_image(label, n_classes, size, rng).astype(np.int16)
    ramp = np.linspace(-60, 60, n_frames) if n_frames > 1 else np.zeros(1)
    return [np.clip(base + int(step), 0, 255).astype(np.uint8) for step in ramp]


def write_video(path: Path, frames: list[np.ndarray], fps: int = 25) -> Path:
    """Encode ``frames`` (even width and height) into ``path``; the codec follows the suffix."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames[0].shape[:2]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(CODECS.get(path.suffix.lower(), "mpeg4"), rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"qscale": "2"}  # near-lossless: colours stay class-separable
        for pixels in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_corrupt_video(path: Path, seed: int = 0) -> Path:
    """A file with a video suffix whose bytes are random (no decoder accepts it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return path
