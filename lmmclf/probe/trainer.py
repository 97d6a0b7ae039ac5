"""The linear probe's training loop: one linear layer, softmax cross entropy, per-epoch curves.

Written for speed without changing the algorithm, and with memory set by the batch. Labels
are class indices (no N x C one-hot); every epoch draws one permutation of the row indices and
each batch gathers its rows by index (no shuffled copy of the feature matrix). When the
features take at most ``in_memory_max_bytes`` (``probe.in_memory_max_bytes``) they live on the
device as one tensor and a batch is a gather there; larger features stay where they are (a
host array or a memory-mapped file, see :class:`Rows`) and each batch is gathered on the host
and moved, so the device holds one batch at a time. The gradient of a linear layer under mean
softmax cross entropy is closed-form, ``dL/dlogits = (softmax - onehot) / B``, so it is computed
directly (two matrix products per step, the one-hot subtracted by index) instead of through
autograd; the update is then made by the real ``torch.optim`` optimizer, so SGD/Adam/AdamW
semantics (momentum, bias correction, weight decay) are PyTorch's own. Test (and validation)
accuracy after every epoch is accumulated on the device over row chunks and read back once at
the end, so a GPU never waits on a per-epoch sync.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np


@dataclass
class ProbeSettings:
    """Hyper-parameters of the probe (all of them change results, all go into the key).

    Args:
        epochs: passes over the training set (paper: 500).
        lr: learning rate (paper: 1e-3).
        optimizer: ``sgd``, ``adam`` or ``adamw``.
        momentum: SGD momentum.
        weight_decay: L2 penalty (as the optimizer applies it).
        batch_size: training batch size.
    """

    epochs: int = 500
    lr: float = 1e-3
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 64


# name -> factory(params, settings): a data table, so a new optimizer is one line. The fused
# kernels (PyTorch >= 2.4, CPU and CUDA) do the same update in one pass: on 2 CPU cores they
# halve the optimizer's share of a probe step.
def _optim(name: str):
    def make(params: list, s: ProbeSettings):
        import torch

        # fused kernels exist for CPU and CUDA tensors; other backends (mps, xpu) take the default
        fused = params[0].device.type in ("cpu", "cuda")
        kwargs = {"lr": s.lr, "weight_decay": s.weight_decay, "fused": fused or None}
        if name == "sgd":
            kwargs["momentum"] = s.momentum
        return getattr(torch.optim, {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW"}[name])(params, **kwargs)

    return make


OPTIMIZERS: dict[str, Callable[[list, ProbeSettings], Any]] = {name: _optim(name) for name in ("sgd", "adam", "adamw")}

# rows per evaluation chunk when the features are not on the device (the logits of one chunk are chunk x C)
EVAL_ROWS = 8192
DEFAULT_IN_MEMORY_MAX_BYTES = 4 << 30  # probe.in_memory_max_bytes' default


class Rows:
    """Some rows of a feature matrix, without copying them: ``matrix[index]`` read on demand.

    Args:
        matrix: (N, F) float32 features, a numpy array or a ``numpy.memmap`` of a file on disk.
        index: the rows used, in order (None: every row).
    """

    def __init__(self, matrix: np.ndarray, index: np.ndarray | None = None):
        self.matrix = matrix
        self.index = None if index is None else np.asarray(index, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.matrix) if self.index is None else len(self.index)

    @property
    def width(self) -> int:
        return int(self.matrix.shape[1])

    @property
    def nbytes(self) -> int:
        return len(self) * self.width * 4

    def take(self, positions: np.ndarray) -> np.ndarray:
        """Rows at ``positions`` (0-based within this subset), as a float32 array."""
        rows = positions if self.index is None else self.index[positions]
        return np.asarray(self.matrix[rows], dtype=np.float32)

    def chunks(self, size: int):
        """``(start, rows)`` for consecutive chunks of ``size`` rows, in order."""
        for start in range(0, len(self), size):
            yield start, self.take(np.arange(start, min(start + size, len(self))))


def _as_rows(x) -> Rows:
    return x if isinstance(x, Rows) else Rows(np.asarray(x))


class _Split:
    """Features and labels of one split, on the device (small) or gathered per batch from the host (large)."""

    def __init__(self, x, y, device: str, resident: bool):
        import torch

        self.rows, self.device, self.resident = _as_rows(x), device, resident
        self.labels = torch.as_tensor(np.asarray(y), dtype=torch.int64, device=device)
        self.tensor = torch.as_tensor(self.rows.take(np.arange(len(self.rows))), device=device) if resident else None

    def __len__(self) -> int:
        return len(self.rows)

    def batch(self, positions):
        """``(x, y)`` of the rows at ``positions`` (a 1-D int64 tensor on the host)."""
        import torch

        if self.resident:
            index = positions.to(self.device)
            return self.tensor[index], self.labels[index]
        x = torch.from_numpy(self.rows.take(positions.numpy())).to(self.device, non_blocking=True)
        return x, self.labels[positions.to(self.device)]

    def predictions(self, weight, bias):
        """Argmax of the head over the whole split, chunk by chunk when it is not on the device."""
        import torch

        if self.resident:
            return torch.addmm(bias, self.tensor, weight.t()).argmax(dim=1)
        return torch.cat([torch.addmm(bias, torch.from_numpy(x).to(self.device), weight.t()).argmax(dim=1)
                          for _, x in self.rows.chunks(EVAL_ROWS)]) if len(self) else torch.zeros(0, dtype=torch.int64, device=self.device)


@dataclass
class ProbeResult:
    """Per-epoch curves and the trained head of one seed.

    Args:
        train_loss: (E,) mean training cross entropy per epoch.
        test_acc: (E,) test accuracy after each epoch.
        val_acc: (E,) validation accuracy after each epoch, or None.
        test_predictions: (T,) predictions after the last epoch.
        weight: (C, F) the head's weights; bias: (C,).
    """

    train_loss: np.ndarray
    test_acc: np.ndarray
    val_acc: np.ndarray | None
    test_predictions: np.ndarray
    weight: np.ndarray
    bias: np.ndarray


def init_head(num_features: int, num_classes: int, generator: Any):
    """``nn.Linear``'s default initialisation, drawn from ``generator`` (so seeds are reproducible)."""
    import torch

    weight = torch.empty(num_classes, num_features)
    torch.nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)
    bound = 1.0 / math.sqrt(num_features) if num_features > 0 else 0.0
    bias = torch.empty(num_classes).uniform_(-bound, bound, generator=generator)
    return weight, bias


