"""CoOp's layouts of the eleven CLIP benchmarks, through the real CLI: register, info, check, describe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmmclf.cli.app import app
from lmmclf.config import ExperimentConfig
from lmmclf.datasets import load_dataset
from lmmclf.testing.coop import BUILDERS, make_coop, make_ucf101, write_split
from lmmclf.testing.layouts import make_imagefolder
from lmmclf.testing.openai_server import FakeOpenAIServer


@pytest.fixture(scope="module")
def coop_data(tmp_path_factory):
    """One CoOp ``$DATA`` with all eleven datasets (built once: the tests only read it)."""
    data = tmp_path_factory.mktemp("coop") / "DATA"
    return data, make_coop(data)


def _info(runner, name: str) -> dict:
    result = runner.invoke(app, ["datasets", "info", name, "--json"])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def _ucf(tmp_path) -> Path:
    return make_ucf101(tmp_path / "DATA").folder


def _error(result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.stderr
    return " ".join(result.stderr.split())


def test_add_coop_registers_all_eleven_with_counts_and_classes(runner, coop_data):
    data, fixtures = coop_data
    result = runner.invoke(app, ["datasets", "add-coop", str(data)])
    assert result.exit_code == 0, result.stderr
    assert "Found 11 CoOp dataset(s)" in " ".join(result.stderr.split())
    for name, fixture in fixtures.items():
        info = _info(runner, name)
        assert info["class_names"] == fixture.class_names, name
        expected = {"train": fixture.train + fixture.val, "test": fixture.test}
        if fixture.val:
            expected["val"] = fixture.val
        assert info["counts"] == expected, name
        assert info["skipped"] == 0 and info["options"]["layout"] == "coop", name


def test_ucf101_coop_layout_papers_counts_and_readable_names(runner, tmp_path, store):
    folder = _ucf(tmp_path)
    assert runner.invoke(app, ["datasets", "add", "ucf101", "--root", str(folder)]).exit_code == 0
    info = _info(runner, "ucf101")
    assert info["class_names"] == ["Apply Eye Makeup", "Handstand Pushups", "Yo Yo"]
    assert info["counts"] == {"train": 15, "test": 6, "val": 3}  # train = CoOp train + val
    assert [row["val"] for row in info["per_class"]] == [1, 1, 1]
    text = runner.invoke(app, ["datasets", "info", "ucf101", "--classes"])
    assert "15 train (of which 3 are the release's val split), 6 test" in " ".join(text.stderr.split())
    index = load_dataset(ExperimentConfig().override("dataset", name="ucf101"), store, show_progress=False)
    assert "Handstand_Pushups/v_HandStandPushups_g08_c01" in index.val_ids  # the release's spelling kept
    assert all(index.items[row].split == "train" for row in index.val_rows([i.id for i in index.items]))
    # moving an image from val to train changes the fingerprint (split membership is content)
    split_file = folder / "split_zhou_UCF101.json"
    split = json.loads(split_file.read_text())
    write_split(split_file, split["train"] + split["val"][:1], split["val"][1:], split["test"])
    assert _info(runner, "ucf101")["fingerprint"] != info["fingerprint"]
    result = runner.invoke(app, ["datasets", "info", "ucf101", "--split", "2"])
    assert "split 1 only" in _error(result)


def test_ucf101_detected_in_coop_data_root(runner, tmp_path):
    _ucf(tmp_path)
    assert runner.invoke(app, ["datasets", "add", "ucf101", "--root", str(tmp_path / "DATA")]).exit_code == 0
    assert _info(runner, "ucf101")["counts"]["test"] == 6


def test_describe_coop_ucf101_openai_end_to_end(runner, tmp_path):
    folder = _ucf(tmp_path)
    assert runner.invoke(app, ["datasets", "add", "ucf101", "--root", str(folder)]).exit_code == 0
    with FakeOpenAIServer() as server:
        result = runner.invoke(app, ["describe", "ucf101", "--backend", "openai", "--base-url", server.url, "--json"])
        assert result.exit_code == 0, result.output
        summary = json.loads(result.stdout)
        assert summary["described"] == 21 and summary["failed"] == 0 and len(server.requests) == 21


def test_bad_split_files_are_one_sentence_naming_the_file(runner, tmp_path):
    folder = _ucf(tmp_path)
    split_file = folder / "split_zhou_UCF101.json"
    good = json.loads(split_file.read_text())
    assert runner.invoke(app, ["datasets", "add", "ucf101", "--root", str(folder)]).exit_code == 0

    split_file.write_text(split_file.read_text()[:-20])  # truncated: malformed JSON
    assert f"CoOp split file {split_file} cannot be read as JSON" in _error(runner.invoke(app, ["datasets", "info", "ucf101"]))

    split_file.write_text(json.dumps({"train": good["train"], "test": good["test"]}))
    assert "must be an object with train, val and test lists" in _error(runner.invoke(app, ["datasets", "info", "ucf101"]))

    wrong = [list(e) for e in good["train"]]
    wrong[4][1] = 0  # a Handstand_Pushups entry labelled as Apply_Eye_Makeup
    write_split(split_file, wrong, good["val"], good["test"])
    message = _error(runner.invoke(app, ["datasets", "info", "ucf101"]))
    assert f"CoOp split file {split_file}: train[4] gives label 0 the class 'Handstand_Pushups'" in message


def test_missing_or_escaping_entries_are_skipped_with_their_reason(runner, tmp_path):
    folder = _ucf(tmp_path)
    split_file = folder / "split_zhou_UCF101.json"
    good = json.loads(split_file.read_text())
    (folder / "UCF-101-midframes" / good["test"][0][0]).unlink()
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(b"x")
    test = good["test"] + [["../../outside.jpg", 2, "Yo_Yo"], ["Yo_Yo/v_YoYo_g01_c01.jpg", "2", "Yo_Yo"]]
    write_split(split_file, good["train"], good["val"], test)
    assert runner.invoke(app, ["datasets", "add", "ucf101", "--root", str(folder)]).exit_code == 0
    info = _info(runner, "ucf101")
    assert info["counts"] == {"train": 15, "test": 5, "val": 3}
    reasons = sorted(s["reason"] for s in info["skipped_files"])
    assert reasons[0].startswith("is not a [path, label, classname] entry")
    assert "listed in split_zhou_UCF101.json test[0] but not found" in reasons
    assert any("test[6] but lies outside the dataset root" in r for r in reasons)
    assert runner.invoke(app, ["datasets", "check", "ucf101"]).exit_code == 1


def test_aircraft_unknown_variant_names_file_and_line(runner, tmp_path):
    folder = BUILDERS["fgvc_aircraft"](tmp_path).folder
    listing = folder / "images_variant_test.txt"
    listing.write_text(listing.read_text() + "1099999 Boeing 999\n")
    assert runner.invoke(app, ["datasets", "add", "air", "--root", str(folder), "--type", "fgvc_aircraft"]).exit_code == 0
    assert f"{listing} line 4: variant 'Boeing 999' is not in variants.txt" in _error(runner.invoke(app, ["datasets", "info", "air"]))


def test_missing_layout_names_the_expected_files(runner, tmp_path):
    assert runner.invoke(app, ["datasets", "add", "dtd", "--root", str(tmp_path)]).exit_code == 0
    message = _error(runner.invoke(app, ["datasets", "info", "dtd"]))
    assert "CoOp's DTD layout not found: expected images/ and split_zhou_DescribableTextures.json" in message


def test_add_infers_the_type_and_says_so(runner, coop_data, tmp_path):
    data, fixtures = coop_data
    result = runner.invoke(app, ["datasets", "add", "textures", "--root", str(fixtures["dtd"].folder)])
    assert result.exit_code == 0, result.stderr
    assert "(dtd (inferred: CoOp's DTD layout (split_zhou_DescribableTextures.json)))" in " ".join(result.stderr.split())
    assert _info(runner, "textures")["class_names"] == ["banded", "blotchy", "braided"]

    mine = make_imagefolder(tmp_path / "mine", class_names=("a", "b"), n_train=1, n_test=1)
    result = runner.invoke(app, ["datasets", "add", "mine", "--root", str(mine)])
    assert result.exit_code == 0 and "imagefolder (inferred" in result.stderr

    assert "add-coop" in _error(runner.invoke(app, ["datasets", "add", "everything", "--root", str(data)]))

    flat = tmp_path / "flat"
    for image in list((mine / "train" / "a").iterdir()):
        flat.mkdir(exist_ok=True)
        image.rename(flat / image.name)
    assert "holds images directly" in _error(runner.invoke(app, ["datasets", "add", "loose", "--root", str(flat)]))
    assert "holds images directly" in _error(
        runner.invoke(app, ["datasets", "add", "loose", "--root", str(flat), "--type", "imagefolder"]))
    assert "No CoOp dataset found" in _error(runner.invoke(app, ["datasets", "add-coop", str(flat)]))


def test_probe_val_fraction_holds_out_the_releases_own_val(tmp_path, store):
    """With a CoOp val split, probe.val_fraction > 0 selects epochs on it, not on a random draw."""
    import numpy as np

    from lmmclf.features import FeatureSet
    from lmmclf.probe.stage import _train_runs

    _ucf(tmp_path)
    cfg = ExperimentConfig().override("dataset", name="ucf101", root=str(tmp_path / "DATA"))
    index = load_dataset(cfg, store, show_progress=False)
    rng = np.random.default_rng(0)
    data = FeatureSet(
        ids=[i.id for i in index.items], features=rng.normal(size=(len(index.items), 4)).astype(np.float32),
        labels=np.array([i.label for i in index.items]), splits=np.array([i.split for i in index.items]),
        class_names=index.class_names,
    )
    cfg = cfg.override("probe", epochs=2, val_fraction=0.5, seeds=[0], device="cpu")
    _, info = _train_runs(cfg, data, lambda n: None, index)
    assert (info["train"], info["val"], info["test"]) == (12, 3, 6)  # CoOp's 12 / 3 / 6, not a 50% draw
    _, info = _train_runs(cfg.override("probe", val_fraction=0.0), data, lambda n: None, index)
    assert (info["train"], info["val"]) == (15, 0)  # the papers' protocol: train on train + val
