"""The probe with bounded memory: integer labels, index gathers and features read per batch
from a memory-mapped file give what the dense one-hot loop with shuffled copies gave."""

from __future__ import annotations

import numpy as np
import pytest

from lmmclf.probe.trainer import OPTIMIZERS, ProbeSettings, Rows, init_head, train_linear_probe


def _blobs(n=90, classes=4, dim=12, seed=0):
    centres = np.random.default_rng(0).normal(size=(classes, dim)) * 2
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    return (centres[labels] + 2 * rng.normal(size=(n, dim))).astype(np.float32), labels


def _old_loop(x_train, y_train, x_test, y_test, classes, settings, seed):
    """The loop as it was before issue 23: a dense one-hot and shuffled copies every epoch."""
    import torch

    generator = torch.Generator().manual_seed(int(seed))
    weight, bias = init_head(x_train.shape[1], classes, generator)
    weight, bias = torch.nn.Parameter(weight), torch.nn.Parameter(bias)
    optimizer = OPTIMIZERS[settings.optimizer]([weight, bias], settings)
    xs, ys = torch.as_tensor(x_train), torch.as_tensor(y_train, dtype=torch.int64)
    onehot = torch.nn.functional.one_hot(ys, classes).to(torch.float32)
    xt, yt = torch.as_tensor(x_test), torch.as_tensor(y_test, dtype=torch.int64)
    losses, accs = [], []
    weight.grad, bias.grad = torch.zeros_like(weight), torch.zeros_like(bias)
    with torch.no_grad():
        for _ in range(settings.epochs):
            order = torch.randperm(len(xs), generator=generator)
            shuffled_x, shuffled_onehot = xs[order], onehot[order]
            total = torch.zeros(())
            for start in range(0, len(xs), settings.batch_size):
                xb, tb = shuffled_x[start : start + settings.batch_size], shuffled_onehot[start : start + settings.batch_size]
                log_probs = torch.log_softmax(torch.addmm(bias, xb, weight.t()), dim=1)
                total -= (log_probs * tb).sum()
                grad = log_probs.exp_().sub_(tb).div_(len(xb))
                torch.mm(grad.t(), xb, out=weight.grad)
                torch.sum(grad, dim=0, out=bias.grad)
                optimizer.step()
            losses.append(float(total) / len(xs))
            accs.append(int(torch.addmm(bias, xt, weight.t()).argmax(1).eq(yt).sum()) / len(yt))
    return np.array(losses), np.array(accs), weight.detach().numpy()


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("limit", [None, 0])  # None: on the device as one tensor; 0: gathered per batch from the host
def test_same_seed_same_curves_as_the_dense_loop(optimizer, limit):
    x, y = _blobs()
    xt, yt = _blobs(40, seed=1)
    settings = ProbeSettings(epochs=6, lr=0.05, optimizer=optimizer, batch_size=16)  # 90 rows: a short last batch
    kwargs = {} if limit is None else {"in_memory_max_bytes": limit}
    result = train_linear_probe(x, y, xt, yt, 4, settings, seed=5, **kwargs)
    losses, accs, weight = _old_loop(x, y, xt, yt, 4, settings, 5)
    np.testing.assert_array_equal(result.test_acc, accs)
    assert accs[-1] > 0.5  # the head learns
    np.testing.assert_allclose(result.train_loss, losses, rtol=1e-6)
    np.testing.assert_allclose(result.weight, weight, rtol=1e-5, atol=1e-6)


def test_rows_of_a_memory_mapped_file_train_like_an_array(tmp_path):
    x, y = _blobs(120)
    mapped = np.lib.format.open_memmap(tmp_path / "features.npy", mode="w+", dtype=np.float32, shape=x.shape)
    mapped[:] = x
    fit, test = np.arange(0, 120, 2), np.arange(1, 120, 2)
    settings = ProbeSettings(epochs=4, lr=0.05, batch_size=8)
    streamed = train_linear_probe(Rows(mapped, fit), y[fit], Rows(mapped, test), y[test], 4, settings, seed=0,
                                  x_val=Rows(mapped, test[:10]), y_val=y[test[:10]], in_memory_max_bytes=0)
    resident = train_linear_probe(x[fit], y[fit], x[test], y[test], 4, settings, seed=0, x_val=x[test[:10]], y_val=y[test[:10]])
    np.testing.assert_array_equal(streamed.test_acc, resident.test_acc)
    np.testing.assert_array_equal(streamed.val_acc, resident.val_acc)
    np.testing.assert_array_equal(streamed.test_predictions, resident.test_predictions)
    np.testing.assert_allclose(streamed.weight, resident.weight, rtol=1e-6, atol=1e-7)


def _probe_curves(runner, config, cache, *options):
    import h5py

    from lmmclf.cli.app import app
    from lmmclf.results import read_runs

    result = runner.invoke(app, ["-c", config, *options, "probe", "--features", "concat", "--force", "--json"])
    assert result.exit_code == 0, result.output
    (path,) = [p for p in (cache / "probe").glob("*.h5")]
    with h5py.File(path, "r") as handle:
        runs = read_runs(handle)
    assert not list((cache / "probe").glob("*.features.npy"))  # the spilled features are removed
    return [run.test_acc for run in runs], [run.train_loss for run in runs]


@pytest.mark.slow  # the demo's describe and embed (about 25 s on 2 cores)
def test_probe_on_features_spilled_to_disk_equals_the_in_memory_probe(tmp_path, runner):
    """Through the command line: probe.in_memory_max_bytes=0 puts the features in a memory-mapped
    file and gathers each batch from it; --normalize reads the description table per chunk."""
    from lmmclf.cli.app import app
    from lmmclf.demo import prepare_demo

    assets = prepare_demo(tmp_path / "demo", n_train=4, n_test=2, epochs=4)
    config = str(assets.config)
    cache = tmp_path / "cache"
    for command in (["describe"], ["embed"]):
        assert runner.invoke(app, ["-c", config, "--cache-dir", str(cache), *command]).exit_code == 0
    for normalize in ("false", "true"):
        base = ["--cache-dir", str(cache), "--set", f"probe.normalize={normalize}"]
        resident = _probe_curves(runner, config, cache, *base)
        spilled = _probe_curves(runner, config, cache, *base, "--set", "probe.in_memory_max_bytes=0")
        np.testing.assert_array_equal(spilled[0], resident[0])
        np.testing.assert_allclose(spilled[1], resident[1], rtol=1e-6)
        for path in (cache / "probe").glob("*.h5"):
            path.unlink()  # the next normalize setting writes its own key


def test_validation_split_equals_the_per_class_scan():
    """One sort instead of a scan per class (N x C): the same hold-out for the same seed."""
    from lmmclf.probe.stage import validation_split

    labels = np.random.default_rng(3).integers(0, 37, 2000)
    for seed in (0, 1):
        rng, held = np.random.default_rng(seed), []
        for label in np.unique(labels):
            rows = np.flatnonzero(labels == label)
            count = min(max(int(round(0.2 * len(rows))), 1 if len(rows) > 1 else 0), len(rows) - 1)
            held.extend(rng.permutation(rows)[:count].tolist())
        fit, val = validation_split(labels, 0.2, seed)
        np.testing.assert_array_equal(val, np.sort(held))
        np.testing.assert_array_equal(fit, np.setdiff1d(np.arange(len(labels)), held))
