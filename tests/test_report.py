"""``lmmclf report`` through the real command line: report.json equals eval, leakage, partial caches.

The experiment is real artifacts made by the stages' own code (:mod:`lmmclf.testing.report_experiment`):
an image folder, descriptions chosen by the test (so it knows which name their class), a tiny
CLIP's embeddings and trained probes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from lmmclf.cli.app import app
from lmmclf.report.leakage import count_mentions, leakage, name_pattern, words
from lmmclf.testing.report_experiment import make_report_experiment


def _report(runner, config, out, *extra, options=()):
    result = runner.invoke(app, ["-c", str(config), *options, "report", "--out", str(out), *extra])
    assert result.exit_code == 0, result.output
    index = Path(result.stdout.strip().splitlines()[-1])
    assert index == (out / "index.html").resolve() and index.is_file()
    return json.loads((out / "report.json").read_text()), result


def test_report_json_has_the_numbers_of_eval(tmp_path, tiny_clip, store, runner):
    experiment = make_report_experiment(tmp_path, tiny_clip, store, failed=[1])
    document, result = _report(runner, experiment.config, tmp_path / "site")
    evaluated = runner.invoke(app, ["-c", str(experiment.config), "eval", "--method", "image,concat", "--no-plot", "--json",
                                    "--out-dir", str(tmp_path / "results")])
    assert evaluated.exit_code == 0, evaluated.output
    rows = {row["method"]: row for row in json.loads(evaluated.stdout)["methods"]}
    assert set(document["methods"]) == {"image", "concat"}
    for name, row in rows.items():
        entry = document["methods"][name]
        assert entry["accuracy"] == row["mean"] and entry["seeds"] == row["seeds"] and entry["test_items"] == row["test_items"]
        confusion = entry["confusion"]
        assert confusion["labels"] == document["classes"]
        matrix = confusion["matrix"]
        assert sum(map(sum, matrix)) == row["test_items"]
        assert sum(matrix[i][i] for i in range(len(matrix))) / row["test_items"] == pytest.approx(row["mean"])
        for i, name_ in enumerate(confusion["labels"]):  # rows are true classes: each holds that class's test images
            assert sum(matrix[i]) == 2 and entry["per_class"][name_] == matrix[i][i] / 2
    describe = document["describe"]
    assert (describe["images"], describe["ok"], describe["failed"]) == (20, 19, 1)
    assert describe["shapes"] == {"list": 19, "prose": 0, "single": 0, "cut": 0}
    assert describe["failures"][0]["error"] == "refused: I cannot describe people"
    assert describe["descriptions_per_image"] == {"0": 1, "1": 0, "2": 0, "3": 19}
    assert set(document["leakage"]) >= {"overall", "per_class", "name_match_accuracy"}
    # the methods not trained are named with the commands that make them, carrying the global options
    missing = {entry["section"]: entry["commands"] for entry in document["missing"]}
    assert missing["text"] == [f"lmmclf -c {experiment.config} probe toy --features text"]
    page = (tmp_path / "site" / "index.html").read_text()
    assert f"{100 * rows['concat']['mean']:.2f}" in page and "report.js" in page and "http" not in page
    thumbs = list((tmp_path / "site" / "thumbs").iterdir())
    assert len(thumbs) == 20 and all(max(Image.open(path).size) <= 256 for path in thumbs)
    assert "items.js" in {p.name for p in (tmp_path / "site" / "data").iterdir()}


def test_class_names_are_matched_as_whole_words_with_a_plural():
    assert words("ApplyEyeMakeup") == ["apply", "eye", "makeup"] and words("Jumping_Jack") == ["jumping", "jack"]
    eye = name_pattern("ApplyEyeMakeup")
    assert count_mentions(eye, words("she is about to Apply Eye Makeup")) == 1
    assert count_mentions(eye, words("apply-eye-makeup, then apply eye makeups")) == 2
    assert count_mentions(eye, words("applyeyemakeup")) == 0 and count_mentions(eye, words("apply eye makeupbag")) == 0
    assert count_mentions(name_pattern("Jumping_Jack"), words("two Jumping Jacks")) == 1
    assert count_mentions(name_pattern("yo-yo"), words("a yo yo on a string")) == 1
    assert count_mentions(name_pattern("Basketball"), words("basketballer, basket ball")) == 0
    assert count_mentions(name_pattern("Basketball"), words("Basketballs!")) == 1


def test_leakage_counts_described_images_and_the_name_match_classifier():
    classes = ["ApplyEyeMakeup", "Basketball"]
    items = [("a", 0, "test"), ("b", 0, "train"), ("c", 1, "test"), ("d", 1, "test"), ("e", 1, "test")]
    texts = {
        "a": ["someone will apply eye makeup"],                      # names its class
        "b": ["a face close up"],                                   # does not
        "c": ["a basketball, and another basketball", "apply eye makeup"],  # names both: its own twice
        "d": ["apply eye makeup on a court"],                       # names the other class only
        "e": [],                                                    # failed: not described, wrong for name-match
    }
    result = leakage(classes, items, texts)
    assert result.per_class == {"ApplyEyeMakeup": 0.5, "Basketball": 0.5}
    assert result.overall == 2 / 4 and result.described == {"ApplyEyeMakeup": 2, "Basketball": 2}
    assert result.guessed == {"a": 0, "b": -1, "c": 1, "d": 0, "e": -1}
    assert result.name_match_test_images == 4 and result.name_match_accuracy == 2 / 4


@pytest.mark.parametrize("naming", [True, False])
def test_leakage_in_report_json_on_descriptions_that_name_or_not_their_class(tmp_path, tiny_clip, store, runner, naming):
    experiment = make_report_experiment(tmp_path, tiny_clip, store, names=lambda index, item: naming, features=())
    document, _ = _report(runner, experiment.config, tmp_path / "site")
    expected = 1.0 if naming else 0.0
    assert document["leakage"]["overall"] == expected
    assert document["leakage"]["per_class"] == {name: expected for name in document["classes"]}
    assert document["leakage"]["name_match_accuracy"] == expected


def test_half_naming_descriptions_give_their_fraction_per_class(tmp_path, tiny_clip, store, runner):
    # every class's first image (of 5) names it: 1/5 per class; the name-match classifier gets those test images right
    experiment = make_report_experiment(tmp_path, tiny_clip, store, names=lambda index, item: item.id.endswith("_000.png") and item.split == "test",
                                        features=())
    document, _ = _report(runner, experiment.config, tmp_path / "site")
    assert document["leakage"]["per_class"] == {name: 0.2 for name in document["classes"]}
    assert document["leakage"]["overall"] == pytest.approx(0.2)
    assert document["leakage"]["name_match_accuracy"] == 0.5  # 4 of the 8 test images


def test_no_trained_method_keeps_describe_gallery_and_leakage_and_names_the_probe_commands(tmp_path, tiny_clip, store, runner):
    experiment = make_report_experiment(tmp_path, tiny_clip, store)
    # another probe setting: nothing is trained with it, and every hint carries the --set
    document, result = _report(runner, experiment.config, tmp_path / "site", options=("--set", "probe.lr=0.5"))
    assert document["methods"] == {} and document["describe"]["images"] == 20 and document["leakage"]["overall"] is not None
    missing = {entry["section"]: entry["commands"] for entry in document["missing"]}
    assert missing["concat"] == [f"lmmclf -c {experiment.config} --set probe.lr=0.5 probe toy --features concat"]
    assert "describe" not in missing and "leakage" not in missing
    page = (tmp_path / "site" / "index.html").read_text()
    assert "--set probe.lr=0.5 probe toy --features concat" in page
    assert "Not in the report" in result.stderr


def test_no_descriptions_keeps_the_methods_and_names_describe(tmp_path, tiny_clip, store, runner):
    experiment = make_report_experiment(tmp_path, tiny_clip, store, features=("image",), describe=False)
    document, _ = _report(runner, experiment.config, tmp_path / "site", "--method", "image")
    assert set(document["methods"]) == {"image"} and document["describe"] is None and document["leakage"] is None
    missing = {entry["section"]: entry["commands"] for entry in document["missing"]}
    assert missing["describe"] == missing["leakage"] == [f"lmmclf -c {experiment.config} describe toy"]
    assert set(missing) == {"describe", "leakage"}
    page = (tmp_path / "site" / "index.html").read_text()
    assert f"lmmclf -c {experiment.config} describe toy" in page and "id='accuracy'" in page


def test_bad_method_and_bad_folder_are_one_sentence(tmp_path, tiny_clip, store, runner):
    experiment = make_report_experiment(tmp_path, tiny_clip, store, features=())
    unknown = runner.invoke(app, ["-c", str(experiment.config), "report", "--method", "nope", "--out", str(tmp_path / "x")])
    assert unknown.exit_code == 1 and "Unknown method 'nope'" in unknown.stderr and "Traceback" not in unknown.output
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    bad = runner.invoke(app, ["-c", str(experiment.config), "report", "--out", str(blocker / "site")])
    assert bad.exit_code == 1 and f"{blocker}" in bad.stderr and "--out" in bad.stderr


def test_an_unreadable_image_is_its_own_failure(tmp_path):
    from lmmclf.datasets.base import Item
    from lmmclf.report.thumbnails import make_thumbnails

    good, bad = tmp_path / "good.png", tmp_path / "bad.png"
    Image.new("RGB", (640, 300), (10, 20, 30)).save(good)
    bad.write_bytes(b"not an image")
    made = make_thumbnails([Item("bad", bad, 0, "test"), Item("good", good, 0, "test")], tmp_path / "site")
    assert set(made.paths) == {"good"} and "bad" in made.failed and str(bad) in made.failed["bad"]
    assert max(Image.open(tmp_path / "site" / made.paths["good"]).size) == 160


def test_many_classes_show_the_most_confused_in_the_heatmap_and_pairs_come_most_frequent_first():
    import numpy as np

    from lmmclf.report.gather import MethodData
    from lmmclf.report.summary import confused_pairs, heatmap_classes
    from lmmclf.results import TrainingRun

    labels = np.repeat(np.arange(30), 2)
    predictions = labels.copy()
    predictions[[0, 1]] = 7          # both images of class 0 predicted 7
    predictions[10] = 29             # one image of class 5 predicted 29
    ids = [f"i{n}" for n in range(60)]
    method = MethodData("m", "M", {}, [TrainingRun(0, np.ones(1), np.ones(1), ids, predictions, labels)])
    matrix = np.zeros((30, 30), dtype=np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    shown = heatmap_classes(matrix, limit=25)
    assert len(shown) == 25 and {0, 5, 7, 29} <= set(shown) and shown == sorted(shown)
    pairs = confused_pairs(method, matrix)
    assert [(p["true"], p["predicted"], p["count"], p["examples"]) for p in pairs] == [(0, 7, 2, ["i0", "i1"]), (5, 29, 1, ["i10"])]
