"""Apply a trained method to new images: ``load_classifier(...).predict(paths)``.

The trained artifact is found exactly as ``lmmclf eval`` finds it: the method's keys are
computed from the config (``lmmclf.evaluation.methods``), and a missing one is reported with
the commands that make it (``lmmclf.missing``), so the hint is the one eval prints.

The new images form an ad-hoc, unlabeled image set (:func:`image_set`): a
:class:`~lmmclf.datasets.base.DatasetIndex` named ``predict`` whose fingerprint covers the
files' bytes and paths. It goes through the same ``describe`` runner (journaled, resumable) and
the same ``embed`` code as a dataset, under the same describe and embed settings, so its
artifacts are cached like any other: predicting on the same files twice describes and embeds
nothing the second time, and an interrupted describe resumes.

How each method scores an image:

- ``image``, ``text``, ``concat``, ``mean``: the probe's stored linear head on the same features
  the probe was trained on (``lmmclf.features.build_features``, with ``probe.normalize``);
  probabilities are the softmax of its logits.
- ``zeroshot``, ``prototype-zeroshot``: the stored class vectors (prompt ensembles or LMM
  prototypes); probabilities are the softmax of cosine similarities times CLIP's logit scale
  (100, the scale CLIP was trained with), so their arg-max is the stored prediction.
- ``finetune``, ``lmm-reg``: the fine-tuned tail and head (safetensors) on the CLIP trunk.

With several seeds, every seed's model scores the image and the probabilities are averaged
(an ensemble of the seeds); ``Classifier.seeds`` names them. Give one seed
(``--set probe.seeds=[0]``) to use a single run.
"""

from __future__ import annotations

import dataclasses
import glob
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lmmclf.errors import LmmclfError, MissingArtifactError

ADHOC_NAME = "predict"
ZERO_SHOT_SCALE = 100.0  # CLIP's trained logit scale (exp(4.6052))
PROBE_METHODS = ("image", "text", "concat", "mean")
ZERO_SHOT_METHODS = ("zeroshot", "prototype-zeroshot")
FINETUNE_METHODS = ("finetune", "lmm-reg")
METHODS = (*PROBE_METHODS, *ZERO_SHOT_METHODS, *FINETUNE_METHODS)


@dataclass
class Prediction:
    """The result for one image.

    Args:
        path: the image file as given (or found in a folder).
        label: the predicted class, None when the image could not be classified.
        probability: its probability.
        top: the top classes with their probabilities, best first.
        error: why the image could not be classified ("" when it was).
        note: something the user should know about this result (e.g. no description).
    """

    path: str
    label: str | None = None
    probability: float | None = None
    top: list[tuple[str, float]] = field(default_factory=list)
    error: str = ""
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "class": self.label, "probability": self.probability,
                "top": [{"class": name, "probability": p} for name, p in self.top],
                "error": self.error or None, "note": self.note or None}


@dataclass
class Work:
    """What the last call computed (nothing when everything was cached)."""

    described: int = 0
    reused: int = 0  # descriptions found per image (the same bytes described before, e.g. in the training dataset)
    embedded: list[str] = field(default_factory=list)

    @property
    def nothing(self) -> bool:
        return not self.described and not self.embedded


# -- the files --------------------------------------------------------------------------------


def expand_paths(paths: Iterable[str | os.PathLike]) -> list[str]:
    """Image files named by ``paths``: files as given, folders searched recursively, globs expanded.

    A folder contributes only files with an image suffix (hidden ones skipped); a file named
    directly is kept whatever it holds (an unreadable one becomes that file's error). A path that
    neither exists nor matches anything is kept too, and reported as not found. Order is kept,
    duplicates dropped.
    """
    from lmmclf.datasets.sources import IMAGE_SUFFIXES

    found: list[str] = []
    for given in map(str, paths):
        path = Path(given).expanduser()
        if path.is_dir():
            found += sorted(str(p) for p in path.rglob("*")
                            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                            and not any(part.startswith(".") for part in p.relative_to(path).parts))
        elif not path.exists() and glob.has_magic(given):
            found += sorted(p for p in glob.glob(os.path.expanduser(given), recursive=True) if not Path(p).is_dir())
        else:
            found.append(str(path))
    return list(dict.fromkeys(found))


