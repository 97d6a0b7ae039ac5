"""The fine-tuning loop: CE + alpha * ||x_i - C_{l_i}||^2, one epoch at a time, checkpointed.

Per step: tokens -> tail -> embedding x (CLIP's image embedding) -> head -> logits;
``loss = CE(logits, y) + alpha * reg``, with ``reg`` the squared Euclidean distance of each
x_i to its class prototype, averaged over the batch (``reg_reduction="mean"``) or summed
as eq. 2 writes it (``"sum"``). alpha = 0 drops the term: the paper's baseline.

Per epoch: the training order is a permutation drawn from (seed, epoch) alone, then the test
split is evaluated (accuracy, CE, distance to the own-class prototype), and a checkpoint is
written. A stop request (Ctrl-C) is honoured between steps: the position inside the epoch
is saved too, so a resumed run replays exactly the batches an uninterrupted one would (with
random augmentation, which cannot be replayed mid-epoch, the epoch restarts instead).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F

from lmmclf.devices import autocast
from lmmclf.errors import LmmclfError
from lmmclf.finetune.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_aside, set_rng_state

CURVES = (
    "train_loss",  # total loss per sample (CE + alpha * reg, reg as a per-sample mean)
    "ce_loss",  # training cross entropy
    "reg_loss",  # training squared distance to the own-class prototype, per sample (J_reg / N)
    "train_acc",
    "train_proto_distance",  # mean Euclidean distance to the own-class prototype, training images
    "test_loss",  # test cross entropy
    "test_acc",
    "proto_distance",  # mean Euclidean distance to the own-class prototype, test images
)


@dataclass(frozen=True)
class TrainSettings:
    """The hyperparameters of one run (everything here goes into the artifact key).

    Args:
        alpha: weight of the prototype term; 0 is the baseline.
        epochs, batch_size, lr: paper 2: 100, 64, 1e-4.
        optimizer: ``adam``, ``adamw`` or ``sgd``.
        weight_decay, momentum: optimizer settings (momentum: sgd only).
        schedule: ``constant`` or ``cosine`` (per epoch, to 0 at the last epoch).
        reg_reduction: ``mean`` or ``sum`` of the squared distances over the batch.
        precision: resolved ``fp32``, ``bf16`` or ``fp16``.
    """

    alpha: float
    epochs: int
    batch_size: int
    lr: float
    optimizer: str
    weight_decay: float
    momentum: float
    schedule: str
    reg_reduction: str
    precision: str

    def identity(self) -> dict[str, Any]:
        values = asdict(self)
        if self.optimizer != "sgd":
            values.pop("momentum")  # unused: must not split the cache
        return values


@dataclass
class RunResult:
    """What one seed's training produced."""

    seed: int
    curves: dict[str, list[float]]
    final_acc: float
    best_acc: float
    best_epoch: int
    test_predictions: list[int]
    test_labels: list[int]
    state_dict: dict[str, torch.Tensor] = field(repr=False, default_factory=dict)


class TrainingInterrupted(LmmclfError):
    """Training stopped on request; the checkpoint holds everything to continue."""


def epoch_order(num_items: int, seed: int, epoch: int) -> torch.Tensor:
    """The training order of one epoch: a function of (seed, epoch) only, so resume replays it."""
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(num_items, generator=generator)


def init_head(head: torch.nn.Linear, seed: int) -> None:
    """``nn.Linear``'s own initialisation, drawn from a generator seeded by ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    bound = 1 / math.sqrt(head.in_features)
    with torch.no_grad():
        weight = torch.empty(head.weight.shape).uniform_(-bound, bound, generator=generator)
        bias = torch.empty(head.bias.shape).uniform_(-bound, bound, generator=generator)
        head.weight.copy_(weight)
        head.bias.copy_(bias)


def make_optimizer(params, settings: TrainSettings) -> torch.optim.Optimizer:
    """The optimizer named in ``settings`` (a table, not a chain of ifs)."""
    factories = {
        "adam": lambda: torch.optim.Adam(params, lr=settings.lr, weight_decay=settings.weight_decay),
        "adamw": lambda: torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay),
        "sgd": lambda: torch.optim.SGD(params, lr=settings.lr, momentum=settings.momentum, weight_decay=settings.weight_decay),
    }
    return factories[settings.optimizer]()


def make_schedule(optimizer: torch.optim.Optimizer, settings: TrainSettings):
    """Per-epoch learning-rate schedule: constant (the paper says nothing of one) or cosine."""
    if settings.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=settings.epochs)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)


def prototype_distances(embedding: torch.Tensor, labels: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distance of each embedding to its class prototype, in float32."""
    return (embedding.float() - prototypes[labels]).pow(2).sum(dim=1)


