"""eval: statistics, reading the right cached artifacts, outputs, and no torch on the way."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from lmmclf.errors import MissingArtifactError
from lmmclf.evaluation.stats import bootstrap_difference, compare_runs, mcnemar
from lmmclf.results import TrainingRun, write_runs


def test_mcnemar_exact_and_chi_square():
    a = np.array([True] * 6 + [False] * 1 + [True] * 10)
    b = np.array([False] * 6 + [True] * 1 + [True] * 10)
    a_only, b_only, test, statistic, p = mcnemar(a, b)
    assert (a_only, b_only, test, statistic) == (6, 1, "exact binomial", None)
    assert math.isclose(p, 2 * (1 + 7) / 2**7)  # P(X <= 1), X ~ Bin(7, 1/2), two-sided
    big_a = np.array([True] * 40 + [False] * 20)
    big_b = ~big_a
    _, _, test, statistic, p = mcnemar(big_a, big_b)
    assert test.startswith("chi-square") and math.isclose(statistic, (20 - 1) ** 2 / 60)
    assert math.isclose(p, math.erfc(math.sqrt(statistic / 2)))
    assert mcnemar(a, a)[4] == 1.0


def test_bootstrap_interval_brackets_the_difference_and_repeats():
    rng = np.random.default_rng(0)
    a, b = rng.random(500) < 0.8, rng.random(500) < 0.7
    diff, low, high = bootstrap_difference(a, b, resamples=1000)
    assert low < diff < high and math.isclose(diff, a.mean() - b.mean())
    assert bootstrap_difference(a, b, resamples=1000) == (diff, low, high)


def _run(seed, ids, predictions, labels, accs=(0.5,)):
    return TrainingRun(seed, np.ones(len(accs)), np.array(accs), list(ids), np.array(predictions), np.array(labels))


def test_comparison_pairs_images_by_id():
    a = _run(0, ["x", "y", "z"], [0, 1, 1], [0, 1, 2])
    b = _run(0, ["z", "x", "y"], [2, 0, 0], [2, 0, 1])  # other order; b wrong on "y" only
    result = compare_runs("a", a, "b", b)
    assert result.items == 3 and result.a_only == 1 and result.b_only == 1
    assert math.isclose(result.difference, 0.0)


@pytest.fixture
def toy(tmp_path, store):
    from lmmclf.datasets import load_dataset
    from lmmclf.testing.layouts import make_imagefolder
    from lmmclf.testing.paper1 import toy_config
    from lmmclf.testing.tiny_clip import make_tiny_clip

    root = make_imagefolder(tmp_path / "images", class_names=("a", "b"), n_train=2, n_test=2)
    cfg = toy_config(root, make_tiny_clip(tmp_path / "clip")).override("describe", model=str(tmp_path / "no-lmm"))
    cfg = cfg.override("describe", backend="openai", base_url="http://127.0.0.1:9/v1")
    return cfg, load_dataset(cfg, store, show_progress=False)


def _store_probe(cfg, dataset, store, features, accs_by_seed):
    from lmmclf.probe.stage import probe_spec

    test = [item for item in dataset.items if item.split == "test"]
    runs = []
    for seed, accs in accs_by_seed.items():
        predictions = [item.label if i < round(accs[-1] * len(test)) else 1 - item.label for i, item in enumerate(test)]
        runs.append(_run(seed, [i.id for i in test], predictions, [i.label for i in test], accs))
    store.ensure(probe_spec(cfg, dataset, store, features), lambda handle: write_runs(handle, runs))


def test_eval_reads_the_artifacts_of_this_config(toy, store):
    from lmmclf.evaluation.report import evaluate

    cfg, dataset = toy
    _store_probe(cfg, dataset, store, "image", {0: [0.25, 0.5], 1: [0.5, 0.75]})
    _store_probe(cfg, dataset, store, "concat", {0: [0.5, 1.0], 1: [0.75, 1.0]})
    other = cfg.override("probe", epochs=7)
    _store_probe(other, dataset, store, "image", {0: [0.0, 0.0]})  # another config: must not be read
    document, missing = evaluate(cfg, dataset, store, ["image", "concat"], compare=["concat", "image"])
    by_name = {m["method"]: m for m in document["methods"]}
    assert by_name["image"]["mean"] == 0.625 and math.isclose(by_name["image"]["std"], math.sqrt(0.03125))
    assert by_name["concat"]["final_acc"] == [1.0, 1.0] and by_name["concat"]["curves"]["test_acc_mean"] == [0.625, 1.0]
    assert document["comparison"]["difference"] == 0.5 and list(document["comparison"]["seeds"]) == [0, 0]
    document, missing = evaluate(cfg, dataset, store, ["all"])
    assert {m["method"] for m in document["methods"]} == {"image", "concat"}
    assert "lmmclf probe toy --features mean" in [m.command for m in missing]
    with pytest.raises(MissingArtifactError, match="lmmclf probe toy --features text"):
        evaluate(cfg, dataset, store, ["text"])


def test_eval_command_writes_files_and_imports_no_torch(toy, store, tmp_path):
    cfg, dataset = toy
    _store_probe(cfg, dataset, store, "image", {0: [0.25, 0.5]})
    _store_probe(cfg, dataset, store, "concat", {0: [0.5, 1.0]})
    config = tmp_path / "exp.yaml"
    config.write_text(cfg.to_yaml())
    script = (
        "import sys; from typer.testing import CliRunner; from lmmclf.cli.app import app\n"
        f"r = CliRunner().invoke(app, ['-c', {str(config)!r}, 'eval', '-m', 'image,concat', '--compare', 'concat,image', '--json', '--out-dir', {str(tmp_path / 'out')!r}])\n"
        "assert r.exit_code == 0, r.output\n"
        "print(r.stdout)\n"
        "assert 'torch' not in sys.modules, 'eval imported torch'\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert [m["method"] for m in document["methods"]] == ["image", "concat"]
    assert document["comparison"]["a_only"] == 2 and document["comparison"]["b_only"] == 0
    for name in ("results.json", "results.csv", "results.md", "accuracy.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    assert "CLIP (image & LMM descriptions - CONCAT) | 100.00" in (tmp_path / "out" / "results.md").read_text()


def test_fine_tuning_hints_name_the_alpha_each_row_needs():
    from lmmclf.config import ExperimentConfig
    from lmmclf.evaluation.methods import METHODS, load_extensions

    load_extensions()
    baseline_config = ExperimentConfig().override("finetune", alpha=0.0)
    assert METHODS["finetune"].command(baseline_config, "bar") == "lmmclf finetune bar --alpha 0"
    assert METHODS["lmm-reg"].command(baseline_config, "bar") == "lmmclf finetune bar --alpha 0.01"
    assert METHODS["lmm-reg"].command(ExperimentConfig().override("finetune", alpha=0.05), "bar") == "lmmclf finetune bar --alpha 0.05"


def test_compute_missing_makes_the_image_embeddings_a_text_probe_needs(toy, store):
    from lmmclf.describe import describe_spec
    from lmmclf.evaluation.report import evaluate
    from lmmclf.testing.paper1 import write_toy_descriptions

    cfg, dataset = toy
    cfg = cfg.override("probe", epochs=2)
    write_toy_descriptions(store, dataset, spec=describe_spec(cfg, dataset, store))
    document, missing = evaluate(cfg, dataset, store, ["concat"], compute_missing=True)
    assert [m["method"] for m in document["methods"]] == ["concat"] and not missing
