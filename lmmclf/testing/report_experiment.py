"""A small cached experiment for the report's tests and its screenshot: images, descriptions, trained probes.

Real stages on real (tiny) files: an image folder, a ``local-dir:`` CLIP, descriptions written
through the describe stage's own writer (:mod:`lmmclf.testing.describe_artifact`), then the
embed, prototypes and probe stages' own functions. The descriptions are chosen by the caller,
so a test knows which of them name their class.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

# class names in the forms the leakage rule splits: CamelCase, underscores, dashes, one word
REPORT_CLASSES = ("ApplyEyeMakeup", "Jumping_Jack", "yo-yo", "Basketball")


@dataclass
class ReportExperiment:
    """What :func:`make_report_experiment` made."""

    config: Path
    cfg: object
    dataset: object
    texts: dict[str, list[str]]
    failed: frozenset[str]


def naming_descriptions(class_name: str, index: int, names: bool) -> list[str]:
    """Three descriptions of an image of ``class_name``: naming it in words (``names``) or not."""
    from lmmclf.report.leakage import words

    spoken = " ".join(words(class_name))
    first = f"someone doing {spoken}s in a gym" if names else f"a person in a gym, picture {index}"
    return [first, f"a bright room with a window {index}", "people watching from the side"]


def make_report_experiment(
    folder: Path,
    clip_name: str,
    store,
    names: Callable[[int, object], bool] = lambda index, item: index % 2 == 0,
    failed: Sequence[int] = (),
    features: Sequence[str] = ("image", "concat"),
    n_train: int = 3,
    n_test: int = 2,
    classes: Sequence[str] = REPORT_CLASSES,
    describe: bool = True,
) -> ReportExperiment:
    """Images, descriptions and trained probes for ``lmmclf report``, cached in ``store``.

    Args:
        folder: where the images and the config go.
        clip_name: a tiny CLIP's ``local-dir:`` name.
        store: the artifact store.
        names: (item position, item) -> whether its descriptions name its class.
        failed: positions of items whose description failed (no descriptions, a reason).
        features: the probes to train (none: a cache with descriptions only).
        n_train: training images per class.
        n_test: test images per class.
        classes: the class names (folder names).
        describe: write the describe artifact (False: a cache without descriptions; then
            only the ``image`` probe can be trained).
    """
    from lmmclf.datasets import load_dataset
    from lmmclf.describe import describe_spec
    from lmmclf.embed.run import embed_images, embed_texts
    from lmmclf.probe.stage import run_probe
    from lmmclf.prototypes import make_prototypes
    from lmmclf.testing.describe_artifact import write_describe_artifact
    from lmmclf.testing.layouts import make_imagefolder
    from lmmclf.testing.paper1 import toy_config

    root = make_imagefolder(folder / "images", class_names=tuple(classes), n_train=n_train, n_test=n_test, size=(48, 40))
    cfg = toy_config(root, clip_name, max_missing_descriptions=0.5)  # a failed description is allowed here
    cfg = cfg.override("probe", epochs=3, seeds=[0], device="cpu", lr=0.01)
    config = folder / "exp.yaml"
    config.write_text(cfg.to_yaml())
    dataset = load_dataset(cfg, store, show_progress=False)
    texts: dict[str, list[str]] = {}
    failures = frozenset(dataset.items[i].id for i in failed)
    if describe:
        ok, errors, table = [], [], []
        for index, item in enumerate(dataset.items):
            bad = item.id in failures
            texts[item.id] = [] if bad else naming_descriptions(dataset.class_names[item.label], index, names(index, item))
            table.append(texts[item.id])
            ok.append(not bad)
            errors.append("refused: I cannot describe people" if bad else "")
        write_describe_artifact(store, describe_spec(cfg, dataset, store), [i.id for i in dataset.items], table, ok, errors, k=3)
    if features:
        embed_images(cfg, dataset, store)
    if describe and any(f in ("text", "concat", "mean", "prototype-zeroshot") for f in features):
        embed_texts(cfg, dataset, store)
        make_prototypes(cfg, dataset, store)
    for name in features:
        run_probe(cfg, dataset, store, name)
    return ReportExperiment(config, cfg, dataset, texts, failures)