def image_set(paths: Sequence[str], store) -> tuple[Any, dict[str, str]]:
    """The ad-hoc unlabeled image set of the readable files in ``paths``, and the errors of the others.

    Each file is hashed and fully decoded once (remembered in the store's file-hash memo, as a
    dataset's images are). Item ids are the absolute paths; the fingerprint covers ids and bytes,
    so the same files give the same artifact keys.

    Returns:
        ``(index, errors)``: a :class:`DatasetIndex` (split ``test``, label -1) and path -> reason.
    """
    from lmmclf.datasets.base import DatasetIndex, Item
    from lmmclf.datasets.fingerprint import NOTE_BAD, fingerprint, hash_and_verify, note_kind, settled
    from lmmclf.filehash import FileHashCache

    items, entries, errors = [], [], {}
    memo = FileHashCache(store.file_hash_db())
    try:
        for given in paths:
            path = Path(given)
            if not path.is_file():
                errors[given] = "not found" if not path.exists() else "not a regular file"
                continue
            try:
                known = memo.lookup(path)
                # a note without the image's kind (an older memo's bare image-ok) is checked again
                trusted = known is not None and settled(known[1])
                sha, note = known if trusted else hash_and_verify(str(path))
                if not trusted:
                    memo.remember(path, sha, note)
            except OSError as exc:
                errors[given] = f"cannot read: {exc.strerror or exc}"
                continue
            kind = note_kind(note)
            if kind is None:
                errors[given] = note[len(NOTE_BAD):] if note.startswith(NOTE_BAD) else note
                continue
            item_id = str(path.resolve())
            if any(item.id == item_id for item in items):
                continue
            items.append(Item(id=item_id, path=path.resolve(), label=-1, split="test"))
            entries.append((item_id, sha, kind, -1, "test"))
    finally:
        memo.close()
    return DatasetIndex(name=ADHOC_NAME, class_names=[], items=items, fingerprint=fingerprint([], entries)), errors


def adhoc_config(cfg):
    """``cfg`` for the ad-hoc set: describe every image of it (no split, no limit)."""
    return dataclasses.replace(cfg, describe=dataclasses.replace(cfg.describe, split="all", limit=None))


# -- the classifier ---------------------------------------------------------------------------


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


