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
    """A method whose artifact is not cached, and the command that makes it."""

    method: Method
    command: str


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
            missing.append(Missing(method, method.command(cfg, dataset.name)))
            continue
        runs, attrs = [], {}
        for spec in specs:
            with store.open(spec.stage, spec.key, make_hint=method.command(cfg, dataset.name)) as handle:
                runs.extend(read_runs(handle))
                attrs = attrs or _attrs(handle)
        runs.sort(key=lambda run: run.seed)
        results.append(MethodResult(method, [spec.key for spec in specs], runs, attrs))
    return results, missing


def require_all(missing: list[Missing]) -> None:
    """Raise for the first missing artifact, naming the command (or ``--compute-missing``)."""
    if missing:
        first = missing[0]
        others = f" ({len(missing) - 1} more methods are missing too)" if len(missing) > 1 else ""
        raise MissingArtifactError(
            f"No cached results for method '{first.method.name}': run `{first.command}` "
            f"or add --compute-missing{others}."
        )


def method_summary(result: MethodResult) -> dict[str, Any]:
    """One method's entry of results.json."""
    runs = result.runs
    summary = summarize(runs)
    epochs = [run.epochs for run in runs]
    curves: dict[str, list[float]] = {}
    if runs and min(epochs) > 0:
        length = min(epochs)
        curves["test_acc_mean"] = np.mean([run.test_acc[:length] for run in runs], axis=0).tolist()
        curves["train_loss_mean"] = np.mean([run.train_loss[:length] for run in runs], axis=0).tolist()
    return {
        "method": result.method.name,
        "label": result.method.label,
        "keys": result.keys,
        "test_items": len(runs[0].test_ids) if runs else 0,
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

    wants_all = any(part.strip() == "all" for name in names for part in name.split(","))
    methods = resolve_methods(list(names) + list(compare or []))
    results, missing = collect(cfg, dataset, store, methods, compute_missing)
    compared = set(compare or [])
    if not wants_all or any(m.method.name in compared for m in missing):
        require_all([m for m in missing if not wants_all or m.method.name in compared])
    if not results:
        require_all(missing)
    document: dict[str, Any] = {
        "dataset": dataset.name,
        "dataset_fingerprint": dataset.fingerprint,
        "class_count": len(dataset.class_names),
        "methods": [method_summary(result) for result in results],
        "missing": [{"method": m.method.name, "command": m.command} for m in missing],
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


def check_out_dir(out_dir: Path) -> None:
    """Raise :func:`out_dir_error` unless the result files can be written in ``out_dir``.

    Called before any work, so that a typo'd or read-only folder costs nothing. It creates no
    folder: it tries a temporary file in ``out_dir`` or, if that does not exist yet, in its nearest
    existing ancestor (where the folder would be created). Trying beats ``os.access``, which a
    read-only file system, ACLs or root make unreliable.
    """
    probe = Path(os.path.abspath(out_dir))
    while not probe.exists():
        if probe.is_symlink():  # dangling: the folder it points at would be created elsewhere
            raise out_dir_error(out_dir, f"{probe} is a dangling symbolic link")
        probe = probe.parent
    if not probe.is_dir():
        raise out_dir_error(out_dir, f"{probe} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=probe, prefix=".lmmclf-write-test-"):
            pass
    except OSError as exc:
        raise out_dir_error(out_dir, exc.strerror or str(exc)) from exc
