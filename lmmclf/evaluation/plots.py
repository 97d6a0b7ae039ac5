"""Test accuracy per epoch of the compared methods (like the paper's Figures 2-5), as a PNG.

matplotlib is an optional extra (``pip install lmmclf[plot]``); without it the plot is skipped
with a message and every other output is still written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lmmclf.errors import LmmclfError


def plot_curves(summaries: list[dict[str, Any]], path: Path, title: str) -> Path | None:
    """Draw the mean test-accuracy curve of every method that has epochs; returns the PNG path.

    Zero-shot methods (no epochs) are drawn as horizontal dashed lines. Returns None when no
    method has a curve.

    Raises:
        LmmclfError: matplotlib is not installed.
    """
    trained = [s for s in summaries if s["curves"].get("test_acc_mean")]
    if not trained:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise LmmclfError("The accuracy plot needs matplotlib: `pip install matplotlib` (or use --no-plot).") from exc
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for s in trained:
        curve = [100 * v for v in s["curves"]["test_acc_mean"]]
        axes.plot(range(1, len(curve) + 1), curve, label=s["label"], linewidth=1.4)
    for s in summaries:
        if not s["curves"].get("test_acc_mean"):
            axes.axhline(100 * s["mean"], linestyle="--", linewidth=1.0, label=s["label"], color="grey")
    axes.set_xlabel("epoch")
    axes.set_ylabel("test accuracy (%)")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