class Classifier:
    """A trained method of one dataset, ready for new images (made by :func:`load_classifier`).

    Attributes:
        classes: the class names, in the order of ``predict_proba``'s columns.
        method: the method's name.
        seeds: the seeds whose models are averaged.
        work: what the last call described and embedded.
    """

    def __init__(self, cfg, store, dataset, method: str, classes: list[str], models: list[Any], seeds: list[int]):
        self.cfg, self.store, self.dataset, self.method = cfg, store, dataset, method
        self.classes, self.seeds = list(classes), list(seeds)
        self._models = models  # per seed: probe (weight, bias), zero-shot class vectors, or a finetune weights path
        self.work = Work()
        self.show_progress = True

    def predict_proba(self, paths: Sequence[str | os.PathLike]) -> np.ndarray:
        """(N, C) class probabilities of ``paths`` in order; a row of NaN for a file that could not be classified."""
        probabilities, _, _ = self._score([str(p) for p in paths])
        return probabilities

    def predict(self, paths: Sequence[str | os.PathLike], top_k: int = 5) -> list[Prediction]:
        """One :class:`Prediction` per path, in order; an unreadable file gets its error, the others go on."""
        paths = [str(p) for p in paths]
        probabilities, errors, notes = self._score(paths)
        results = []
        for row, path in enumerate(paths):
            if path in errors:
                results.append(Prediction(path=path, error=errors[path]))
                continue
            order = np.argsort(-probabilities[row], kind="stable")[:max(1, top_k)]
            top = [(self.classes[c], float(probabilities[row, c])) for c in order]
            results.append(Prediction(path=path, label=top[0][0], probability=top[0][1], top=top, note=notes.get(path, "")))
        return results

    # -- scoring --

    def _score(self, paths: list[str]) -> tuple[np.ndarray, dict[str, str], dict[str, str]]:
        self.work = Work()
        index, errors = image_set(paths, self.store)
        probabilities = np.full((len(paths), len(self.classes)), np.nan)
        notes: dict[str, str] = {}
        if index.items:
            if self.method in FINETUNE_METHODS:
                scores, failed = self._finetune_scores(index)
            else:
                scores, failed, notes = self._embedding_scores(index)
            rows = {item.id: row for row, item in enumerate(index.items)}
            for position, path in enumerate(paths):
                item_id = str(Path(path).resolve())
                if path in errors or item_id not in rows:
                    continue
                if item_id in failed:
                    errors[path] = failed[item_id]
                else:
                    probabilities[position] = scores[rows[item_id]]
            notes = {path: notes[str(Path(path).resolve())] for path in paths if str(Path(path).resolve()) in notes}
        return probabilities, errors, notes

    def _embedding_scores(self, index) -> tuple[np.ndarray, dict[str, str], dict[str, str]]:
        """Probe and zero-shot methods: describe (if needed) and embed the set, then apply the stored heads."""
        from lmmclf.embed.read import read_image_embeddings, read_text_embeddings
        from lmmclf.embed.run import EmbedReport, embed_images, embed_texts
        from lmmclf.embed.specs import IMAGE_STAGE, TEXT_STAGE
        from lmmclf.features import build_features, needs_text

        cfg, store = adhoc_config(self.cfg), self.store
        report = EmbedReport()
        uses_text = self.method in PROBE_METHODS and needs_text(self.method)
        embed_images(cfg, index, store, report=report)
        with store.open(IMAGE_STAGE, report.image_key) as handle:
            images = read_image_embeddings(handle)
        texts = None
        if uses_text:
            from lmmclf.describe import run_describe
            from lmmclf.describe.runner import nothing_usable

            summary = run_describe(cfg, index, store, show_progress=self.show_progress, show_summary=False)
            self.work.described = summary.described + summary.failed
            self.work.reused = summary.reused
            problem = nothing_usable(summary)
            if problem:
                raise LmmclfError(problem.replace("run the same command again", "predict again"))
            embed_texts(cfg, index, store, report=report)
            with store.open(TEXT_STAGE, report.text_key) as handle:
                texts = read_text_embeddings(handle, table=cfg.probe.normalize)
        self.work.embedded = list(report.computed)
        failed = {images.ids[i]: error for i, error in enumerate(self._image_errors(store, report.image_key)) if error}
        trained = self.method in PROBE_METHODS
        data = build_features(self.method if trained else "image", images, texts, normalize=cfg.probe.normalize if trained else False)
        rows = {item_id: row for row, item_id in enumerate(data.ids)}
        total = np.zeros((len(index.items), len(self.classes)))
        for model in self._models:
            if trained:
                weight, bias = model
                scores = softmax(data.features.astype(np.float64) @ weight.T.astype(np.float64) + bias)
            else:
                from lmmclf.zeroshot import l2_normalize

                scores = softmax(ZERO_SHOT_SCALE * (l2_normalize(data.features) @ l2_normalize(model).T).astype(np.float64))
            for row, item in enumerate(index.items):
                if item.id in rows:
                    total[row] += scores[rows[item.id]]
        notes = {}
        if texts is not None:
            has = dict(zip(texts.ids, texts.has_text.tolist()))
            notes = {item.id: "the LMM gave no valid description: its text features are zero (predict again to retry)"
                     for item in index.items if not has.get(item.id, False)}
        return total / len(self._models), failed, notes

    @staticmethod
    def _image_errors(store, key: str) -> list[str]:
        from lmmclf.embed.read import strings

        with store.open("embed-image", key) as handle:
            return strings(handle["errors"][()]) if "errors" in handle else []

    def _finetune_scores(self, index) -> tuple[np.ndarray, dict[str, str]]:
        """Fine-tuned methods: every seed's trunk, tail and head on the images (no cache: one forward pass)."""
        import torch

        from lmmclf.devices import resolve_device
        from lmmclf.embed.images import image_loader
        from lmmclf.finetune.run import load_finetuned

        device = resolve_device(self.cfg.finetune.device)
        paths = [str(item.path) for item in index.items]
        total = np.zeros((len(paths), len(self.classes)))
        failed: dict[str, str] = {}
        settings = _loader_settings(self.cfg, device)
        for weights in self._models:
            trunk, model, preprocess, _ = load_finetuned(weights, device)
            with torch.inference_mode():
                for pixels, rows, batch_errors in image_loader(paths, preprocess, settings):
                    _, logits = model(trunk(pixels.to(device)))
                    scores = torch.softmax(logits.float(), dim=1).cpu().numpy()
                    for row, scored, error in zip(rows.tolist(), scores, batch_errors):
                        if error:
                            failed[index.items[row].id] = error  # a sentence naming the file
                        total[row] += scored
        return total / len(self._models), failed


