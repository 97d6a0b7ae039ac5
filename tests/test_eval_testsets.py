"""Rows measured on different test images are marked in every output, and --compare says it pairs
only the common images: through the real command line, on real (tiny) artifacts.

The probes test on the images describe covered (here ``describe.limit`` leaves out the test
images of the last class); fine-tuning tests on the whole test split.
"""

from __future__ import annotations

import csv
import io
import json

import pytest

from lmmclf.cli.app import app
from lmmclf.evaluation.testsets import cell, differ, measured_on, note
from lmmclf.results import TrainingRun


@pytest.fixture
def mismatched(tmp_path, tiny_clip, store, runner):
    """probe image (4 of the 6 test images) and finetune (all 6), made by the real commands."""
    from lmmclf.datasets import load_dataset
    from lmmclf.describe import describe_spec
    from lmmclf.embed.specs import covered_items
    from lmmclf.testing.describe_artifact import write_describe_artifact
    from lmmclf.testing.layouts import make_imagefolder
    from lmmclf.testing.paper1 import class_descriptions, toy_config

    root = make_imagefolder(tmp_path / "images", class_names=("a", "b", "c"), n_train=3, n_test=2)
    (root / "train").rename(root / "Train")  # "Train/..." ids sort before "test/...": a limit keeps every class's training images
    cfg = toy_config(root, tiny_clip).override("describe", limit=13).override("probe", epochs=2, seeds=[0], device="cpu")
    cfg = cfg.override("finetune", epochs=1, batch_size=8, device="cpu", num_workers=0, trunk_dtype="float32", seeds=[0])
    dataset = load_dataset(cfg, store, show_progress=False)
    items = covered_items(cfg, dataset)  # the 9 training images and the test images of a and b
    texts = [class_descriptions(dataset.class_names, item.label, i) for i, item in enumerate(items)]
    write_describe_artifact(store, describe_spec(cfg, dataset, store), [i.id for i in items], texts, k=3)
    config = tmp_path / "exp.yaml"
    config.write_text(cfg.to_yaml())
    for command in (["embed"], ["prototypes"], ["probe", "--features", "image"], ["finetune", "--alpha", "0"]):
        result = runner.invoke(app, ["-c", str(config), *command])
        assert result.exit_code == 0, f"{command}: {result.output}"
    return str(config)


def _eval(runner, config, out, *extra):
    return runner.invoke(app, ["-c", config, "eval", "--method", "image,finetune", "--no-plot", "--out-dir", str(out), *extra])


def test_rows_on_different_test_sets_are_marked_in_every_output(mismatched, runner, tmp_path):
    out = tmp_path / "out"
    result = _eval(runner, mismatched, out, "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    rows = {row["method"]: row for row in document["methods"]}
    assert (rows["image"]["test_items"], rows["image"]["whole_test_split"]) == (4, False)
    assert (rows["finetune"]["test_items"], rows["finetune"]["whole_test_split"]) == (6, True)
    assert document["test_split_items"] == 6 and document["same_test_set"] is False
    assert rows["image"]["test_set"] != rows["finetune"]["test_set"]
    markdown = (out / "results.md").read_text()
    assert "| Test images |" in markdown and "| 4 of 6 |" in markdown and "| 6 |" in markdown
    assert "measured on different test images" in markdown
    table = list(csv.DictReader(io.StringIO((out / "results.csv").read_text())))
    assert {(r["method"], r["test_items"], r["test_split_items"]) for r in table} == {("image", "4", "6"), ("finetune", "6", "6")}
    assert len({r["test_set"] for r in table}) == 2
    console = _eval(runner, mismatched, out)
    assert console.exit_code == 0, console.output
    text = " ".join(console.stderr.split())
    assert "4 of 6" in text and "measured on different test images" in text
    alone = json.loads(runner.invoke(app, ["-c", mismatched, "eval", "--method", "image", "--no-plot", "--json",
                                            "--out-dir", str(out)]).stdout)
    assert alone["same_test_set"] is True and "measured on different" not in (out / "results.md").read_text()


def test_compare_on_different_test_sets_pairs_only_the_common_images_and_says_so(mismatched, runner, tmp_path):
    out = tmp_path / "out"
    result = _eval(runner, mismatched, out, "--compare", "image,finetune", "--json")
    assert result.exit_code == 0, result.output
    comparison = json.loads(result.stdout)["comparison"]
    assert (comparison["items"], comparison["items_a"], comparison["items_b"], comparison["restricted"]) == (4, 4, 6, True)
    assert comparison["a_only"] + comparison["b_only"] <= 4
    sentence = "image vs finetune on only the 4 test images both were tested on (image was tested on 4, finetune on 6; seeds 0/0)"
    assert sentence in " ".join((out / "results.md").read_text().split())
    console = _eval(runner, mismatched, out, "--compare", "image,finetune")
    assert console.exit_code == 0 and sentence in " ".join(console.stderr.split())


def _run(ids):
    import numpy as np

    return TrainingRun(0, np.ones(1), np.array([0.5]), list(ids), np.zeros(len(ids), dtype=np.int64), np.zeros(len(ids), dtype=np.int64))


def test_same_images_in_another_order_are_the_same_test_set():
    split = frozenset({"x", "y", "z"})
    rows = [measured_on([_run(["x", "y", "z"])], split), measured_on([_run(["z", "x", "y"])], split)]
    assert not differ(rows) and note(rows) is None and cell(rows[0]) == "3"
    part = measured_on([_run(["y", "x"])], split)
    assert differ(rows + [part]) and cell(part) == "2 of 3" and part["whole_test_split"] is False

