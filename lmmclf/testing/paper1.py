"""A toy experiment for the paper-1 stages: an image folder, a tiny CLIP, a config, descriptions.

Used by the tests of embed, prototypes, probe and eval, and by the offline demo: every stage
runs through its real code on real (small) files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from lmmclf.config import ExperimentConfig
from lmmclf.store import ArtifactStore, KeySpec

COLOURS = ("red", "green", "blue", "yellow", "purple", "orange")


def toy_config(root: str | Path, clip_name: str, name: str = "toy", **embed) -> ExperimentConfig:
    """A config for an image-folder dataset at ``root`` and a ``local-dir:`` CLIP.

    Args:
        root: the image folder (``make_imagefolder`` layout).
        clip_name: the tiny CLIP's ``local-dir:`` name.
        name: the dataset name.
        **embed: overrides of the embed section (defaults: batch 8, no workers, cpu).
    """
    import dataclasses

    cfg = ExperimentConfig().override("dataset", name=name, root=str(root), type="imagefolder")
    cfg = cfg.override("embed", **{"clip_model": clip_name, "batch_size": 8, "num_workers": 0, "device": "cpu", **embed})
    # a local-dir: model carries its weights; override() ignores None, so clear the tag directly
    return dataclasses.replace(cfg, embed=dataclasses.replace(cfg.embed, clip_pretrained=None))


def class_descriptions(class_names: Sequence[str], label: int, index: int, k: int = 3) -> list[str]:
    """``k`` deterministic, class-dependent descriptions (what an LMM would say about a colour image)."""
    colour = COLOURS[label % len(COLOURS)]
    return [f"a {colour} image of {class_names[label]} number {index} view {j}" for j in range(k)]


def toy_describe_spec(dataset) -> KeySpec:
    """A describe key for hand-written descriptions (its params say so, so it never collides)."""
    return KeySpec(stage="describe", version=1, dataset=dataset.identity(), params={"source": "lmmclf.testing.paper1"})


def write_toy_descriptions(store: ArtifactStore, dataset, spec: KeySpec | None = None, k: int = 3, skip: Sequence[str] = ()) -> str:
    """Write a describe artifact with :func:`class_descriptions` for every item; returns its key.

    Args:
        store: the artifact store.
        dataset: the loaded dataset.
        spec: the key to write under (default :func:`toy_describe_spec`).
        k: descriptions per image.
        skip: ids recorded as failed (``ok=False``, no descriptions).
    """
    from lmmclf.testing.describe_artifact import write_describe_artifact

    ids, texts, ok, errors = [], [], [], []
    for index, item in enumerate(dataset.items):
        failed = item.id in skip
        ids.append(item.id)
        texts.append([] if failed else class_descriptions(dataset.class_names, item.label, index, k))
        ok.append(not failed)
        errors.append("RuntimeError: test failure" if failed else "")
    return write_describe_artifact(store, spec or toy_describe_spec(dataset), ids, texts, ok, errors, k=k)