def _loader_settings(cfg, device: str):
    from lmmclf.embed.images import EncodeSettings

    return EncodeSettings(batch_size=cfg.finetune.batch_size, num_workers=0, device=device, precision="fp32")


# -- finding the trained method ---------------------------------------------------------------


def _resolve_config(config: Any, dataset: str | None):
    from lmmclf.config import ExperimentConfig, load_config
    from lmmclf.config_sets import for_dataset

    cfg = config if isinstance(config, ExperimentConfig) else load_config(Path(config) if config is not None else None)
    if dataset:
        cfg = for_dataset(cfg, dataset)
    if not cfg.dataset.name:
        raise LmmclfError("No dataset given: pass --dataset NAME (the dataset the method was trained on) or set dataset.name in the config.")
    return cfg


def load_classifier(dataset: str | None, method: str, config: Any = None, cache_dir: str | os.PathLike | None = None,
                    show_progress: bool = False) -> Classifier:
    """The trained ``method`` of ``dataset``, found from the config's keys as ``lmmclf eval`` finds it.

    Args:
        dataset: the dataset the method was trained on (None: the config's ``dataset.name``).
        method: image, text, concat, mean, zeroshot, prototype-zeroshot, finetune or lmm-reg.
        config: an :class:`~lmmclf.config.ExperimentConfig`, a YAML file, or None (``$LMMCLF_CONFIG``
            is not read here; the built-in defaults are used).
        cache_dir: the artifact cache (default ``$LMMCLF_CACHE``, else ``~/.cache/lmmclf``).
        show_progress: progress bars on stderr while loading the dataset and describing.

    Raises:
        MissingArtifactError: the method is not trained with these settings; the message names the
            commands that make it, as eval does.
        LmmclfError: an unknown method, or another user error.
    """
    from lmmclf.datasets import load_dataset
    from lmmclf.evaluation.methods import resolve_methods
    from lmmclf.store import ArtifactStore

    if method not in METHODS:
        raise LmmclfError(f"Unknown method '{method}' for predict (known: {', '.join(METHODS)}).")
    cfg = _resolve_config(config, dataset)
    store = ArtifactStore(cache_dir)
    index = load_dataset(cfg, store, show_progress=show_progress)
    chosen = resolve_methods([method])[0]
    specs = chosen.specs(cfg, index, store)
    absent = [spec for spec in specs if not store.is_complete(spec.stage, spec.key)]
    if absent:
        from lmmclf.missing_inputs import commands_to_make

        chain = " && ".join([*commands_to_make(cfg, index, absent, store), chosen.command(cfg, index.name)])
        raise MissingArtifactError(f"Method {method} is not trained on '{index.name}' with these settings; make it with: {chain}")
    models, seeds, classes = [], [], list(index.class_names)
    for spec in specs:
        with store.open(spec.stage, spec.key, make_hint=chosen.command(cfg, index.name), wanted=spec) as handle:
            from lmmclf.results import read_runs

            runs = read_runs(handle, weights=method not in FINETUNE_METHODS)
        for run in runs:
            seeds.append(run.seed)
            if method in FINETUNE_METHODS:
                from lmmclf.finetune.artifact import weights_path

                models.append(weights_path(store, spec.key))
            elif method in PROBE_METHODS:
                models.append((np.asarray(run.weights["weight"], dtype=np.float64), np.asarray(run.weights["bias"], dtype=np.float64)))
            else:
                models.append(np.asarray(run.weights["classifier"], dtype=np.float32))
    classifier = Classifier(cfg, store, index, method, classes, models, seeds)
    classifier.show_progress = show_progress
    return classifier
