"""Collect each method's runs from the cache and assemble the results (dict form, for every output)."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lmmclf.errors import MissingArtifactError, StorageError
from lmmclf.evaluation.methods import Method
from lmmclf.results import TrainingRun, read_runs, summarize


@dataclass
class MethodResult:
    """A method's runs (all seeds) and the artifacts they came from."""

    method: Method
    keys: list[str]
    runs: list[TrainingRun]
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class Missing:
    """A method whose artifact is not cached, and the command that makes it.

    Args:
        method: the method.
        command: the command that makes its artifact (its inputs being cached).
        before: the commands, parents first, that make its missing inputs.
    """

    method: Method
    command: str
    before: list[str] = field(default_factory=list)

    @property
    def chain(self) -> str:
        """Every command it needs, joined with ``&&``: it works as written in a shell."""
        return " && ".join([*self.before, self.command])


def _attrs(handle) -> dict[str, Any]:
    keep = ("features", "items_without_text", "dropped_images", "train", "val", "test", "alpha")
    out = {}
    for name in keep:
        if name in handle.attrs:
            value = handle.attrs[name]
            out[name] = value.item() if hasattr(value, "item") else value
    return out


def collect(cfg, dataset, store, methods: list[Method], compute_missing: bool = False) -> tuple[list[MethodResult], list[Missing]]:
    """Read the runs of ``methods`` from the cache (computing missing ones if asked).

    Args:
        cfg: the experiment config (the keys are computed from it).
        dataset: the loaded dataset.
        store: the artifact store.
        methods: what to collect.
        compute_missing: run the stages that make missing artifacts instead of reporting them.
    """
    results, missing = [], []
    for method in methods:
        specs = method.specs(cfg, dataset, store)
        absent = [spec for spec in specs if not store.is_complete(spec.stage, spec.key)]
        if absent and compute_missing:
            method.compute(cfg, dataset, store)
        elif absent:
            from lmmclf.missing_inputs import commands_to_make

            missing.append(Missing(method, method.command(cfg, dataset.name), commands_to_make(cfg, dataset, absent, store)))
            continue
        runs, attrs = [], {}
        for spec in specs:
            with store.open(spec.stage, spec.key, make_hint=method.command(cfg, dataset.name), wanted=spec) as handle:
                runs.extend(read_runs(handle))
                attrs = attrs or _attrs(handle)
        runs.sort(key=lambda run: run.seed)
        results.append(MethodResult(method, [spec.key for spec in specs], runs, attrs))
    return results, missing


def require_all(missing: list[Missing], cached: list[str] = ()) -> None:
    """Raise when methods are missing: every one with the commands that make it, and what is cached.

    Args:
        missing: the methods not cached.
        cached: the names of the methods that are.
    """
    if missing:
        names = ", ".join(m.method.name for m in missing)
        have = f"cached with these settings: {', '.join(cached)}" if cached else "no method is cached with these settings"
        lines = [f"  {m.method.name}: {m.chain}" for m in missing]
        raise MissingArtifactError(
            f"No cached results for {'methods' if len(missing) > 1 else 'method'} {names} ({have}); make "
            f"{'them' if len(missing) > 1 else 'it'} with:\n" + "\n".join(lines)
            + "\nor run this eval again with --compute-missing."
        )


def _cached_methods(cfg, dataset, store) -> list[str]:
    """The registered methods whose runs are all cached under ``cfg`` (what eval could show now)."""
    from lmmclf.errors import LmmclfError
    from lmmclf.evaluation.methods import resolve_methods

    names = []
    for method in resolve_methods(["all"]):
        try:
            specs = method.specs(cfg, dataset, store)
        except LmmclfError:  # e.g. a model that cannot be identified here: not cached as far as we can tell
            continue
        if specs and all(store.is_complete(spec.stage, spec.key) for spec in specs):
            names.append(method.name)
    return names


def method_summary(result: MethodResult, split_ids: frozenset[str]) -> dict[str, Any]:
    """One method's entry of results.json.

    Args:
        result: the method's runs.
        split_ids: the ids of the dataset's whole test split (the row says which part it was tested on).
    """
    from lmmclf.evaluation.testsets import measured_on

    runs = result.runs
    summary = summarize(runs)
    epochs = [run.epochs for run in runs]
    curves: dict[str, list[float]] = {}
    if runs and min(epochs) > 0:
        length = min(epochs)
        curves["test_acc_mean"] = np.mean([run.test_acc[:length] for run in runs], axis=0).tolist()
        if len(runs) > 1:  # the plot's spread band over seeds (sample std, as the tables' ±)
            curves["test_acc_std"] = np.std([run.test_acc[:length] for run in runs], axis=0, ddof=1).tolist()
        curves["train_loss_mean"] = np.mean([run.train_loss[:length] for run in runs], axis=0).tolist()
    from lmmclf.evaluation.clip_benchmark import mean_per_class_recall

    recall = [mean_per_class_recall(run.test_predictions, run.test_labels) for run in runs]
    return {
        "method": result.method.name,
        "label": result.method.label,
        "mean_per_class_recall": float(np.mean(recall)) if recall else None,  # balanced accuracy, mean over seeds
        "keys": result.keys,
        **measured_on(runs, split_ids),
        **summary,
        **result.attrs,
        "curves": curves,
    }


