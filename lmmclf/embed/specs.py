"""Cache keys of the two embedding artifacts, and which items they cover.

Image embeddings do not depend on the LMM: their key holds the dataset, the CLIP identity,
the covered items and the storage dtype, so every describe variant (another prompt, another
LMM) shares one image artifact and changing the prompt re-embeds only the texts. Text
embeddings are keyed by the describe artifact they read, the digest of the descriptions they
read from it (:mod:`lmmclf.describe.reading`: what that artifact holds now, under the parser and
the answer policy in effect) and the CLIP identity. A describe retry or a forced run rewrites its
artifact under the same describe key; the digest is what makes text embeddings, prototypes,
probes and fine-tuning follow it.

Not in the keys: device, batch size, workers and the autocast precision. fp16 autocast moves
embeddings by about 1e-3 relative, far below what changes a probe's accuracy, and keying on
it would make a CPU-only machine miss the artifacts a GPU machine made from the same config.
The precision actually used is stored in each file's attributes.
"""

from __future__ import annotations

from typing import Any

from lmmclf.clip import clip_identity
from lmmclf.config import ExperimentConfig
from lmmclf.datasets.base import DatasetIndex, Item
from lmmclf.describe.artifact import effective_limit
from lmmclf.filehash import FileHashCache
from lmmclf.stages import key_params, version
from lmmclf.store import ArtifactStore, KeySpec

IMAGE_STAGE = "embed-image"
TEXT_STAGE = "embed-text"
IMAGE_VERSION = version(IMAGE_STAGE)  # versions live in the stage table (lmmclf.stages)
TEXT_VERSION = version(TEXT_STAGE)


def covered_items(cfg: ExperimentConfig, dataset: DatasetIndex) -> list[Item]:
    """The items the describe stage covers under ``cfg``: ``describe.split``, then the first ``describe.limit``.

    Image embeddings cover the same items, so that every method (image-only included) is
    trained and tested on the same images and methods can be compared pairwise.

    Args:
        cfg: the experiment config.
        dataset: the loaded dataset.
    """
    from lmmclf.describe.artifact import select_items

    return select_items(dataset, cfg.describe.split, cfg.describe.limit)


def coverage_params(cfg: ExperimentConfig, dataset: DatasetIndex) -> dict[str, Any]:
    """The part of the image key that says which items are covered (``all`` when it is every item)."""
    limit = effective_limit(dataset, cfg.describe.split, cfg.describe.limit)
    if cfg.describe.split == "all" and limit is None:
        return {"items": "all"}
    return {"items": {"split": cfg.describe.split, "limit": limit}}


def clip_model_identity(cfg: ExperimentConfig, store: ArtifactStore) -> dict[str, Any]:
    """The CLIP identity of ``cfg.embed`` (local weights hashed through the store's memo)."""
    return clip_identity(cfg.embed.clip_model, cfg.embed.clip_pretrained, FileHashCache(store.file_hash_db()))


def image_embed_spec(cfg: ExperimentConfig, dataset: DatasetIndex, store: ArtifactStore) -> KeySpec:
    """The key of the image embeddings of ``dataset`` under ``cfg`` (no LMM in it).

    Args:
        cfg: the experiment config (``embed`` section and the describe coverage).
        dataset: the loaded dataset.
        store: the artifact store (for the file-hash memo of local CLIP weights).
    """
    return KeySpec(
        stage=IMAGE_STAGE,
        version=IMAGE_VERSION,
        dataset=dataset.identity(),
        model=clip_model_identity(cfg, store),
        params={**key_params(cfg, IMAGE_STAGE), **coverage_params(cfg, dataset)},
    )


def describe_key(cfg: ExperimentConfig, dataset: DatasetIndex, store: ArtifactStore) -> str:
    """The key of the describe artifact named by ``cfg`` (computed, not looked up)."""
    from lmmclf.describe import describe_spec

    return describe_spec(cfg, dataset, store).key


def text_embed_spec(
    cfg: ExperimentConfig, dataset: DatasetIndex, store: ArtifactStore, describe: str | None = None,
    digest: str | None = None,
) -> KeySpec:
    """The key of the description embeddings of the describe artifact named by ``cfg``.

    Args:
        cfg: the experiment config.
        dataset: the loaded dataset.
        store: the artifact store.
        describe: the describe artifact's key; computed from ``cfg`` when None.
        digest: the digest of the descriptions read from it (:func:`~lmmclf.describe.reading.descriptions_digest`);
            read from the artifact when None. While the describe artifact is not in the cache it is
            None in the key, which then names nothing in the cache (its input is missing).
    """
    describe = describe or describe_key(cfg, dataset, store)
    if digest is None:
        digest = descriptions_digest_of(store, describe, cfg.describe.require_list)
    return KeySpec(
        stage=TEXT_STAGE,
        version=TEXT_VERSION,
        dataset=dataset.identity(),
        model=clip_model_identity(cfg, store),
        params={**key_params(cfg, TEXT_STAGE), "descriptions": digest},
        inputs={"describe": describe},
    )


def descriptions_digest_of(store: ArtifactStore, describe: str, require_list: bool) -> str | None:
    """The digest of what the describe artifact ``describe`` holds under the policy; None while it is absent or unreadable."""
    from lmmclf.describe.reading import artifact_digest

    if not store.is_complete("describe", describe):
        return None
    try:
        return artifact_digest(store.path("describe", describe), require_list)
    except (OSError, KeyError, ValueError, TypeError, IndexError):
        return None  # damaged: reading it (embed) names the damage and the command that rebuilds it