class Trainer:
    """Trains one seed of one configuration.

    Args:
        model: a :class:`~lmmclf.finetune.tail.FinetuneModel` whose tail holds CLIP's weights.
        source: a token source (:mod:`lmmclf.finetune.sources`).
        prototypes: ``(C, D)`` class prototypes on the training device.
        settings: the hyperparameters.
        seed: the run's seed (head initialisation and data order).
        device: the training device.
        checkpoint_path: where the checkpoint is written every epoch and on a stop request.
        should_stop: polled after each step; True saves a checkpoint and raises TrainingInterrupted.
        on_step: called with the trainer after each step (for progress bars).
    """

    def __init__(self, model, source, prototypes: torch.Tensor, settings: TrainSettings, seed: int,
                 device: torch.device, checkpoint_path: Path, should_stop: Callable[[], bool] = lambda: False,
                 on_step: Optional[Callable[..., None]] = None):
        self.model, self.source, self.prototypes = model, source, prototypes
        self.settings, self.seed, self.device = settings, seed, device
        self.checkpoint_path, self.should_stop = checkpoint_path, should_stop
        self.on_step = on_step or (lambda trainer: None)
        init_head(model.head, seed)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = make_optimizer(self.params, settings)
        self.schedule = make_schedule(self.optimizer, settings)
        self.autocast = partial(autocast, settings.precision, device)
        # A grad scaler only for fp16: bf16 has float32's exponent range and needs none.
        self.scaler = torch.amp.GradScaler(device.type, enabled=settings.precision == "fp16")
        self.epoch, self.step = 0, 0
        self.sums = _zero_sums()
        self.curves: dict[str, list[float]] = {name: [] for name in CURVES}
        self.last_predictions: list[int] = []

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.source.num_train / self.settings.batch_size)

    # -- checkpoints ------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "settings": self.settings.identity(),
            "epoch": self.epoch,
            "step": self.step,
            "sums": dict(self.sums),
            "curves": {k: list(v) for k, v in self.curves.items()},
            "last_predictions": list(self.last_predictions),
            "model": {k: v.detach().cpu() for k, v in self.trainable_state().items()},
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng_state(),
        }

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """The weights this run changes: the tail and the head."""
        return self.model.state_dict()

    def restore(self) -> bool:
        """Continue from the checkpoint if there is one for this seed and these settings.

        A checkpoint whose contents do not fit this run (wrong shapes, positions, keys) is
        moved aside and the trainer keeps its fresh state.
        """
        state = load_checkpoint(self.checkpoint_path)
        if state is None or state["seed"] != self.seed or state["settings"] != self.settings.identity():
            return False
        fresh = {"model": {k: v.detach().clone() for k, v in self.model.state_dict().items()}, "rng": rng_state()}
        try:
            self._apply(state)
        except (RuntimeError, KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
            # a partial load may have changed some weights or RNGs: back to the fresh start
            self.model.load_state_dict(fresh["model"])
            set_rng_state(fresh["rng"])
            self.optimizer = make_optimizer(self.params, self.settings)
            self.schedule = make_schedule(self.optimizer, self.settings)
            self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.settings.precision == "fp16")
            self.epoch, self.step, self.sums = 0, 0, _zero_sums()
            self.curves, self.last_predictions = {name: [] for name in CURVES}, []
            detail = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
            set_aside(self.checkpoint_path, f"its contents do not fit this run: {detail}")
            return False
        return True

    def _apply(self, state: dict[str, Any]) -> None:
        epoch, step, curves = state["epoch"], state["step"], state["curves"]
        if not 0 <= epoch <= self.settings.epochs or not 0 <= step < max(self.steps_per_epoch, 1):
            raise ValueError(f"position epoch {epoch}, step {step} is out of range")
        if set(curves) != set(CURVES) or any(len(curves[name]) != epoch for name in CURVES):
            raise ValueError("its curves do not match its epoch")
        if set(state["sums"]) != set(_zero_sums()):
            raise ValueError("its running sums are incomplete")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        self.epoch, self.step, self.sums = epoch, step, state["sums"]
        self.curves, self.last_predictions = curves, state["last_predictions"]

    def save(self) -> None:
        save_checkpoint(self.checkpoint_path, self.state())

    # -- the loop ---------------------------------------------------------------------
    def fit(self) -> RunResult:
        """Train the remaining epochs and return the result (the checkpoint is left for the caller)."""
        while self.epoch < self.settings.epochs:
            self.train_epoch()
            self.finish_epoch(self.evaluate())
            self.save()
        return self.result()

    def train_epoch(self) -> None:
        order = epoch_order(self.source.num_train, self.seed, self.epoch)
        skip = self.step * self.settings.batch_size  # resumed inside the epoch: replay the rest only
        self.model.train()
        for tokens, labels in self.source.train_batches(order[skip:], self.settings.batch_size):
            self.train_step(tokens, labels)
            self.step += 1
            self.on_step(self)
            if self.should_stop() and self.step < self.steps_per_epoch:
                if getattr(self.source, "resumable_mid_epoch", True):
                    self.save()
                    raise TrainingInterrupted(
                        f"Training stopped at epoch {self.epoch + 1}, step {self.step}; checkpoint saved to {self.checkpoint_path}."
                    )
                # Random augmentation cannot replay the rest of an epoch: keep the checkpoint of the
                # epoch's start (if any), so a resumed run redoes this epoch exactly.
                raise TrainingInterrupted(
                    f"Training stopped at epoch {self.epoch + 1}, step {self.step}; with augmentation a resumed run "
                    f"restarts this epoch from the checkpoint of its start ({self.checkpoint_path})."
                )

    def train_step(self, tokens: torch.Tensor, labels: torch.Tensor) -> None:
        settings = self.settings
        with self.autocast():
            embedding, logits = self.model(tokens)
        ce = F.cross_entropy(logits.float(), labels)
        squared = prototype_distances(embedding, labels, self.prototypes)
        reg = squared.mean() if settings.reg_reduction == "mean" else squared.sum()
        loss = ce + settings.alpha * reg if settings.alpha else ce
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        n = len(labels)
        with torch.no_grad():
            sums = self.sums
            sums["n"] += n
            sums["ce"] += ce.item() * n
            sums["sq"] += squared.sum().item()
            sums["dist"] += squared.sqrt().sum().item()
            sums["correct"] += (logits.argmax(dim=1) == labels).sum().item()

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Accuracy, CE and prototype distance of the current model on the test split."""
        self.model.eval()
        n = correct = 0
        ce = dist = 0.0
        predictions = []
        for tokens, labels in self.source.test_batches(self.settings.batch_size):
            with self.autocast():
                embedding, logits = self.model(tokens)
            logits = logits.float()
            predicted = logits.argmax(dim=1)
            predictions.extend(predicted.tolist())
            n += len(labels)
            correct += (predicted == labels).sum().item()
            ce += F.cross_entropy(logits, labels, reduction="sum").item()
            dist += prototype_distances(embedding, labels, self.prototypes).sqrt().sum().item()
        self.last_predictions = predictions
        if n == 0:
            raise LmmclfError("The dataset has no test images: finetune reports test accuracy per epoch.")
        return {"test_acc": correct / n, "test_loss": ce / n, "proto_distance": dist / n}

    def finish_epoch(self, test: dict[str, float]) -> None:
        sums, alpha = self.sums, self.settings.alpha
        n = max(sums["n"], 1)
        values = {
            "train_loss": (sums["ce"] + alpha * sums["sq"]) / n,
            "ce_loss": sums["ce"] / n,
            "reg_loss": sums["sq"] / n,
            "train_acc": sums["correct"] / n,
            "train_proto_distance": sums["dist"] / n,
            **test,
        }
        for name in CURVES:
            self.curves[name].append(float(values[name]))
        self.schedule.step()
        self.epoch, self.step, self.sums = self.epoch + 1, 0, _zero_sums()

    def result(self) -> RunResult:
        accs = self.curves["test_acc"]
        best = max(range(len(accs)), key=lambda i: accs[i])
        labels = [int(v) for v in self.source.test_labels.tolist()]
        return RunResult(
            seed=self.seed,
            curves=self.curves,
            final_acc=accs[-1],
            best_acc=accs[best],
            best_epoch=best + 1,
            test_predictions=list(self.last_predictions),
            test_labels=labels,
            state_dict={k: v.detach().cpu().contiguous() for k, v in self.trainable_state().items()},
        )


def _zero_sums() -> dict[str, float]:
    return {"n": 0, "ce": 0.0, "sq": 0.0, "dist": 0.0, "correct": 0}
