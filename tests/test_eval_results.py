"""TrainingRun storage shared by probe and finetune."""

from __future__ import annotations

import h5py
import numpy as np

from lmmclf.results import TrainingRun, read_runs, summarize, write_runs


def _run(seed, accs, selected=None):
    return TrainingRun(
        seed=seed,
        train_loss=np.linspace(2, 1, len(accs)),
        test_acc=np.array(accs),
        test_ids=["a/1", "b/2", "c/3"],
        test_predictions=np.array([0, 1, 1]),
        test_labels=np.array([0, 1, 2]),
        curves={"val_acc": np.array(accs) / 2},
        weights={"weight": np.ones((3, 4), np.float32)},
        selected_epoch=selected,
    )


def test_runs_round_trip(tmp_path):
    runs = [_run(0, [0.2, 0.9, 0.5], selected=2), _run(1, [0.3, 0.4, 0.7])]
    with h5py.File(tmp_path / "r.h5", "w") as handle:
        write_runs(handle, runs)
    with h5py.File(tmp_path / "r.h5", "r") as handle:
        back = read_runs(handle)
        with_weights = read_runs(handle, weights=True)
    assert [r.seed for r in back] == [0, 1]
    assert back[0].test_ids == ["a/1", "b/2", "c/3"]
    assert back[0].final_acc == 0.5 and back[0].best_acc == 0.9 and back[0].best_epoch == 2
    assert back[0].selected_epoch == 2 and back[0].selected_acc == 0.9
    assert back[1].selected_epoch is None and back[1].selected_acc is None
    np.testing.assert_array_equal(back[0].curves["val_acc"], [0.1, 0.45, 0.25])
    assert back[0].weights == {} and with_weights[0].weights["weight"].shape == (3, 4)
    assert back[0].correct().tolist() == [True, True, False]


def test_summary_mean_and_sample_std():
    summary = summarize([_run(0, [0.5]), _run(1, [0.7]), _run(2, [0.9])])
    assert abs(summary["mean"] - 0.7) < 1e-12
    assert abs(summary["std"] - 0.2) < 1e-12
    assert summarize([_run(0, [0.5])])["std"] == 0.0


def test_zero_shot_run_without_epochs_scores_its_predictions():
    run = TrainingRun(0, np.array([]), np.array([]), ["x", "y"], np.array([1, 0]), np.array([1, 1]))
    assert run.final_acc == 0.5 and run.epochs == 0
