"""Training results, one :class:`TrainingRun` per seed, stored alike by ``probe`` and ``finetune``.

Both training stages write their runs with :func:`write_runs` into their artifact and ``eval``
reads them back with :func:`read_runs`, so every method is tabulated, plotted and compared
the same way. Reading needs only h5py and numpy (``eval`` must not import torch).

Layout inside the artifact (``i`` = 0, 1, ... in seed order)::

    runs/<i>/train_loss         (E,) float64   mean training loss of each epoch
    runs/<i>/test_acc           (E,) float64   test accuracy after each epoch, in [0, 1]
    runs/<i>/curves/<name>      (E,) float64   extra per-epoch curves (val_acc, reg_loss, ...)
    runs/<i>/test_ids           (T,) str       test item ids, in the order of the predictions
    runs/<i>/test_predictions   (T,) int64     predicted class after the last epoch
    runs/<i>/test_labels        (T,) int64     true class
    runs/<i>/weights/<name>     any            optional trained parameters (e.g. the linear head)
    attrs: seed, final_acc, best_acc, best_epoch, selected_epoch, selected_acc

Accuracies are fractions; epochs are counted from 1. ``final_acc`` (after the last epoch) is
the headline; ``best_acc``/``best_epoch`` pick the epoch on the test set itself and are
therefore optimistic; ``selected_epoch``/``selected_acc`` are the honest alternative, the
test accuracy at the epoch with the best validation accuracy (only with a validation split).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

RUNS_GROUP = "runs"
_NONE = -1  # how an absent optional epoch is stored (HDF5 attributes have no None)


@dataclass
class TrainingRun:
    """One training run (one seed) of a method.

    Args:
        seed: the seed of this run.
        train_loss: mean training loss per epoch.
        test_acc: test accuracy per epoch, fractions in [0, 1].
        test_ids: ids of the test items, aligned with the predictions.
        test_predictions: predicted class of each test item after the last epoch.
        test_labels: true class of each test item.
        curves: further per-epoch curves by name (``val_acc``, ``reg_loss``, ``proto_distance``).
        weights: trained parameters to keep with the run (name -> array).
        selected_epoch: the epoch chosen on the validation split (1-based), if there was one.
    """

    seed: int
    train_loss: np.ndarray
    test_acc: np.ndarray
    test_ids: list[str]
    test_predictions: np.ndarray
    test_labels: np.ndarray
    curves: dict[str, np.ndarray] = field(default_factory=dict)
    weights: dict[str, np.ndarray] = field(default_factory=dict)
    selected_epoch: int | None = None

    @property
    def epochs(self) -> int:
        return int(len(self.test_acc))

    @property
    def final_acc(self) -> float:
        """Test accuracy after the last epoch (the headline number)."""
        if len(self.test_acc):
            return float(self.test_acc[-1])
        return float(np.mean(np.asarray(self.test_predictions) == np.asarray(self.test_labels)))

    @property
    def best_epoch(self) -> int:
        """The epoch (1-based) with the highest test accuracy: optimistic, chosen on the test set."""
        return int(np.argmax(self.test_acc)) + 1 if len(self.test_acc) else 0

    @property
    def best_acc(self) -> float:
        return float(np.max(self.test_acc)) if len(self.test_acc) else self.final_acc

    @property
    def selected_acc(self) -> float | None:
        """Test accuracy at the validation-selected epoch, if any."""
        if self.selected_epoch is None:
            return None
        return float(self.test_acc[self.selected_epoch - 1])

    def correct(self) -> np.ndarray:
        """Per test item: was the final prediction right (bool, aligned with ``test_ids``)."""
        return np.asarray(self.test_predictions) == np.asarray(self.test_labels)


def write_runs(h5file: Any, runs: list[TrainingRun]) -> None:
    """Store ``runs`` under ``runs/`` of an open, writable ``h5py.File`` (or group).

    Args:
        h5file: the artifact being written.
        runs: the runs, one per seed.
    """
    import h5py

    group = h5file.require_group(RUNS_GROUP)
    text = h5py.string_dtype("utf-8")
    for index, run in enumerate(runs):
        sub = group.create_group(str(index))
        sub.create_dataset("train_loss", data=np.asarray(run.train_loss, dtype=np.float64))
        sub.create_dataset("test_acc", data=np.asarray(run.test_acc, dtype=np.float64))
        sub.create_dataset("test_ids", data=np.asarray(list(run.test_ids), dtype=object), dtype=text)
        sub.create_dataset("test_predictions", data=np.asarray(run.test_predictions, dtype=np.int64))
        sub.create_dataset("test_labels", data=np.asarray(run.test_labels, dtype=np.int64))
        curves = sub.create_group("curves")
        for name, values in run.curves.items():
            curves.create_dataset(name, data=np.asarray(values, dtype=np.float64))
        weights = sub.create_group("weights")
        for name, values in run.weights.items():
            weights.create_dataset(name, data=np.asarray(values), compression="gzip")
        sub.attrs["seed"] = int(run.seed)
        sub.attrs["final_acc"] = run.final_acc
        sub.attrs["best_acc"] = run.best_acc
        sub.attrs["best_epoch"] = run.best_epoch
        sub.attrs["selected_epoch"] = _NONE if run.selected_epoch is None else int(run.selected_epoch)
        sub.attrs["selected_acc"] = np.nan if run.selected_acc is None else run.selected_acc
    group.attrs["count"] = len(runs)


def read_runs(h5file: Any, weights: bool = False) -> list[TrainingRun]:
    """The runs stored by :func:`write_runs`, in seed order.

    Args:
        h5file: an open ``h5py.File`` (or group) holding ``runs/``.
        weights: also load the stored parameters (off by default: eval does not need them).

    Raises:
        KeyError: the file has no ``runs`` group.
    """
    group = h5file[RUNS_GROUP]
    runs = []
    for index in range(int(group.attrs["count"])):
        sub = group[str(index)]
        selected = int(sub.attrs["selected_epoch"])
        runs.append(
            TrainingRun(
                seed=int(sub.attrs["seed"]),
                train_loss=sub["train_loss"][()],
                test_acc=sub["test_acc"][()],
                test_ids=[s.decode("utf-8") if isinstance(s, bytes) else s for s in sub["test_ids"][()]],
                test_predictions=sub["test_predictions"][()],
                test_labels=sub["test_labels"][()],
                curves={name: data[()] for name, data in sub["curves"].items()},
                weights={name: data[()] for name, data in sub["weights"].items()} if weights else {},
                selected_epoch=None if selected == _NONE else selected,
            )
        )
    return runs


def summarize(runs: list[TrainingRun]) -> dict[str, Any]:
    """Mean and (sample) standard deviation over seeds of the final, best and selected accuracies.

    Args:
        runs: the runs of one method.
    """
    finals = np.array([run.final_acc for run in runs], dtype=np.float64)
    bests = np.array([run.best_acc for run in runs], dtype=np.float64)
    selected = [run.selected_acc for run in runs if run.selected_acc is not None]
    summary = {
        "seeds": [run.seed for run in runs],
        "final_acc": finals.tolist(),
        "mean": float(finals.mean()),
        "std": float(finals.std(ddof=1)) if len(finals) > 1 else 0.0,
        "best_acc": bests.tolist(),
        "best_acc_mean": float(bests.mean()),
        "best_epoch": [run.best_epoch for run in runs],
        "epochs": runs[0].epochs if runs else 0,
    }
    if selected:
        summary["selected_acc_mean"] = float(np.mean(selected))
        summary["selected_epoch"] = [run.selected_epoch for run in runs]
        summary["selected_acc"] = [run.selected_acc for run in runs]
    return summary


# -- the results files ----------------------------------------------------------------------------

DATASET_PLACEHOLDER = "{dataset}"
CSV_COLUMNS = ("dataset", "method", "seed", "final_acc", "best_acc", "best_epoch", "selected_acc", "selected_epoch", "epochs", "test_items",
               "test_split_items", "test_set")  # the row's test images: its count, the split's, which set (rows differ when it does)


def output_dir(template: str, dataset: str):
    """The folder (a ``Path``) of a dataset's results files: ``template`` (``eval.out_dir`` or ``--out-dir``)
    with ``{dataset}`` replaced by the dataset's name (the default ``results/{dataset}`` keeps datasets apart)."""
    from pathlib import Path

    return Path(str(template).replace(DATASET_PLACEHOLDER, dataset))


