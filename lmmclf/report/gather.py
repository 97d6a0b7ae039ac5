"""What the report shows, read from the cache: the describe artifact and each method's runs.

The settings in effect choose the artifacts exactly as ``eval`` finds them: the describe key
from :func:`lmmclf.describe.describe_spec`, each method's runs through eval's own
:func:`lmmclf.evaluation.report.collect` and its row through
:func:`~lmmclf.evaluation.report.method_summary` (so the accuracies are those of ``eval --json``).
Per-image predictions are the ones the training stages stored with their runs
(``runs/<i>/test_predictions``, :mod:`lmmclf.results`): nothing is recomputed or retrained.

Whatever is not cached becomes a :class:`MissingSection` naming the command that makes it
(rendered by :func:`lmmclf.stages.command`, so it carries the global options in effect). A
method whose artifacts cannot be found or read is that method's entry there; the others go on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmmclf.errors import LmmclfError
from lmmclf.stages import command


@dataclass
class MissingSection:
    """A part of the report the cache cannot fill, and what makes it.

    Args:
        section: ``describe``, ``methods``, ``leakage`` or a method's name.
        reason: one sentence: what is missing.
        commands: the command lines that make it (each one works as written in a shell).
    """

    section: str
    reason: str
    commands: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"section": self.section, "reason": self.reason, "commands": self.commands}


@dataclass
class DescribeData:
    """The describe artifact named by the settings.

    Args:
        key: its key.
        path: its file.
        attrs: what it says about itself (model, prompt, backend...).
        rows: every row as :func:`lmmclf.describe.artifact.read_rows` gives it (raw answer, reason of a failure).
        texts: item id -> the descriptions that count under the answer policy in effect
            (:func:`lmmclf.describe.reading.read_descriptions`): what embed read.
        shapes: answers per shape (:func:`lmmclf.describe.artifact.artifact_shapes`).
        capacity: K, the descriptions asked for per image.
    """

    key: str
    path: Path
    attrs: dict[str, Any]
    rows: list[dict[str, Any]]
    texts: dict[str, list[str]]
    shapes: dict[str, int]
    capacity: int


@dataclass
class MethodData:
    """One trained method: eval's row and the per-image predictions of its runs.

    Args:
        name: the method's name (``concat``, ``lmm-reg``...).
        label: its row label.
        summary: its entry of eval's results.json (:func:`lmmclf.evaluation.report.method_summary`).
        runs: its runs, in seed order (:class:`lmmclf.results.TrainingRun`).
    """

    name: str
    label: str
    summary: dict[str, Any]
    runs: list

    @property
    def gallery_seed(self) -> int:
        """The seed whose predictions the gallery shows (the first)."""
        return self.runs[0].seed

    def predictions(self) -> dict[str, int]:
        """item id -> the class the first seed predicts (test images it was tested on)."""
        run = self.runs[0]
        return {item_id: int(pred) for item_id, pred in zip(run.test_ids, run.test_predictions)}


def gather_describe(cfg, dataset, store) -> tuple[DescribeData | None, MissingSection | None]:
    """The describe artifact of ``cfg.describe`` on ``dataset``, or why there is none.

    Args:
        cfg: the experiment config.
        dataset: the loaded dataset.
        store: the artifact store.
    """
    from lmmclf.describe import describe_spec
    from lmmclf.describe.artifact import artifact_shapes, read_rows
    from lmmclf.describe.reading import read_descriptions

    make = command("describe", dataset.name)
    try:
        spec = describe_spec(cfg, dataset, store)
    except LmmclfError as exc:
        return None, MissingSection("describe", f"The describe key cannot be computed: {exc}", [make])
    if not store.is_complete("describe", spec.key):
        return None, MissingSection("describe", f"No descriptions of {dataset.name} are cached with these settings "
                                                f"(describe key {spec.key[:12]}).", [make])
    path = store.path("describe", spec.key)
    try:
        with store.open("describe", spec.key, make_hint=make) as handle:
            attrs = {name: _plain(value) for name, value in handle.attrs.items() if not name.startswith("lmmclf_")}
            descriptions = read_descriptions(handle, require_list=bool(cfg.describe.require_list))
        rows = read_rows(path)
        shapes = artifact_shapes(path)
    except LmmclfError as exc:
        return None, MissingSection("describe", str(exc), [make])
    texts = dict(zip(descriptions.ids, descriptions.texts))
    return DescribeData(spec.key, path, attrs, rows, texts, shapes, descriptions.capacity), None


def gather_methods(cfg, dataset, store, names: list[str]) -> tuple[list[MethodData], list[MissingSection]]:
    """The cached runs of the methods ``names`` (``all``: every registered one), as eval finds them.

    Args:
        cfg: the experiment config.
        dataset: the loaded dataset.
        store: the artifact store.
        names: method names, comma-separated or not.

    Raises:
        LmmclfError: an unknown method name (a usage mistake, before any work).
    """
    from lmmclf.evaluation.methods import resolve_methods
    from lmmclf.evaluation.report import collect, method_summary

    split_ids = frozenset(item.id for item in dataset.split("test"))
    found: list[MethodData] = []
    missing: list[MissingSection] = []
    for method in resolve_methods(names):
        try:  # one method at a time: one that cannot be found or read is its own entry
            results, absent = collect(cfg, dataset, store, [method])
        except LmmclfError as exc:
            missing.append(MissingSection(method.name, str(exc), [method.command(cfg, dataset.name)]))
            continue
        for entry in absent:
            missing.append(MissingSection(method.name, f"{method.name} is not trained with these settings.", [entry.chain]))
        for result in results:
            if not result.runs:
                missing.append(MissingSection(method.name, f"{method.name}'s artifact holds no runs.", [method.command(cfg, dataset.name)]))
                continue
            found.append(MethodData(method.name, method.label, method_summary(result, split_ids), result.runs))
    return found, missing


def _plain(value: Any) -> Any:
    """An HDF5 attribute as a JSON-friendly value."""
    if hasattr(value, "item") and getattr(value, "shape", None) == ():
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value
