"""The linear probe: the fast loop equals the textbook loop, learns, and repeats with its seed."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lmmclf.probe.stage import validation_split
from lmmclf.probe.trainer import ProbeSettings, init_head, train_linear_probe


def _blobs(n_per_class=20, classes=3, dim=8, seed=0, spread=0.3):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim)) * 3
    labels = np.repeat(np.arange(classes), n_per_class)
    return (centres[labels] + spread * rng.normal(size=(len(labels), dim))).astype(np.float32), labels


def _reference(x, y, settings, seed, epochs):
    """The textbook loop: nn.Linear, nn.CrossEntropyLoss, autograd, the same batch order."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    weight, bias = init_head(x.shape[1], 3, generator)
    head = torch.nn.Linear(x.shape[1], 3)
    with torch.no_grad():
        head.weight.copy_(weight)
        head.bias.copy_(bias)
    from lmmclf.probe.trainer import OPTIMIZERS

    optimizer = OPTIMIZERS[settings.optimizer](list(head.parameters()), settings)
    xs, ys = torch.as_tensor(x), torch.as_tensor(y)
    losses = []
    for _ in range(epochs):
        order = torch.randperm(len(xs), generator=generator)
        total = 0.0
        for start in range(0, len(xs), settings.batch_size):
            rows = order[start : start + settings.batch_size]
            loss = torch.nn.functional.cross_entropy(head(xs[rows]), ys[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(rows)
        losses.append(total / len(xs))
    return head.weight.detach().numpy(), head.bias.detach().numpy(), np.array(losses)


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
def test_fast_loop_equals_autograd_loop(optimizer):
    x, y = _blobs(n_per_class=15)  # 45 rows, batch 16: the last batch is short
    settings = ProbeSettings(epochs=4, lr=0.05, optimizer=optimizer, momentum=0.9, weight_decay=0.01, batch_size=16)
    result = train_linear_probe(x, y, x[:6], y[:6], 3, settings, seed=3)
    weight, bias, losses = _reference(x, y, settings, 3, 4)
    np.testing.assert_allclose(result.weight, weight, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(result.bias, bias, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(result.train_loss, losses, rtol=1e-4)


def test_separable_problem_reaches_100_percent():
    x, y = _blobs(n_per_class=30, dim=16)
    xt, yt = _blobs(n_per_class=10, dim=16, seed=0)
    result = train_linear_probe(x, y, xt, yt, 3, ProbeSettings(epochs=60, lr=1e-2, batch_size=16), seed=0)
    assert result.test_acc[-1] == 1.0
    assert result.train_loss[-1] < result.train_loss[0]
    assert result.test_acc.shape == (60,) and result.train_loss.shape == (60,)
    assert (result.test_predictions == yt).all()


def test_same_seed_same_run_other_seed_other_run():
    x, y = _blobs(spread=2.0)
    settings = ProbeSettings(epochs=5, lr=1e-2, batch_size=8)
    a = train_linear_probe(x, y, x, y, 3, settings, seed=1)
    b = train_linear_probe(x, y, x, y, 3, settings, seed=1)
    c = train_linear_probe(x, y, x, y, 3, settings, seed=2)
    np.testing.assert_array_equal(a.weight, b.weight)
    np.testing.assert_array_equal(a.train_loss, b.train_loss)
    assert not np.array_equal(a.weight, c.weight)


def test_validation_curve_is_recorded():
    x, y = _blobs()
    result = train_linear_probe(x, y, x, y, 3, ProbeSettings(epochs=3, batch_size=8), seed=0, x_val=x[:9], y_val=y[:9])
    assert result.val_acc.shape == (3,) and ((0 <= result.val_acc) & (result.val_acc <= 1)).all()


def test_validation_split_is_stratified_and_disjoint():
    labels = np.repeat([0, 1, 2], [10, 4, 1])
    fit, val = validation_split(labels, 0.25, seed=0)
    assert np.intersect1d(fit, val).size == 0 and len(fit) + len(val) == len(labels)
    assert np.bincount(labels[val], minlength=3).tolist() == [2, 1, 0]  # a single image stays in training
    assert validation_split(labels, 0.0, 0)[1].size == 0
    assert not np.array_equal(validation_split(labels, 0.5, 1)[1], validation_split(labels, 0.5, 2)[1])


def test_paper_defaults():
    from lmmclf.config import ExperimentConfig

    probe = ExperimentConfig().probe
    assert (probe.epochs, probe.lr, probe.batch_size) == (500, 1e-3, 64)
    assert math.isclose(probe.momentum, 0.9) and probe.optimizer == "sgd"


def test_an_empty_seed_list_is_a_config_error_not_an_artifact_without_runs():
    from lmmclf.config import ExperimentConfig
    from lmmclf.errors import ConfigError
    from lmmclf.features import FeatureSet
    from lmmclf.probe.stage import _train_runs

    x, y = _blobs(n_per_class=4)
    splits = np.array(["train", "test"] * (len(y) // 2))
    data = FeatureSet([str(i) for i in range(len(y))], x, y, splits, ["a", "b", "c"])
    cfg = ExperimentConfig().override("probe", epochs=2, device="cpu")
    cfg = cfg.override("probe", seeds=[])  # what `seeds: []` in a config file gives
    assert cfg.probe.seeds == []
    with pytest.raises(ConfigError, match="probe.seeds"):
        _train_runs(cfg, data, lambda n: None)