def tidy_rows(document: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per method and seed (``results.csv``): accuracies as fractions in [0, 1], as in results.json.

    Args:
        document: the results document (``methods`` as made by ``evaluation.report.method_summary``).
    """
    rows = []
    for method in document.get("methods", []):
        seeds = method.get("seeds", [])
        for index, seed in enumerate(seeds):
            def at(name: str) -> Any:
                values = method.get(name)
                return values[index] if isinstance(values, list) and index < len(values) else ""

            selected = at("selected_acc")
            rows.append({
                "dataset": document.get("dataset", ""), "method": method["method"], "seed": seed,
                "final_acc": at("final_acc"), "best_acc": at("best_acc") if method.get("epochs") else "",
                "best_epoch": at("best_epoch") if method.get("epochs") else "",
                "selected_acc": "" if selected is None else selected, "selected_epoch": at("selected_epoch"),
                "epochs": method.get("epochs", ""), "test_items": method.get("test_items", ""),
                "test_split_items": method.get("test_split_items", ""), "test_set": method.get("test_set", ""),
            })
    return rows


def to_csv(document: dict[str, Any]) -> str:
    """``results.csv``: :func:`tidy_rows` under a header of :data:`CSV_COLUMNS`."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(tidy_rows(document))
    return buffer.getvalue()
