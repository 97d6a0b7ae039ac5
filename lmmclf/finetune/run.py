"""``run_finetune``: from the config to one trained, stored run per seed.

Steps: load the dataset and the class prototypes (training split only, from the prototypes
artifact); for every seed whose artifact is missing, load CLIP once, cut its vision tower
into trunk and tail, build the token source (the trunk cache, computed once, or the full
forward), train (resuming from a checkpoint of the same key), then write the weights
(safetensors) and the metrics (HDF5) and delete the checkpoint.
"""

from __future__ import annotations

import json
import os
import signal
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import numpy as np
from rich.markup import escape

from lmmclf.config import ExperimentConfig
from lmmclf.console import console, progress
from lmmclf.errors import CorruptArtifactError, LmmclfError, storage_error
from lmmclf.finetune.artifact import (
    STAGE,
    clip_model_identity,
    finetune_specs,
    settings_from_config,
    uses_trunk_cache,
    weights_path,
)
from lmmclf.store import ArtifactStore, KeySpec

WEIGHTS_FORMAT = "lmmclf-finetune-1"


@dataclass
class FinetuneOutcome:
    """One seed's stored result.

    Args:
        key: the finetune artifact key.
        run: the metrics (a :class:`~lmmclf.results.TrainingRun`).
        path: the metrics HDF5.
        weights: the safetensors file with the tail and head.
        trained: True if trained now, False if it came from the cache.
    """

    key: str
    run: Any
    path: Path
    weights: Path
    trained: bool


def run_finetune(cfg: ExperimentConfig, store: ArtifactStore, show_progress: bool = True, resume: bool = True,
                 force: bool = False, should_stop: Optional[Callable[[], bool]] = None) -> list[FinetuneOutcome]:
    """Train (or load from the cache) every seed of ``cfg.finetune``.

    Args:
        cfg: the experiment config.
        store: the artifact store.
        show_progress: progress bars and messages on stderr.
        resume: continue an interrupted run of the same key from its checkpoint.
        force: retrain even if the artifact exists.
        should_stop: polled between steps (default: a Ctrl-C handler); True saves a checkpoint
            and raises :class:`~lmmclf.finetune.trainer.TrainingInterrupted`.
    """
    from lmmclf.datasets import load_dataset

    dataset = load_dataset(cfg, store, show_progress=show_progress)
    specs = finetune_specs(cfg, dataset, store)
    todo = [spec for spec in specs if force or not store.is_complete(STAGE, spec.key)]
    if todo:
        session = Session(cfg, store, dataset, show_progress)
        with _stop_on_ctrl_c(should_stop) as stop:
            for spec in todo:
                store.ensure(spec, lambda handle, spec=spec: session.train_seed(spec, handle, resume, stop), force=force)
    trained = {spec.key for spec in todo}
    return [load_outcome(store, spec, spec.key in trained) for spec in specs]


def load_outcome(store: ArtifactStore, spec: KeySpec, trained: bool = False) -> FinetuneOutcome:
    """Read one seed's stored run."""
    from lmmclf.results import read_runs
    from lmmclf.stages import command

    with store.open(STAGE, spec.key, make_hint=command(STAGE, (spec.dataset or {}).get("name"), ["--alpha", f"{spec.params['alpha']:g}"]), wanted=spec) as handle:
        run = read_runs(handle)[0]
    return FinetuneOutcome(spec.key, run, store.path(STAGE, spec.key), weights_path(store, spec.key), trained)


def load_finetune_runs(cfg: ExperimentConfig, dataset, store: ArtifactStore) -> list:
    """The stored runs of every seed of ``cfg.finetune`` (for ``lmmclf eval``).

    Raises:
        MissingArtifactError: a seed has not been trained; the message names the command.
    """
    return [load_outcome(store, spec).run for spec in finetune_specs(cfg, dataset, store)]


