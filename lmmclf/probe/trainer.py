"""The linear probe's training loop: one linear layer, softmax cross entropy, per-epoch curves.

Written for speed without changing the algorithm. The features live on the device as one
tensor; every epoch draws one permutation and gathers the shuffled copy once, and a batch is
a slice of it (no DataLoader, no per-item indexing, no collation). The gradient of a linear
layer under mean softmax cross entropy is closed-form, ``dL/dlogits = (softmax - onehot) / B``,
so it is computed directly (two matrix products per step) instead of through autograd; the
update is then made by the real ``torch.optim`` optimizer, so SGD/Adam/AdamW semantics
(momentum, bias correction, weight decay) are PyTorch's own. Test (and validation) accuracy
after every epoch is one matrix product over the whole split, accumulated on the device and
read back once at the end, so a GPU never waits on a per-epoch sync.
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
) -> ProbeResult:
    """Train one linear head and record loss and accuracies at every epoch.

    Args:
        x_train: (n, F) training features; y_train: (n,) labels.
        x_test: (T, F) test features; y_test: (T,) labels.
        num_classes: C.
        settings: the hyper-parameters.
        seed: seeds the initialisation and the batch order.
        device: a resolved torch device.
        x_val: optional (V, F) validation features; y_val: their labels.
        on_epoch: called with the epoch number (1-based) after each epoch (progress bars).
    """
    import torch

    generator = torch.Generator().manual_seed(int(seed))
    weight, bias = init_head(x_train.shape[1], num_classes, generator)
    weight = torch.nn.Parameter(weight.to(device))
    bias = torch.nn.Parameter(bias.to(device))
    optimizer = OPTIMIZERS[settings.optimizer]([weight, bias], settings)

    xs = torch.as_tensor(x_train, dtype=torch.float32, device=device)
    ys = torch.as_tensor(y_train, dtype=torch.int64, device=device)
    onehot = torch.nn.functional.one_hot(ys, num_classes).to(torch.float32)
    splits = {"test": (x_test, y_test)}
    if x_val is not None and len(x_val):
        splits["val"] = (x_val, y_val)
    evals = {name: (torch.as_tensor(x, dtype=torch.float32, device=device), torch.as_tensor(y, dtype=torch.int64, device=device)) for name, (x, y) in splits.items()}
    correct = {name: torch.zeros(settings.epochs, dtype=torch.int64, device=device) for name in evals}
    losses = torch.zeros(settings.epochs, dtype=torch.float64, device=device)
    n, step = len(xs), settings.batch_size
    weight.grad = torch.zeros_like(weight)
    bias.grad = torch.zeros_like(bias)

    with torch.no_grad():
        for epoch in range(settings.epochs):
            order = torch.randperm(n, generator=generator).to(device)
            shuffled_x, shuffled_onehot = xs[order], onehot[order]
            epoch_loss = torch.zeros((), dtype=torch.float32, device=device)
            for start in range(0, n, step):
                xb = shuffled_x[start : start + step]
                tb = shuffled_onehot[start : start + step]
                log_probs = torch.log_softmax(torch.addmm(bias, xb, weight.t()), dim=1)
                epoch_loss -= (log_probs * tb).sum()
                grad_logits = log_probs.exp_().sub_(tb).div_(len(xb))
                torch.mm(grad_logits.t(), xb, out=weight.grad)
                torch.sum(grad_logits, dim=0, out=bias.grad)
                optimizer.step()
            losses[epoch] = epoch_loss / n
            for name, (x, y) in evals.items():
                correct[name][epoch] = torch.addmm(bias, x, weight.t()).argmax(dim=1).eq(y).sum()
            if on_epoch:
                on_epoch(epoch + 1)
        predictions = torch.addmm(bias, evals["test"][0], weight.t()).argmax(dim=1)

    def accuracy(name: str) -> np.ndarray:
        return correct[name].cpu().numpy() / max(len(evals[name][1]), 1)

    return ProbeResult(
        train_loss=losses.cpu().numpy(),
        test_acc=accuracy("test"),
        val_acc=accuracy("val") if "val" in evals else None,
        test_predictions=predictions.cpu().numpy().astype(np.int64),
        weight=weight.detach().cpu().numpy(),
        bias=bias.detach().cpu().numpy(),
    )
