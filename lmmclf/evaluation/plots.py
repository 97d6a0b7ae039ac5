"""Test accuracy per epoch of the compared methods (like the paper's Figures 2-5), as a PNG.

One panel per training stage (the linear probe's 500 epochs and fine-tuning's 100 would squeeze
each other on one axis), the zero-shot baselines as horizontal reference lines in every panel,
a mean ± std band over seeds, integer epoch ticks, and the legend beside the panels, never over
the curves. Every method keeps one colour and line style wherever it appears; a curve equal to
one drawn before it says so in the legend (it would hide behind it otherwise). A method tested on
part of the test split says how many images in its legend (``4 of 6 test images``).

matplotlib is an optional extra (``pip install lmmclf[plot]``); without it the plot is skipped
with a message and every other output is still written.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from lmmclf.errors import LmmclfError
from lmmclf.evaluation import testsets

# Panel titles, in drawing order; a method's panel is its training stage.
PROBE_PANEL = "linear probe (paper 1)"
FINETUNE_PANEL = "fine-tuning (paper 2)"

# (colour, line style) per method name, so a method looks the same in every panel and every plot;
# the zero-shot baselines get their own colours and broken lines (they are references, not curves).
STYLES: dict[str, tuple[str, str]] = {
    "image": ("tab:blue", "-"),
    "text": ("tab:orange", "-"),
    "concat": ("tab:green", "-"),
    "mean": ("tab:red", "-"),
    "finetune": ("tab:purple", "-"),
    "lmm-reg": ("tab:brown", "-"),
    "zeroshot": ("tab:gray", "--"),
    "prototype-zeroshot": ("tab:olive", ":"),
}
LEGEND_WRAP = 42  # characters per legend line: the papers' labels are long
_SPARE = [("tab:pink", "-."), ("tab:cyan", "-."), ("black", "-."), ("tab:blue", "-."), ("tab:green", "-.")]


def panel_of(summary: dict[str, Any]) -> str:
    """The panel a trained method is drawn in: fine-tuning artifacts carry ``alpha``, probes do not."""
    return FINETUNE_PANEL if "alpha" in summary else PROBE_PANEL


def style_of(name: str, spare_index: int = 0) -> tuple[str, str]:
    """The (colour, line style) of method ``name``; methods not in :data:`STYLES` take spare ones."""
    return STYLES.get(name) or _SPARE[spare_index % len(_SPARE)]


def plot_curves(summaries: list[dict[str, Any]], path: Path, title: str) -> Path | None:
    """Draw the mean test-accuracy curve of every method that has epochs; returns the PNG path.

    Returns None when no method has a curve.

    Args:
        summaries: the ``methods`` entries of results.json (``curves.test_acc_mean``, optional
            ``curves.test_acc_std``, ``mean``, ``label``, ``method``).
        path: the PNG to write.
        title: the figure's title.

    Raises:
        LmmclfError: matplotlib is not installed.
    """
    if not any(s["curves"].get("test_acc_mean") for s in summaries):
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise LmmclfError("The accuracy plot needs matplotlib: `pip install matplotlib` (or use --no-plot).") from exc
    figure = build_figure(summaries, title)
    path.parent.mkdir(parents=True, exist_ok=True)
    # bbox "tight" keeps the legends beside the panels inside the image
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)
    return path


def build_figure(summaries: list[dict[str, Any]], title: str):
    """The matplotlib figure of :func:`plot_curves` (separate so its structure can be checked)."""
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.ticker import MaxNLocator

    trained = [s for s in summaries if s["curves"].get("test_acc_mean")]
    baselines = [s for s in summaries if not s["curves"].get("test_acc_mean")]
    panels = [name for name in (PROBE_PANEL, FINETUNE_PANEL) if any(panel_of(s) == name for s in trained)]
    spare = {s["method"]: i for i, s in enumerate(x for x in summaries if x["method"] not in STYLES)}
    styles = {s["method"]: style_of(s["method"], spare.get(s["method"], 0)) for s in summaries}
    banded = any(s["curves"].get("test_acc_std") for s in trained)

    # constrained layout makes room for the legends beside the panels instead of shrinking them away
    figure, axes_list = plt.subplots(len(panels), 1, figsize=(11, 3.8 * len(panels)), squeeze=False, layout="constrained")
    for axes, panel in zip(axes_list[:, 0], panels):
        drawn: list[tuple[str, np.ndarray]] = []  # (label, values) already in this panel

        def label_for(s: dict[str, Any], values: np.ndarray) -> str:
            same = [label for label, other in drawn if other.shape == values.shape and np.allclose(other, values, atol=1e-9)]
            drawn.append((s["label"], values))
            label = s["label"] + testsets.legend(s)
            text = f"{label}: same line as {same[0]}" if same else label
            return textwrap.fill(text, LEGEND_WRAP)

        last_epoch = 1
        for s in (x for x in trained if panel_of(x) == panel):
            mean = 100 * np.asarray(s["curves"]["test_acc_mean"], dtype=float)
            epochs = np.arange(1, len(mean) + 1)
            last_epoch = max(last_epoch, len(mean))
            colour, line = styles[s["method"]]
            axes.plot(epochs, mean, color=colour, linestyle=line, linewidth=1.6, label=label_for(s, mean))
            std = s["curves"].get("test_acc_std")
            if std:
                spread = 100 * np.asarray(std, dtype=float)
                axes.fill_between(epochs, mean - spread, mean + spread, color=colour, alpha=0.18, linewidth=0)
        for s in baselines:
            colour, line = styles[s["method"]]
            level = np.asarray([100 * s["mean"]])
            axes.axhline(level[0], color=colour, linestyle=line, linewidth=1.4, label=label_for(s, level))
        axes.set_title(panel, fontsize=10)
        axes.set_xlabel("epoch")
        axes.set_ylabel("test accuracy (%)")
        axes.set_xlim(1, max(2, last_epoch))
        low, high = axes.get_ylim()
        if high - low < 10:  # a flat curve would be zoomed into noise-sized ticks: show 10 points at least
            middle = (low + high) / 2
            axes.set_ylim(middle - 5, middle + 5)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
        # beside the panel, top-aligned: the curves keep the whole axes
        axes.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize=8, frameon=False)
    notes = ["lines: mean over seeds"] + (["shaded: ± 1 std"] if banded else []) + (["horizontal: zero-shot, no training"] if baselines else [])
    figure.suptitle(f"{title}  ({'; '.join(notes)})", fontsize=11)
    return figure
