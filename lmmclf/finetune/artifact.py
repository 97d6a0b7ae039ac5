"""Keys of the finetune artifacts, and the settings resolved from the config.

Two stages:

- ``finetune``: one artifact per seed, the metrics HDF5 (a :class:`~lmmclf.results.TrainingRun`)
  plus the trained tail and head as ``<key>.safetensors`` beside it. Keyed by the CLIP model,
  the prototypes artifact, the dataset, alpha, every hyperparameter and the seed.
- ``trunk``: the frozen trunk's output tokens of every image (see :mod:`.trunk_cache`).

The key holds the configured ``precision`` (``auto`` stays ``auto``), not the one it resolves
to on this machine: ``lmmclf eval`` on a machine without a GPU must find the artifacts a GPU
run made. The resolved precision is stored inside the artifact.
"""

from __future__ import annotations

from typing import Any

from lmmclf.config import ExperimentConfig
from lmmclf.errors import ConfigError
from lmmclf.stages import key_params, version
from lmmclf.store import ArtifactStore, KeySpec

STAGE = "finetune"
VERSION = version(STAGE)
HEAD = "linear"  # the paper's single fully connected layer on CLIP's image embedding


def clip_model_identity(cfg: ExperimentConfig, store: ArtifactStore) -> dict[str, Any]:
    """The identity of the configured CLIP model (name plus pretrained tag or weights hash)."""
    from lmmclf.clip import clip_identity
    from lmmclf.filehash import FileHashCache

    hashes = FileHashCache(store.file_hash_db())
    try:
        return clip_identity(cfg.embed.clip_model, cfg.embed.clip_pretrained, hashes)
    finally:
        hashes.close()


def uses_trunk_cache(cfg: ExperimentConfig) -> bool:
    """The cache is valid only when the frozen part sees the same pixels every epoch."""
    return cfg.finetune.trunk_cache and not cfg.finetune.augment


def settings_from_config(cfg: ExperimentConfig, precision: str | None = None):
    """The :class:`~lmmclf.finetune.trainer.TrainSettings` of ``cfg.finetune``.

    Args:
        cfg: the experiment config.
        precision: the resolved precision; ``None`` keeps the configured value (for keys).
    """
    from lmmclf.finetune.trainer import TrainSettings

    section = cfg.finetune
    for name in ("epochs", "batch_size"):
        if getattr(section, name) < 1:
            raise ConfigError(f"finetune.{name} must be at least 1; got {getattr(section, name)}.")
    if section.alpha < 0 or section.lr <= 0:
        raise ConfigError(f"finetune.alpha must be >= 0 and finetune.lr > 0; got alpha={section.alpha}, lr={section.lr}.")
    return TrainSettings(
        alpha=section.alpha,
        epochs=section.epochs,
        batch_size=section.batch_size,
        lr=section.lr,
        optimizer=section.optimizer,
        weight_decay=section.weight_decay,
        momentum=section.momentum,
        schedule=section.schedule,
        reg_reduction=section.reg_reduction,
        precision=precision or section.precision,
    )


def finetune_spec(cfg: ExperimentConfig, dataset, store: ArtifactStore, seed: int | None = None) -> KeySpec:
    """The key of one seed's fine-tuning run.

    Args:
        cfg: the experiment config (``finetune`` and ``embed`` sections).
        dataset: the :class:`~lmmclf.datasets.base.DatasetIndex`.
        store: the artifact store (for the file-hash memo and the prototypes key).
        seed: the seed; default the first of ``finetune.seeds``.
    """
    from lmmclf.prototypes import prototypes_spec

    section = cfg.finetune
    settings_from_config(cfg)  # checks the values (one sentence naming the setting)
    cached = uses_trunk_cache(cfg)
    params = {
        **key_params(cfg, STAGE),  # the declared key fields (lmmclf.config); momentum only with sgd
        "head": HEAD,
        "trunk_cache": cached,
        # float16 storage rounds the trunk output: a (tiny) change of the result.
        "trunk_dtype": section.trunk_dtype if cached else None,
        "seed": section.seeds[0] if seed is None else seed,
    }
    return KeySpec(
        stage=STAGE,
        version=VERSION,
        dataset=dataset.identity(),
        model=clip_model_identity(cfg, store),
        params=params,
        inputs={"prototypes": prototypes_spec(cfg, dataset, store).key},
    )


def finetune_specs(cfg: ExperimentConfig, dataset, store: ArtifactStore) -> list[KeySpec]:
    """One key per seed of ``finetune.seeds``, in that order."""
    if not cfg.finetune.seeds:
        raise ConfigError("finetune.seeds is empty: give at least one seed (e.g. --seeds 0).")
    return [finetune_spec(cfg, dataset, store, seed) for seed in cfg.finetune.seeds]


def weights_path(store: ArtifactStore, key: str):
    """Where a run's trained tail and head are stored (beside its metrics HDF5)."""
    return store.path(STAGE, key).with_suffix(".safetensors")
