"""CLIP image embeddings: decode and preprocess in DataLoader workers, encode in batches.

Images are decoded and preprocessed by ``num_workers`` worker processes while the main
process runs the encoder under ``torch.inference_mode`` (and autocast on GPU), so with two
or more workers the GPU (or CPU) encoder is the bottleneck, not JPEG/PNG decoding. Files are
read by the one reader (:mod:`lmmclf.image_read`: upright RGB). A file that cannot be read gets
a zero row, ``ok = False`` and its error (one sentence naming the file); the others go on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from lmmclf.datasets.base import Item
from lmmclf.errors import ImageReadError
from lmmclf.image_read import read_rgb


@dataclass
class EncodeSettings:
    """How to run the encoders (nothing here changes the stored content beyond fp16 rounding).

    Args:
        batch_size: images or texts per forward pass.
        num_workers: DataLoader worker processes for image decoding (0 = in the main process).
        device: a resolved torch device.
        precision: a resolved precision (fp32, fp16, bf16).
    """

    batch_size: int
    num_workers: int
    device: str
    precision: str


class ImageFiles:
    """A map-style dataset of preprocessed images; never raises on a bad file.

    Args:
        paths: the image files.
        preprocess: CLIP's validation transform (PIL image -> tensor).
        blank_shape: the shape of the tensor returned for a file that cannot be read.
    """

    def __init__(self, paths: Sequence[str], preprocess: Callable, blank_shape: tuple[int, ...]):
        self.paths = list(paths)
        self.preprocess = preprocess
        self.blank_shape = blank_shape

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        import torch

        path = self.paths[index]
        try:
            return self.preprocess(read_rgb(path)), index, ""
        except ImageReadError as exc:  # that image's failure, recorded; never fatal
            return torch.zeros(self.blank_shape), index, str(exc)
        except Exception as exc:  # noqa: BLE001 - a preprocessing failure is that image's too
            return torch.zeros(self.blank_shape), index, f"Cannot preprocess image {path}: {type(exc).__name__}: {exc}."


def blank_shape(preprocess: Callable) -> tuple[int, ...]:
    """The tensor shape ``preprocess`` produces (read off a 1x1 image)."""
    from PIL import Image

    return tuple(preprocess(Image.new("RGB", (1, 1))).shape)


def image_loader(paths: Sequence[str], preprocess: Callable, settings: EncodeSettings):
    """A DataLoader yielding ``(pixels, indices, errors)`` batches in file order.

    Args:
        paths: the image files.
        preprocess: CLIP's validation transform.
        settings: batch size, workers, device.
    """
    from torch.utils.data import DataLoader

    files = ImageFiles(paths, preprocess, blank_shape(preprocess))
    return DataLoader(
        files,
        batch_size=settings.batch_size,
        shuffle=False,
        num_workers=settings.num_workers,
        pin_memory=settings.device.startswith("cuda"),
        persistent_workers=False,
        prefetch_factor=4 if settings.num_workers > 0 else None,
    )


def image_batches(model: Any, paths: Sequence[str], preprocess: Callable, settings: EncodeSettings):
    """Encode the images batch by batch: yields ``(rows, embeddings (B, D) float32, errors)`` in file order.

    A file that cannot be read gets a zero row and its reason (the others go on).

    Args:
        model: an open_clip model in eval mode on ``settings.device``.
        paths: the image files, in the order of the output rows.
        preprocess: CLIP's validation transform.
        settings: how to run it.
    """
    import torch

    from lmmclf.devices import autocast

    with torch.inference_mode(), autocast(settings.precision, settings.device):
        for pixels, indices, batch_errors in image_loader(paths, preprocess, settings):
            vectors = model.encode_image(pixels.to(settings.device, non_blocking=True)).float().cpu().numpy()
            errors = list(batch_errors)
            for position, error in enumerate(errors):
                if error:
                    vectors[position] = 0.0
            yield indices.numpy(), vectors, errors


def item_paths(items: Sequence[Item]) -> list[str]:
    return [str(item.path) for item in items]
