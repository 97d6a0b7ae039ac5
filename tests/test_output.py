"""Output that reads well (issue 10, section 5): logs that do not wrap, a -q that silences the
libraries too, a demo whose stdout is only its JSON, and an accuracy plot that reads at a glance."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lmmclf.cli.app import app


def _lmmclf(args: list[str], tmp_path: Path, stderr_name: str = "stderr.log", **env_extra) -> tuple[subprocess.CompletedProcess, str]:
    """Run the real command line with stderr written to a file (not a terminal), as a log or CI does."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LMMCLF_NO_PROGRESS", "FORCE_COLOR", "TTY_COMPATIBLE")}
    env.update(env_extra)
    log = tmp_path / stderr_name
    with open(log, "w") as stderr:
        result = subprocess.run([sys.executable, "-m", "lmmclf", *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=stderr, text=True, env=env, timeout=300)
    return result, log.read_text()


def _long_folder(tmp_path: Path) -> Path:
    from lmmclf.testing.layouts import make_imagefolder

    deep = tmp_path.joinpath(*[f"a-rather-long-folder-name-number-{i:02d}" for i in range(8)], "images")
    return make_imagefolder(deep, ("cat", "dog"), n_train=2, n_test=1, size=(16, 16))


def test_log_keeps_paths_progress_lines_and_table_cells_whole(tmp_path):
    root = _long_folder(tmp_path)
    assert len(str(root)) > 250
    added, log = _lmmclf(["datasets", "add", "mine", "--root", str(root), "--type", "imagefolder"], tmp_path)
    assert added.returncode == 0, log
    assert any(str(root) in line for line in log.splitlines()), log  # the path on one line, not cut at 80 columns
    listed, log = _lmmclf(["datasets", "list"], tmp_path)
    assert listed.returncode == 0, log
    assert any(str(root) in line for line in log.splitlines()), log  # a table cell stays whole
    info, log = _lmmclf(["datasets", "info", "mine"], tmp_path)
    assert info.returncode == 0, log
    bars = [line for line in log.splitlines() if "hash + check images" in line]
    assert bars and all("6/6" in line for line in bars), log  # a progress line is one line, count included


def test_quiet_errors_still_reach_stderr(runner):
    result = runner.invoke(app, ["-q", "embed", "no-such-dataset"])
    assert result.exit_code == 1
    assert "no-such-dataset" in result.stderr and "Error" in result.stderr


@pytest.mark.slow  # builds the demo's tiny models: ~10 s of CPU
def test_quiet_demo_prints_nothing_and_json_demo_only_json(tmp_path):
    out = tmp_path / "demo-out"
    # the first build trains a tokenizer (native progress on stdout) and saves a transformers
    # model ("Writing model shards", a tqdm bar): -q must silence both
    quiet, log = _lmmclf(["-q", "demo", str(out)], tmp_path)
    assert quiet.returncode == 0, log
    assert quiet.stdout == "" and log == "", (quiet.stdout, log)
    as_json, log = _lmmclf(["demo", str(out), "--json"], tmp_path)
    assert as_json.returncode == 0, log
    document = json.loads(as_json.stdout)
    assert as_json.stdout.startswith("{") and Path(document["lmm"]).is_dir()
    plain, log = _lmmclf(["demo", str(out)], tmp_path)
    assert plain.stdout == ""
    # the last message says where both tiny models are, each on one line
    assert str(out / "models" / "tiny-llava") in log and document["clip"] in log, log
    assert document["clip"].startswith("local-dir:")


@pytest.mark.slow
def test_quiet_describe_has_no_library_bars_and_json_stdout_is_json(tmp_path):
    out = tmp_path / "demo-out"
    built, log = _lmmclf(["-q", "demo", str(out)], tmp_path)
    assert built.returncode == 0, log
    config = str(out / "demo.yaml")
    quiet, log = _lmmclf(["-q", "-c", config, "describe", "--limit", "2"], tmp_path)
    assert quiet.returncode == 0, log
    assert "Loading weights" not in log and "it/s" not in log, log
    assert quiet.stdout == ""
    as_json, log = _lmmclf(["-c", config, "describe", "--limit", "3", "--json"], tmp_path)
    assert as_json.returncode == 0, log
    assert json.loads(as_json.stdout)["described"] >= 1


def test_quiet_switches_loaded_libraries_and_restores_them(monkeypatch):
    import logging

    from transformers.utils import logging as hf_logging

    from lmmclf.console import set_quiet

    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    before = hf_logging.get_verbosity()
    set_quiet(True)
    try:
        assert os.environ["TQDM_DISABLE"] == "1" and os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"
        assert not hf_logging.is_progress_bar_enabled()
        assert hf_logging.get_verbosity() == hf_logging.ERROR
        assert logging.getLogger("open_clip").isEnabledFor(logging.WARNING) is False
    finally:
        set_quiet(False)
    assert "TQDM_DISABLE" not in os.environ
    assert hf_logging.get_verbosity() == before
    assert logging.getLogger("open_clip").isEnabledFor(logging.WARNING)


# --- the accuracy plot ----------------------------------------------------------------------

def _summary(method: str, label: str, epochs: int = 0, top: float = 0.8, spread: bool = True, alpha: float | None = None, mean: float | None = None) -> dict:
    import numpy as np

    curves = {}
    if epochs:
        values = top * (1 - np.exp(-np.arange(1, epochs + 1) / (epochs / 8)))
        curves["test_acc_mean"] = values.tolist()
        if spread:
            curves["test_acc_std"] = [0.02] * epochs
    summary = {"method": method, "label": label, "curves": curves, "mean": mean if mean is not None else top}
    if alpha is not None:
        summary["alpha"] = alpha  # fine-tuning artifacts carry alpha
    return summary


PAPER_SUMMARIES = [
    _summary("image", "CLIP (image)", 500, 0.85),
    _summary("text", "CLIP (LMM descriptions)", 500, 0.6),
    _summary("concat", "CLIP (image & LMM descriptions - CONCAT)", 500, 0.88),
    _summary("mean", "CLIP (image & LMM descriptions - MEAN)", 500, 0.85),  # equal to image
    _summary("zeroshot", "CLIP zero-shot (prompt ensemble)", mean=0.25),
    _summary("prototype-zeroshot", "LMM prototypes zero-shot", mean=0.25),  # equal to zeroshot
    _summary("finetune", "Finetuning w/o Reg.", 100, 0.9, spread=False, alpha=0.0),
    _summary("lmm-reg", "LMM-Reg.-CLIP", 100, 0.92, spread=False, alpha=0.01),
]


@pytest.fixture
def figure():
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    from lmmclf.evaluation.plots import build_figure

    fig = build_figure(PAPER_SUMMARIES, "demo: test accuracy")
    fig.canvas.draw()
    yield fig
    plt.close(fig)


def test_plot_has_a_panel_per_training_stage(figure):
    probe, finetune = figure.axes
    assert "probe" in probe.get_title() and "fine-tuning" in finetune.get_title()
    assert probe.get_xlim()[1] == 500 and finetune.get_xlim()[1] == 100
    for axes in figure.axes:
        ticks = [t for t in axes.get_xticks() if axes.get_xlim()[0] <= t <= axes.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks)  # whole epochs only


def test_plot_legend_is_outside_the_data(figure):
    renderer = figure.canvas.get_renderer()
    for axes in figure.axes:
        legend = axes.get_legend()
        assert legend is not None
        assert legend.get_window_extent(renderer).x0 >= axes.get_window_extent(renderer).x1


def test_plot_styles_are_distinct_and_equal_curves_say_so(figure):
    probe, finetune = figure.axes
    styles = {}
    for axes in figure.axes:
        for line in axes.get_lines():
            label = line.get_label().replace("\n", " ")
            styles.setdefault((line.get_color(), line.get_linestyle()), set()).add(label.split(":")[0])
    assert all(len(labels) == 1 for labels in styles.values()), styles  # one (colour, style) per method
    assert len(styles) == 8
    labels = [text.get_text().replace("\n", " ") for text in probe.get_legend().get_texts()]
    assert any(label.startswith("CLIP (image & LMM descriptions - MEAN): same line as CLIP (image)") for label in labels), labels
    assert any("same line as CLIP zero-shot" in label for label in labels), labels
    # the zero-shot baselines no longer share grey dashes
    zero = [line for line in probe.get_lines() if "zero-shot" in line.get_label()]
    assert len({(line.get_color(), line.get_linestyle()) for line in zero}) == 2


def test_plot_draws_a_spread_band_over_seeds(figure):
    from matplotlib.collections import PolyCollection

    probe, finetune = figure.axes
    assert len([c for c in probe.collections if isinstance(c, PolyCollection)]) == 4  # one band per probe method
    assert not [c for c in finetune.collections if isinstance(c, PolyCollection)]  # one seed: no band
    assert "std" in figure.get_suptitle()


def test_plot_with_probes_only_has_one_panel(tmp_path):
    pytest.importorskip("matplotlib")
    from lmmclf.evaluation.plots import plot_curves

    png = plot_curves(PAPER_SUMMARIES[:5], tmp_path / "accuracy.png", "probes")
    assert png is not None and png.read_bytes()[:4] == b"\x89PNG"
    assert plot_curves(PAPER_SUMMARIES[4:6], tmp_path / "none.png", "zero-shot only") is None
