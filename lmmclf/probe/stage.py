"""The ``probe`` stage: train (or apply) one classifier on cached embeddings, all seeds, one artifact.

Methods (``--features``) are rows of a data table: the four linear probes of the paper's
Table 2 (image, text, concat, mean) and two zero-shot baselines (CLIP prompts, LMM
prototypes). Each writes :class:`~lmmclf.results.TrainingRun` records (zero-shot: one run,
no epochs) so that ``eval`` treats them like the fine-tuning runs.

Artifact (stage ``probe``)::

    runs/...                 see lmmclf.results (trained heads under runs/<i>/weights)
    attrs: features, class_names (JSON), num_features, train, val, test (item counts),
           items_without_text, dropped_images, settings (JSON)
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
from rich.markup import escape

from lmmclf.config import ExperimentConfig
from lmmclf.console import console, progress
from lmmclf.datasets.base import DatasetIndex
from lmmclf.errors import LmmclfError
from lmmclf.stages import command, key_params, version
from lmmclf.store import ArtifactStore, KeySpec

STAGE = "probe"
VERSION = version(STAGE)
TRAINED = ("image", "text", "concat", "mean")
ZERO_SHOT = ("zeroshot", "prototype-zeroshot")
ALL_FEATURES = TRAINED + ZERO_SHOT


@dataclass
class ProbeInputs:
    """The keys a probe method reads (computed from the config, never looked up)."""

    image: str
    text: str | None = None
    prototypes: str | None = None


def _inputs(cfg: ExperimentConfig, dataset: DatasetIndex, store: ArtifactStore, features: str) -> ProbeInputs:
    from lmmclf.embed.specs import image_embed_spec, text_embed_spec
    from lmmclf.features import needs_text
    from lmmclf.prototypes import prototypes_spec

    inputs = ProbeInputs(image=image_embed_spec(cfg, dataset, store).key)
    if features in TRAINED and needs_text(features):
        inputs.text = text_embed_spec(cfg, dataset, store).key
    if features == "prototype-zeroshot":
        inputs.prototypes = prototypes_spec(cfg, dataset, store).key
    return inputs


def training_params(cfg: ExperimentConfig) -> dict[str, Any]:
    """The probe parameters that change a trained head's result: the probe section's declared key fields
    (``lmmclf.config``; momentum only with sgd)."""
    return key_params(cfg, STAGE)


def probe_spec(cfg: ExperimentConfig, dataset: DatasetIndex, store: ArtifactStore, features: str | None = None) -> KeySpec:
    """The key of probe method ``features`` (default ``cfg.probe.features``) under ``cfg``.

    Args:
        cfg: the experiment config.
        dataset: the loaded dataset.
        store: the artifact store.
        features: one of :data:`ALL_FEATURES`.
    """
    features = features or cfg.probe.features
    if features not in ALL_FEATURES:
        raise LmmclfError(f"Unknown probe features '{features}' (known: {', '.join(ALL_FEATURES)}).")
    inputs = {role: key for role, key in asdict(_inputs(cfg, dataset, store, features)).items() if key}
    inputs = {f"embed-{k}" if k in ("image", "text") else k: v for k, v in inputs.items()}
    model = None
    if features in TRAINED:
        params = {"features": features, **training_params(cfg)}
    elif features == "zeroshot":
        from lmmclf.embed.specs import clip_model_identity
        from lmmclf.zeroshot import templates_from

        params = {"features": features, "templates": list(templates_from(cfg.probe.zeroshot_templates))}
        model = clip_model_identity(cfg, store)
    else:
        params = {"features": features}
    return KeySpec(stage=STAGE, version=VERSION, dataset=dataset.identity(), model=model, params=params, inputs=inputs)


def validation_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified hold-out: ``(train rows, val rows)`` with ``fraction`` of each class held out.

    Args:
        labels: labels of the training rows.
        fraction: share of each class held out (at least one image of a class with two or more).
        seed: the hold-out draw.
    """
    if fraction <= 0:
        return np.arange(len(labels)), np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng(seed)
    held = []
    # one stable sort groups the rows by class, ascending within each (a scan per class would be N x C)
    by_class = np.argsort(labels, kind="stable")
    _, starts = np.unique(labels[by_class], return_index=True)
    for rows in np.split(by_class, starts[1:]):
        count = int(round(fraction * len(rows)))
        count = min(max(count, 1 if len(rows) > 1 else 0), len(rows) - 1)
        held.extend(rng.permutation(rows)[:count].tolist())
    held_rows = np.sort(np.asarray(held, dtype=np.int64))
    return np.setdiff1d(np.arange(len(labels)), held_rows), held_rows