class Session:
    """What every seed shares: CLIP, the trunk/tail split, the token source, the prototypes.

    Args:
        cfg: the experiment config.
        store: the artifact store.
        dataset: the DatasetIndex.
        show_progress: progress bars and messages.
    """

    def __init__(self, cfg: ExperimentConfig, store: ArtifactStore, dataset, show_progress: bool):
        from functools import partial

        import torch

        from lmmclf.clip import load_clip
        from lmmclf.devices import autocast, resolve_device, resolve_precision
        from lmmclf.finetune.tail import FinetuneModel, split_tower

        self.cfg, self.store, self.dataset, self.show_progress = cfg, store, dataset, show_progress
        section = cfg.finetune
        self.device = torch.device(resolve_device(section.device))
        # training: bf16 where the GPU has it, else fp16 with the trainer's grad scaler
        self.precision = resolve_precision(section.precision, self.device, prefer_bf16=True)
        self.settings = settings_from_config(cfg, self.precision)
        self.prototypes = load_class_prototypes(cfg, dataset, store).to(self.device)
        clip = load_clip(cfg.embed.clip_model, cfg.embed.clip_pretrained, device=str(self.device))
        clip.model.float()  # float32 master weights; autocast handles mixed precision
        self.clip = clip
        self.trunk, tail, self.split = split_tower(clip.model, section.unlocked_blocks)
        tail.grad_checkpointing = section.grad_checkpointing
        self.model = FinetuneModel(tail, clip.embed_dim, len(dataset.class_names)).to(self.device)
        self.initial_tail = {k: v.detach().clone() for k, v in tail.state_dict().items()}
        self.autocast = partial(autocast, self.precision, self.device)
        self.trunk_key: str | None = None
        self.source = self._source()

    def _source(self):
        import torch

        from lmmclf.finetune.sources import CachedTokens, StreamedImages
        from lmmclf.finetune.trunk_cache import (
            ensure_trunk_cache,
            load_trunk_cache,
            trunk_spec,
        )

        section, dataset = self.cfg.finetune, self.dataset
        if uses_trunk_cache(self.cfg):
            spec = trunk_spec(clip_model_identity(self.cfg, self.store), dataset, self.split, self.clip.preprocess,
                              section.trunk_dtype, self.precision)
            def build(force: bool = False) -> str:
                return ensure_trunk_cache(
                    self.store, spec, dataset, self.trunk, self.clip.preprocess, self.device, self.autocast,
                    batch_size=section.batch_size, num_workers=section.num_workers,
                    show_progress=self.show_progress, force=force,
                )

            self.trunk_key = build()
            try:
                tokens = load_trunk_cache(self.store, self.trunk_key, dataset)
            except CorruptArtifactError as exc:  # damaged data inside a finished file: recompute it once
                if self.show_progress:
                    console.print(f"[yellow]Recomputing the trunk cache[/]: {escape(str(exc))}", soft_wrap=True)
                self.trunk_key = build(force=True)
                tokens = load_trunk_cache(self.store, self.trunk_key, dataset)
            return CachedTokens(*tokens, device=self.device)
        train, test = dataset.split("train"), dataset.split("test")
        labels = lambda items: torch.tensor([item.label for item in items], dtype=torch.int64)  # noqa: E731
        return StreamedImages(
            self.trunk, [i.path for i in train], labels(train), [i.path for i in test], labels(test),
            train_transform(self.clip.preprocess, self.trunk.visual, section.augment), self.clip.preprocess,
            self.device, self.autocast, num_workers=section.num_workers, random_transform=section.augment,
        )

    def train_seed(self, spec: KeySpec, handle, resume: bool, should_stop: Callable[[], bool]) -> int:
        """Train one seed and fill its artifact (``handle``); the weights go beside it."""
        import torch

        from lmmclf.finetune.trainer import Trainer

        seed = spec.params["seed"]
        checkpoint = self.store.partial_path(STAGE, spec.key, "ckpt.pt")
        if not resume:
            checkpoint.unlink(missing_ok=True)
        self.model.tail.load_state_dict(self.initial_tail)
        torch.manual_seed(seed)  # anything else random (augmentation, loader workers)
        trainer = Trainer(self.model, self.source, self.prototypes, self.settings, seed, self.device, checkpoint,
                          should_stop=should_stop)
        if resume and trainer.restore() and self.show_progress:
            console.print(f"Resuming seed {seed} from its checkpoint at epoch {trainer.epoch + 1}, step {trainer.step}.")
        started = time.perf_counter()
        with _epoch_bar(trainer, self.show_progress):
            result = trainer.fit()
        run = self._write(spec, handle, result, time.perf_counter() - started)
        checkpoint.unlink(missing_ok=True)
        if self.show_progress:
            console.print(f"seed {seed}: final test accuracy {run.final_acc:.2%}, best {run.best_acc:.2%} (epoch {run.best_epoch}).")
        return len(run.test_ids)

    def _write(self, spec: KeySpec, handle, result, seconds: float):
        from lmmclf.finetune.trainer import CURVES
        from lmmclf.results import TrainingRun, write_runs

        metadata = {
            "format": WEIGHTS_FORMAT,
            "key": spec.key,
            "clip_model": self.cfg.embed.clip_model,
            "clip_pretrained": self.cfg.embed.clip_pretrained or "",
            "unlocked_blocks": str(self.split.unlocked_blocks),
            "layers": str(self.split.layers),
            "embed_dim": str(self.clip.embed_dim),
            "class_names": json.dumps(self.dataset.class_names),
            "params": json.dumps(spec.params, sort_keys=True),
        }
        weights = weights_path(self.store, spec.key)
        try:
            temp = self.store.partial_path(STAGE, spec.key, f"weights-{os.getpid()}.safetensors")  # gc removes strays
        except OSError as exc:
            raise storage_error(exc, weights) from exc
        _save_safetensors(result.state_dict, temp, weights, metadata)
        run = TrainingRun(
            seed=result.seed,
            train_loss=np.asarray(result.curves["train_loss"]),
            test_acc=np.asarray(result.curves["test_acc"]),
            test_ids=[item.id for item in self.dataset.split("test")],
            test_predictions=np.asarray(result.test_predictions, dtype=np.int64),
            test_labels=np.asarray(result.test_labels, dtype=np.int64),
            curves={name: np.asarray(result.curves[name]) for name in CURVES if name not in ("train_loss", "test_acc")},
        )
        write_runs(handle, [run])
        handle.create_dataset("prototypes", data=self.prototypes.cpu().numpy())
        handle.attrs.update({
            "alpha": self.settings.alpha,
            "train": len(self.dataset.split("train")),
            "test": len(self.dataset.split("test")),
            "class_names": json.dumps(self.dataset.class_names),
            "weights_file": weights.name,
            "weights_sha256": _sha256(weights),
            "precision_used": self.precision,
            "device_used": str(self.device),
            "trunk_key": self.trunk_key or "",
            "train_seconds": seconds,
        })
        return run


