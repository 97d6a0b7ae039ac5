"""Benchmark: the linear probe at paper defaults (500 epochs, lr 1e-3, batch 64, SGD momentum 0.9)
on 13,320 x 1536 random features, 101 classes (UCF-101's size; split 1: 9,537 train / 3,783 test),
side by side in one run with

  (a) the straightforward loop: DataLoader over a TensorDataset, nn.Linear, CrossEntropyLoss,
      loss.backward(), optimizer.step(), and a DataLoader pass over the test set every epoch;
  (b) scikit-learn's LogisticRegression(lbfgs), the CLIP paper's linear probe (one fit, no curves).

Usage: python tests/bench/bench_probe.py [--epochs 500] [--threads 2] [--device cpu]
The baseline loop (a) can be timed on fewer epochs (--baseline-epochs) and extrapolated
linearly: its cost per epoch is constant.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def data(seed: int = 0):
    rng = np.random.default_rng(seed)
    n_train, n_test, dim, classes = 9537, 3783, 1536, 101
    x = rng.standard_normal((n_train + n_test, dim), dtype=np.float32)
    y = rng.integers(0, classes, n_train + n_test)
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:], classes


def ours(x, y, xt, yt, classes, epochs, device):
    from lmmclf.probe.trainer import ProbeSettings, train_linear_probe

    start = time.perf_counter()
    result = train_linear_probe(x, y, xt, yt, classes, ProbeSettings(epochs=epochs), seed=0, device=device)
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()
    return time.perf_counter() - start, result.test_acc[-1]


def dataloader_loop(x, y, xt, yt, classes, epochs, device):
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    train = DataLoader(TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), batch_size=64, shuffle=True)
    test = DataLoader(TensorDataset(torch.from_numpy(xt), torch.from_numpy(yt)), batch_size=64)
    model = torch.nn.Linear(x.shape[1], classes).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    criterion = torch.nn.CrossEntropyLoss()
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        total = 0.0
        for xb, yb in train:
            xb, yb = xb.to(device), yb.to(device)
            optimizer.zero_grad()
            loss = criterion(model(xb), yb)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(xb)
        model.eval()
        correct = 0
        with torch.no_grad():
            for xb, yb in test:
                correct += (model(xb.to(device)).argmax(1) == yb.to(device)).sum().item()
    return time.perf_counter() - start


def sklearn_lbfgs(x, y):
    from sklearn.linear_model import LogisticRegression

    start = time.perf_counter()
    LogisticRegression(solver="lbfgs", max_iter=1000, C=0.316).fit(x, y)  # C as in CLIP's probe sweep midpoint
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=500)
    parser.add_argument("--baseline-epochs", type=int, default=None, help="epochs actually run for (a); default --epochs")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip-sklearn", action="store_true")
    args = parser.parse_args()
    import os

    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    torch.set_num_threads(args.threads)
    x, y, xt, yt, classes = data()
    print(f"probe benchmark: {len(x)} train / {len(xt)} test x {x.shape[1]} features, {classes} classes, "
          f"{args.epochs} epochs, {args.threads} threads, device {args.device}")
    ours(x[:256], y[:256], xt[:64], yt[:64], classes, 2, args.device)  # warm-up (lazy init)
    ours_s, acc = ours(x, y, xt, yt, classes, args.epochs, args.device)
    print(f"lmmclf probe:          {ours_s:8.1f} s  ({ours_s / args.epochs * 1e3:.1f} ms/epoch, final test acc {acc:.3f})")
    base_epochs = args.baseline_epochs or args.epochs
    base_s = dataloader_loop(x, y, xt, yt, classes, base_epochs, args.device) * args.epochs / base_epochs
    note = f" (measured on {base_epochs} epochs, scaled)" if base_epochs != args.epochs else ""
    print(f"(a) DataLoader loop:   {base_s:8.1f} s{note}  -> lmmclf is {base_s / ours_s:.1f}x faster")
    if not args.skip_sklearn:
        sk = sklearn_lbfgs(x, y)
        print(f"(b) sklearn lbfgs fit: {sk:8.1f} s (one fit, no per-epoch curves) -> ratio {sk / ours_s:.2f}")


if __name__ == "__main__":
    main()
