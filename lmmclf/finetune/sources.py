"""Where the trainer's input tokens come from: the trunk cache, or images through the frozen trunk.

The trainer only ever sees batches of trunk outputs (tokens ``(B, L, W)``, or pooled vectors
``(B, W)`` with no block unlocked) and labels. A
:class:`CachedTokens` source slices them from the trunk artifact held in memory; a
:class:`StreamedImages` source decodes and preprocesses the images and runs the frozen
trunk on them (the full forward, ``--no-trunk-cache``, and the only choice with
augmentation). Both visit the same items in the same order, so the two paths train the
same model up to floating-point rounding.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Callable, Iterator, Sequence

import torch

from lmmclf.errors import DatasetError, ImageReadError
from lmmclf.image_read import read_rgb
from lmmclf.stages import command

Batch = tuple[torch.Tensor, torch.Tensor]


class CachedTokens:
    """Trunk outputs on the GPU when they fit in half its free memory, else in host memory;
    each batch is gathered from them and moved to the device.

    Args:
        train_tokens: ``(N_train, L, W)`` trunk outputs of the training images (any float dtype),
            or ``(N_train, W)`` when the trunk pools.
        train_labels: ``(N_train,)`` int64.
        test_tokens: ``(N_test, L, W)`` or ``(N_test, W)``.
        test_labels: ``(N_test,)``.
        device: where the batches go.
    """

    def __init__(self, train_tokens, train_labels, test_tokens, test_labels, device: torch.device):
        self.train_tokens, self.train_labels = train_tokens, train_labels
        self.test_tokens, self.test_labels = test_tokens, test_labels
        self.device = device
        self.placement = placement(self.train_tokens.nbytes + self.test_tokens.nbytes, device)
        if self.placement == "device":
            # Fits comfortably: one copy now, then every batch is a gather on the GPU.
            self.train_tokens, self.test_tokens = self.train_tokens.to(device), self.test_tokens.to(device)
            self.train_labels, self.test_labels = self.train_labels.to(device), self.test_labels.to(device)

    @property
    def num_train(self) -> int:
        return len(self.train_labels)

    def train_batches(self, order: torch.Tensor, batch_size: int) -> Iterator[Batch]:
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size].to(self.train_labels.device)
            yield self._move(self.train_tokens[index]), self.train_labels[index].to(self.device)

    def test_batches(self, batch_size: int) -> Iterator[Batch]:
        for start in range(0, len(self.test_labels), batch_size):
            stop = start + batch_size
            yield self._move(self.test_tokens[start:stop]), self.test_labels[start:stop].to(self.device)

    def _move(self, tokens: torch.Tensor) -> torch.Tensor:
        # float32 in: autocast (if any) picks each op's precision, as in the full forward.
        return tokens.to(self.device, non_blocking=True).float()


def placement(nbytes: int, device: torch.device) -> str:
    """``device`` if the cache takes under half of the GPU's free memory, else ``host``."""
    if device.type != "cuda":
        return "host"
    free, _ = torch.cuda.mem_get_info(device)
    return "device" if nbytes < free // 2 else "host"


class ImageFiles(torch.utils.data.Dataset):
    """Images from paths, read upright in RGB (:mod:`lmmclf.image_read`), through a preprocessing transform.

    Args:
        paths: image files.
        transform: the CLIP preprocessing (PIL image -> tensor).
    """

    def __init__(self, paths: Sequence, transform: Callable):
        self.paths, self.transform = list(paths), transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        path = self.paths[index]
        try:
            image = read_rgb(path)
        except ImageReadError as exc:
            # training cannot drop an image mid-run without changing the model it makes: stop, named
            raise DatasetError(f"Cannot read image {path} ({exc.reason}); fix or remove it and rerun "
                               f"`{command('datasets', None, ['check'])}`.") from exc
        return self.transform(image)


class StreamedImages:
    """Images decoded every epoch and run through the frozen trunk (the full forward).

    Args:
        trunk: the :class:`~lmmclf.finetune.tail.FrozenTrunk`.
        train_paths, train_labels: training images and labels.
        test_paths, test_labels: test images and labels.
        train_transform: preprocessing of training images (with augmentation if any).
        test_transform: preprocessing of test images.
        device: where the trunk runs.
        autocast: a factory of the mixed-precision context the trunk runs in.
        num_workers: DataLoader worker processes.
        random_transform: ``train_transform`` draws random numbers (augmentation): a run stopped
            inside an epoch cannot replay the rest of it, so it resumes from the epoch's start.
    """

    def __init__(self, trunk, train_paths, train_labels, test_paths, test_labels, train_transform, test_transform,
                 device: torch.device, autocast: Callable[[], AbstractContextManager], num_workers: int = 0,
                 random_transform: bool = False):
        self.trunk = trunk
        self.resumable_mid_epoch = not random_transform
        self.train = ImageFiles(train_paths, train_transform)
        self.test = ImageFiles(test_paths, test_transform)
        self.train_labels, self.test_labels = train_labels, test_labels
        self.device, self.autocast, self.num_workers = device, autocast, num_workers

    @property
    def num_train(self) -> int:
        return len(self.train_labels)

    def train_batches(self, order: torch.Tensor, batch_size: int) -> Iterator[Batch]:
        batches = [order[start : start + batch_size].tolist() for start in range(0, len(order), batch_size)]
        yield from self._run(self.train, batches, self.train_labels)

    def test_batches(self, batch_size: int) -> Iterator[Batch]:
        n = len(self.test_labels)
        batches = [list(range(start, min(start + batch_size, n))) for start in range(0, n, batch_size)]
        yield from self._run(self.test, batches, self.test_labels)

    def _run(self, dataset: ImageFiles, batches: list[list[int]], labels: torch.Tensor) -> Iterator[Batch]:
        loader = torch.utils.data.DataLoader(
            dataset, batch_sampler=batches, num_workers=self.num_workers, pin_memory=self.device.type == "cuda"
        )
        self.trunk.eval()
        for images, index in zip(loader, batches):
            with torch.no_grad(), self.autocast():
                tokens = self.trunk(images.to(self.device, non_blocking=True))
            yield tokens.float(), labels[index].to(self.device)