def load_class_prototypes(cfg: ExperimentConfig, dataset, store: ArtifactStore):
    """The prototypes artifact as a float32 tensor, its class order checked against the dataset's."""
    import torch

    from lmmclf.prototypes import load_prototypes
    from lmmclf.stages import command

    prototypes, names = load_prototypes(cfg, dataset, store)
    if list(names) != list(dataset.class_names):
        raise LmmclfError(
            f"The prototypes' classes ({', '.join(names[:5])}...) do not match the dataset's "
            f"({', '.join(dataset.class_names[:5])}...): rerun `{command('prototypes', dataset.name, ['--force'])}`."
        )
    return torch.as_tensor(np.asarray(prototypes, dtype=np.float32))


def train_transform(preprocess, visual, augment: bool):
    """The training transform: the validation one, or open_clip's training augmentation
    (RandomResizedCrop with scale 0.9-1.0, CLIP's normalisation) when ``augment`` is set."""
    if not augment:
        return preprocess
    from open_clip import image_transform

    normalize = next(step for step in preprocess.transforms if type(step).__name__ == "Normalize")
    return image_transform(visual.image_size, is_train=True, mean=normalize.mean, std=normalize.std)


def load_finetuned(path: str | Path, device: str = "cpu"):
    """Rebuild a fine-tuned classifier from its safetensors file (CLIP is loaded from the stored name).

    Args:
        path: the ``<key>.safetensors`` file.
        device: where to put the model.

    Returns:
        ``(trunk, model, preprocess, class_names)``: ``model(trunk(images))`` gives
        ``(embedding, logits)``.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    from lmmclf.clip import load_clip
    from lmmclf.finetune.tail import FinetuneModel, split_tower

    path = Path(path).expanduser()
    if not path.is_file():
        raise LmmclfError(f"No finetune weights file at {path}.")
    try:  # safetensors: a header and raw tensors, nothing in the file can run code
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
    except Exception as exc:  # noqa: BLE001 - SafetensorError, OSError: one sentence
        raise LmmclfError(f"{path} is not a readable safetensors file ({type(exc).__name__}).") from exc
    if meta.get("format") != WEIGHTS_FORMAT:
        raise LmmclfError(f"{path} is not an lmmclf finetune weights file.")
    try:
        class_names = json.loads(meta["class_names"])
        unlocked, embed_dim = int(meta["unlocked_blocks"]), int(meta["embed_dim"])
        clip_model, clip_pretrained = meta["clip_model"], meta.get("clip_pretrained") or None
        if not isinstance(class_names, list):
            raise ValueError("class_names is not a list")
        state = load_file(str(path), device=str(device))
    except Exception as exc:  # noqa: BLE001 - a missing or malformed header value, damaged tensors
        raise LmmclfError(f"{path} is a damaged lmmclf finetune weights file ({type(exc).__name__}).") from exc
    clip = load_clip(clip_model, clip_pretrained, device=device)
    clip.model.float()
    trunk, tail, _ = split_tower(clip.model, unlocked)
    model = FinetuneModel(tail, embed_dim, len(class_names)).to(device)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise LmmclfError(f"{path} does not hold the weights of its own model ({str(exc).splitlines()[0]}).") from exc
    return trunk.eval(), model.eval(), clip.preprocess, class_names


def _save_safetensors(state: dict, temp: Path, path: Path, metadata: dict[str, str]) -> None:
    """Write ``state`` to ``temp``, then move it to ``path`` (never a half-written weights file).

    Written with Python's own ``open``: the file honours the umask like every artifact
    (safetensors' writer makes it 0600), and a full disk is an ``OSError``, reported as one sentence.

    Raises:
        StorageError: the file could not be written.
    """
    from safetensors.torch import save

    data = canonical_safetensors(save(state, metadata=metadata))
    try:
        with open(temp, "wb") as handle:
            handle.write(data)
        os.replace(temp, path)
    except OSError as exc:
        raise storage_error(exc, path) from exc
    finally:
        try:
            temp.unlink(missing_ok=True)
        except OSError:
            pass


def canonical_safetensors(blob: bytes) -> bytes:
    """The same safetensors file with its JSON header in sorted key order.

    safetensors keeps the metadata in a hash map whose order changes from process to process,
    so two identical runs wrote different bytes (and ``weights_sha256`` was not reproducible).
    The tensor data and their offsets (relative to the end of the header) are unchanged.
    """
    size = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + size])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the format pads the header with spaces to align the data
    return len(text).to_bytes(8, "little") + text + blob[8 + size :]


def _sha256(path: Path) -> str:
    from lmmclf.hashing import hash_file

    return hash_file(path)


@contextmanager
def _epoch_bar(trainer, show: bool) -> Iterator[None]:
    """One bar per seed over all steps; it shows the epoch, the running loss and the last test accuracy."""
    from rich.progress import TextColumn

    columns = (TextColumn("loss {task.fields[loss]}"), TextColumn("acc {task.fields[acc]}"))
    with progress(*columns, transient=False) as bar:
        steps, epochs = trainer.steps_per_epoch, trainer.settings.epochs
        task = bar.add_task(_describe(trainer), total=steps * epochs, loss="-", acc="-",
                            completed=trainer.epoch * steps + trainer.step)

        def update(current) -> None:
            sums = current.sums
            n = max(sums["n"], 1)
            accs = current.curves["test_acc"]
            bar.update(task, description=_describe(current), loss=f"{(sums['ce'] + current.settings.alpha * sums['sq']) / n:.4f}",
                       acc=f"{accs[-1]:.2%}" if accs else "-")
            bar.advance(task, 1)

        trainer.on_step = update if show else trainer.on_step
        yield


def _describe(trainer) -> str:
    return f"seed {trainer.seed} epoch {min(trainer.epoch + 1, trainer.settings.epochs)}/{trainer.settings.epochs}"


@contextmanager
def _stop_on_ctrl_c(should_stop: Optional[Callable[[], bool]]) -> Iterator[Callable[[], bool]]:
    """The first Ctrl-C asks the trainer to stop after the current step (it saves a checkpoint);
    a second one interrupts at once."""
    if should_stop is not None:
        yield should_stop
        return
    flag = {"stop": False}
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame) -> None:
        if flag["stop"]:
            signal.signal(signal.SIGINT, previous)
            raise KeyboardInterrupt
        flag["stop"] = True
        console.print("[yellow]Stopping after this step and saving a checkpoint (Ctrl-C again to abort now).[/]")

    try:
        signal.signal(signal.SIGINT, handler)
        installed = True
    except ValueError:  # not the main thread: no handler, Ctrl-C behaves as usual
        installed = False
    try:
        yield lambda: flag["stop"]
    finally:
        if installed:
            signal.signal(signal.SIGINT, previous)