def train_linear_probe(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    num_classes: int,
    settings: ProbeSettings,
    seed: int,
    device: str = "cpu",
    x_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    on_epoch: Callable[[int], None] | None = None,
    in_memory_max_bytes: int = DEFAULT_IN_MEMORY_MAX_BYTES,
) -> ProbeResult:
    """Train one linear head and record loss and accuracies at every epoch.

    Args:
        x_train: (n, F) training features (an array or :class:`Rows`); y_train: (n,) labels.
        x_test: (T, F) test features (an array or :class:`Rows`); y_test: (T,) labels.
        num_classes: C.
        settings: the hyper-parameters.
        seed: seeds the initialisation and the batch order.
        device: a resolved torch device.
        x_val: optional (V, F) validation features; y_val: their labels.
        on_epoch: called with the epoch number (1-based) after each epoch (progress bars).
        in_memory_max_bytes: features of all splits up to this size are copied to the device once;
            larger ones are gathered per batch from where they are (same result, slower).
    """
    import torch

    generator = torch.Generator().manual_seed(int(seed))
    width = _as_rows(x_train).width
    weight, bias = init_head(width, num_classes, generator)
    weight = torch.nn.Parameter(weight.to(device))
    bias = torch.nn.Parameter(bias.to(device))
    optimizer = OPTIMIZERS[settings.optimizer]([weight, bias], settings)

    given = {"train": (x_train, y_train), "test": (x_test, y_test)}
    if x_val is not None and len(x_val):
        given["val"] = (x_val, y_val)
    resident = sum(_as_rows(x).nbytes for x, _ in given.values()) <= in_memory_max_bytes
    splits = {name: _Split(x, y, device, resident) for name, (x, y) in given.items()}
    train = splits.pop("train")
    evals = splits  # test, and val when given
    correct = {name: torch.zeros(settings.epochs, dtype=torch.int64, device=device) for name in evals}
    losses = torch.zeros(settings.epochs, dtype=torch.float64, device=device)
    n, step = len(train), settings.batch_size
    weight.grad = torch.zeros_like(weight)
    bias.grad = torch.zeros_like(bias)

    with torch.no_grad():
        for epoch in range(settings.epochs):
            order = torch.randperm(n, generator=generator)
            epoch_loss = torch.zeros((), dtype=torch.float32, device=device)
            for start in range(0, n, step):
                xb, yb = train.batch(order[start : start + step])
                log_probs = torch.log_softmax(torch.addmm(bias, xb, weight.t()), dim=1)
                at_label = (torch.arange(len(yb), device=device), yb)
                epoch_loss -= log_probs[at_label].sum()
                grad_logits = log_probs.exp_()
                grad_logits[at_label] -= 1.0  # softmax - onehot, the one-hot never built
                grad_logits.div_(len(xb))
                torch.mm(grad_logits.t(), xb, out=weight.grad)
                torch.sum(grad_logits, dim=0, out=bias.grad)
                optimizer.step()
            losses[epoch] = epoch_loss / n
            for name, split in evals.items():
                correct[name][epoch] = split.predictions(weight, bias).eq(split.labels).sum()
            if on_epoch:
                on_epoch(epoch + 1)
        predictions = evals["test"].predictions(weight, bias)

    def accuracy(name: str) -> np.ndarray:
        return correct[name].cpu().numpy() / max(len(evals[name]), 1)

    return ProbeResult(
        train_loss=losses.cpu().numpy(),
        test_acc=accuracy("test"),
        val_acc=accuracy("val") if "val" in evals else None,
        test_predictions=predictions.cpu().numpy().astype(np.int64),
        weight=weight.detach().cpu().numpy(),
        bias=bias.detach().cpu().numpy(),
    )