def evaluate(cfg, dataset, store, names: list[str], compare: list[str] | None = None, compute_missing: bool = False) -> tuple[dict[str, Any], list[Missing]]:
    """The results document (what results.json holds) of methods ``names`` under ``cfg``.

    Explicitly named methods must be cached (or ``compute_missing``); with ``all``, methods not
    cached are left out and returned as missing so the caller can list their commands.

    Args:
        cfg: the experiment config.
        dataset: the loaded dataset.
        store: the artifact store.
        names: method names (``all`` for every registered one).
        compare: two method names to compare pairwise, or None.
        compute_missing: compute what is missing.

    Raises:
        MissingArtifactError: a named method (or a compared one) is not cached.
        LmmclfError: unknown method, or a comparison of methods not evaluated.
    """
    from lmmclf.errors import LmmclfError
    from lmmclf.evaluation.methods import resolve_methods
    from lmmclf.evaluation.stats import compare_runs, pair_runs
    from lmmclf.evaluation.testsets import differ

    wants_all = any(part.strip() == "all" for name in names for part in name.split(","))
    methods = resolve_methods(list(names) + list(compare or []))
    results, missing = collect(cfg, dataset, store, methods, compute_missing)
    compared = set(compare or [])
    cached = [result.method.name for result in results]
    if missing and (not wants_all or not results):
        cached = _cached_methods(cfg, dataset, store)
    if not wants_all or any(m.method.name in compared for m in missing):
        require_all([m for m in missing if not wants_all or m.method.name in compared], cached)
    if not results:
        require_all(missing, cached)
    split_ids = frozenset(item.id for item in dataset.split("test"))
    summaries = [method_summary(result, split_ids) for result in results]
    document: dict[str, Any] = {
        "dataset": dataset.name,
        "dataset_fingerprint": dataset.fingerprint,
        "class_count": len(dataset.class_names),
        "test_split_items": len(split_ids),
        "same_test_set": not differ(summaries),  # False: rows were measured on different images (see each test_items)
        "methods": summaries,
        "missing": [{"method": m.method.name, "command": m.command, "commands": [*m.before, m.command]} for m in missing],
    }
    if compare:
        if len(compare) != 2:
            raise LmmclfError(f"--compare takes two methods, e.g. concat,image; got {','.join(compare)}.")
        by_name = {result.method.name: result for result in results}
        run_a, run_b = pair_runs(by_name[compare[0]].runs, by_name[compare[1]].runs)
        try:
            comparison = compare_runs(compare[0], run_a, compare[1], run_b, cfg.eval.bootstrap, cfg.eval.confidence)
        except ValueError as exc:
            raise LmmclfError(f"Cannot compare {compare[0]} and {compare[1]}: {exc}.") from exc
        document["comparison"] = comparison.to_dict()
    return document, missing


def out_dir_error(out_dir: Path, reason: str) -> StorageError:
    """The one sentence for an ``eval.out_dir`` that cannot take the result files."""
    return StorageError(
        f"eval.out_dir {out_dir} is not writable ({reason}): choose another folder with --out-dir or eval.out_dir."
    )


def check_out_dir(out_dir: Path, error=None) -> None:
    """Raise :func:`out_dir_error` (or ``error(out_dir, reason)``) unless files can be written in ``out_dir``.

    Called before any work, so that a typo'd or read-only folder costs nothing. It creates no
    folder: it tries a temporary file in ``out_dir`` or, if that does not exist yet, in its nearest
    existing ancestor (where the folder would be created). Trying beats ``os.access``, which a
    read-only file system, ACLs or root make unreliable.
    """
    error = error or out_dir_error
    probe = Path(os.path.abspath(out_dir))
    while not probe.exists():
        if probe.is_symlink():  # dangling: the folder it points at would be created elsewhere
            raise error(out_dir, f"{probe} is a dangling symbolic link")
        probe = probe.parent
    if not probe.is_dir():
        raise error(out_dir, f"{probe} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=probe, prefix=".lmmclf-write-test-"):
            pass
    except OSError as exc:
        raise error(out_dir, exc.strerror or str(exc)) from exc