def _load_features(cfg: ExperimentConfig, dataset: DatasetIndex, store: ArtifactStore, features: str, inputs: ProbeInputs, spill: Path):
    """The method's features, built in row chunks from the unread embeddings; held in memory up to
    ``probe.in_memory_max_bytes``, in a memory-mapped file at ``spill`` beyond it."""
    from lmmclf.embed.read import read_image_embeddings, read_text_embeddings, text_table
    from lmmclf.embed.specs import IMAGE_STAGE, TEXT_STAGE, image_embed_spec, text_embed_spec
    from lmmclf.features import build_features

    def allocate(rows: int, width: int) -> np.ndarray:
        if rows * width * 4 <= cfg.probe.in_memory_max_bytes:
            return np.empty((rows, width), dtype=np.float32)
        return np.lib.format.open_memmap(spill, mode="w+", dtype=np.float32, shape=(rows, width))

    hint = command("embed", dataset.name)
    kind = features if features in TRAINED else "image"
    normalize = cfg.probe.normalize if features in TRAINED else False
    # a method without descriptions needs only the image embeddings, which need no describe artifact
    with store.open(IMAGE_STAGE, inputs.image, make_hint=hint if inputs.text else command("embed", dataset.name, ["--images-only"]),
                    wanted=image_embed_spec(cfg, dataset, store)) as image_handle:
        images = read_image_embeddings(image_handle, load=False)
        if not inputs.text:
            return build_features(kind, images, None, normalize=normalize, allocate=allocate)
        with store.open(TEXT_STAGE, inputs.text, make_hint=hint, wanted=text_embed_spec(cfg, dataset, store)) as text_handle:
            texts = read_text_embeddings(text_handle)
            if normalize:  # each description normalised before pooling: the table, read per chunk of rows
                texts.table = text_table(text_handle, texts)
            return build_features(kind, images, texts, normalize=normalize, allocate=allocate)


def _check_descriptions(cfg: ExperimentConfig, dataset: DatasetIndex, store: ArtifactStore, features: str, inputs: ProbeInputs) -> None:
    """Refuse a method that uses descriptions when too many train or test images have none.

    ``text``, ``concat`` and ``mean`` count the readable train and test images; ``prototype-zeroshot``
    uses descriptions only through the prototypes (training images). A missing input is left
    to the loading, whose error names the command that makes it.
    """
    from lmmclf.embed.read import read_image_index, read_text_index
    from lmmclf.embed.specs import IMAGE_STAGE, TEXT_STAGE
    from lmmclf.features import description_coverage, require_descriptions

    if features == "prototype-zeroshot":
        from lmmclf.prototypes import check_descriptions

        check_descriptions(cfg, dataset, store)
        return
    if not inputs.text or not (store.is_complete(IMAGE_STAGE, inputs.image) and store.is_complete(TEXT_STAGE, inputs.text)):
        return
    with store.open(IMAGE_STAGE, inputs.image) as handle:
        ids, splits, ok = read_image_index(handle)
    with store.open(TEXT_STAGE, inputs.text) as handle:
        text_ids, has_text = read_text_index(handle)
    keep = np.flatnonzero(ok)
    coverage = description_coverage([ids[i] for i in keep], splits[keep], dict(zip(text_ids, has_text.tolist())))
    require_descriptions(coverage, cfg.embed.max_missing_descriptions, f"Features '{features}'", dataset.name)


def _train_runs(cfg: ExperimentConfig, data, advance: Callable[[int], None], dataset: DatasetIndex | None = None) -> tuple[list, dict]:
    from lmmclf.devices import resolve_device
    from lmmclf.probe.trainer import ProbeSettings, Rows, train_linear_probe
    from lmmclf.results import TrainingRun

    p = cfg.probe
    if not p.seeds:
        from lmmclf.errors import ConfigError

        raise ConfigError("probe.seeds is empty: give at least one seed (e.g. --seeds 0).")
    settings = ProbeSettings(p.epochs, p.lr, p.optimizer, p.momentum, p.weight_decay, p.batch_size)
    device = resolve_device(p.device)
    train_rows, test_rows = data.subset("train"), data.subset("test")
    if len(train_rows) == 0 or len(test_rows) == 0:
        raise LmmclfError(f"The probe needs training and test images; the embeddings have {len(train_rows)} train and {len(test_rows)} test (check describe.split).")
    runs, val_count = [], 0
    for seed in p.seeds:
        own_val = dataset.val_rows([data.ids[i] for i in train_rows]) if dataset is not None and p.val_fraction > 0 else []
        if own_val:  # the release has its own val split (CoOp): it is the hold-out, whatever the fraction
            val = np.asarray(own_val, dtype=np.int64)
            fit = np.setdiff1d(np.arange(len(train_rows)), val)
        else:
            fit, val = validation_split(data.labels[train_rows], p.val_fraction, seed)
        val_count = len(val)
        fit_rows, val_rows = train_rows[fit], train_rows[val]
        result = train_linear_probe(  # Rows: the trainer gathers them, no copy of the features per split
            Rows(data.features, fit_rows), data.labels[fit_rows], Rows(data.features, test_rows), data.labels[test_rows],
            len(data.class_names), settings, seed, device,
            x_val=Rows(data.features, val_rows) if len(val_rows) else None, y_val=data.labels[val_rows] if len(val_rows) else None,
            on_epoch=lambda _: advance(1), in_memory_max_bytes=p.in_memory_max_bytes,
        )
        curves = {"val_acc": result.val_acc} if result.val_acc is not None else {}
        selected = int(np.argmax(result.val_acc)) + 1 if result.val_acc is not None else None
        runs.append(TrainingRun(
            seed=seed, train_loss=result.train_loss, test_acc=result.test_acc,
            test_ids=[data.ids[i] for i in test_rows], test_predictions=result.test_predictions,
            test_labels=data.labels[test_rows], curves=curves,
            weights={"weight": result.weight, "bias": result.bias}, selected_epoch=selected,
        ))
    counts = {"train": len(train_rows) - val_count, "val": val_count, "test": len(test_rows)}
    return runs, {"settings": asdict(settings), "device": device, **counts}


def _zero_shot_runs(cfg: ExperimentConfig, dataset: DatasetIndex, store: ArtifactStore, features: str, data) -> tuple[list, dict]:
    from lmmclf.results import TrainingRun
    from lmmclf.zeroshot import cosine_predict, prompt_classifier, templates_from

    if features == "zeroshot":
        from lmmclf.clip import load_clip
        from lmmclf.embed.run import encode_settings

        loaded = load_clip(cfg.embed.clip_model, cfg.embed.clip_pretrained, cfg.embed.device)
        classifier = prompt_classifier(loaded, data.class_names, templates_from(cfg.probe.zeroshot_templates), encode_settings(cfg))
    else:
        from lmmclf.prototypes import load_prototypes

        classifier, _ = load_prototypes(cfg, dataset, store)
    test_rows = data.subset("test")
    if len(test_rows) == 0:
        raise LmmclfError("The embeddings hold no test images (check describe.split).")
    predictions = cosine_predict(data.features, classifier, test_rows)
    run = TrainingRun(
        seed=0, train_loss=np.zeros(0), test_acc=np.zeros(0), test_ids=[data.ids[i] for i in test_rows],
        test_predictions=predictions, test_labels=data.labels[test_rows], weights={"classifier": classifier},
    )
    return [run], {"train": 0, "val": 0, "test": len(test_rows)}


def run_probe(cfg: ExperimentConfig, dataset: DatasetIndex, store: ArtifactStore, features: str | None = None, force: bool = False) -> Path:
    """Make (or find) the probe artifact of method ``features``; returns its path.

    Args:
        cfg: the experiment config (its ``probe`` section; ``embed`` for the inputs' keys).
        dataset: the loaded dataset.
        store: the artifact store.
        features: one of :data:`ALL_FEATURES` (default ``cfg.probe.features``).
        force: recompute even if cached.

    Raises:
        MissingArtifactError: an input is missing (the message names the command that makes it).
    """
    features = features or cfg.probe.features
    spec = probe_spec(cfg, dataset, store, features)
    inputs = _inputs(cfg, dataset, store, features)
    _check_descriptions(cfg, dataset, store, features, inputs)  # a cached result too: the setting is in no key
    if not force and store.is_complete(STAGE, spec.key):
        return store.path(STAGE, spec.key)
    if features == "prototype-zeroshot":
        from lmmclf.prototypes import prototypes_spec

        store.open("prototypes", inputs.prototypes, make_hint=command("prototypes", dataset.name), wanted=prototypes_spec(cfg, dataset, store)).close()
    spill = store.partial_path(STAGE, spec.key, f"{os.getpid()}.features.npy")  # pid: cache gc removes it if the process dies
    try:
        data = _load_features(cfg, dataset, store, features, inputs, spill)
        return _compute(cfg, dataset, store, features, spec, data, force)
    finally:
        spill.unlink(missing_ok=True)


def _compute(cfg: ExperimentConfig, dataset: DatasetIndex, store: ArtifactStore, features: str, spec: KeySpec, data, force: bool) -> Path:
    """Train (or apply) method ``features`` on ``data`` and write its artifact; returns its path."""
    from lmmclf.results import write_runs

    def compute(handle) -> int:
        if features in TRAINED:
            with progress() as bar:
                task = bar.add_task(f"probe {features}", total=cfg.probe.epochs * len(cfg.probe.seeds))
                runs, info = _train_runs(cfg, data, lambda n: bar.advance(task, n), dataset)
        else:
            runs, info = _zero_shot_runs(cfg, dataset, store, features, data)
        write_runs(handle, runs)
        handle.attrs["features"] = features
        handle.attrs["class_names"] = json.dumps(data.class_names)
        handle.attrs["num_features"] = int(data.features.shape[1])
        handle.attrs["items_without_text"] = int(data.without_text)
        handle.attrs["dropped_images"] = len(data.dropped)
        for name in ("train", "val", "test"):
            handle.attrs[name] = int(info[name])
        handle.attrs["settings"] = json.dumps({k: v for k, v in info.items() if k not in ("train", "val", "test")})
        return len(runs)

    if data.without_text:
        console.print(f"[yellow]{data.without_text} images have no valid description[/]: their text features are zero.")
    if data.dropped:
        console.print(f"[yellow]{len(data.dropped)} images could not be read[/] and are left out (e.g. {escape(str(data.dropped[0]))}).")
    return store.ensure(spec, compute, force=force)
