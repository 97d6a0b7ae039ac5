"""An image folder's ``val/`` is read as the release's validation split, through the real CLI.

It joins train (as CoOp's val does), ``datasets info`` counts it, the fingerprint covers it, and
``probe --val-fraction`` > 0 holds out exactly those images.
"""

from __future__ import annotations

import json
import shutil

from lmmclf.cli.app import app
from lmmclf.testing.layouts import make_imagefolder


def _info(runner, name: str) -> dict:
    result = runner.invoke(app, ["datasets", "info", name, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_val_folder_is_counted_as_the_releases_val_split(tmp_path, runner):
    root = make_imagefolder(tmp_path / "mine", class_names=("cat", "dog"), n_train=2, n_test=1, n_val=3)
    added = runner.invoke(app, ["datasets", "add", "mine", "--root", str(root)])  # type inferred: imagefolder
    assert added.exit_code == 0, added.output
    info = _info(runner, "mine")
    assert info["counts"] == {"train": 10, "test": 2, "val": 6}  # train = train/ + val/
    assert [(row["class"], row["train"], row.get("val"), row["test"]) for row in info["per_class"]] == [
        ("cat", 5, 3, 1), ("dog", 5, 3, 1)]
    text = runner.invoke(app, ["datasets", "info", "mine", "--classes"])
    assert "10 train (of which 6 are the release's val split), 2 test" in " ".join(text.stderr.split())
    # moving a val image into train/ changes the fingerprint: split membership is content
    moved = root / "val" / "cat" / "cat_000.png"
    shutil.move(moved, root / "train" / "cat" / "cat_val_000.png")
    again = _info(runner, "mine")
    assert again["counts"] == {"train": 10, "test": 2, "val": 5} and again["fingerprint"] != info["fingerprint"]


def test_a_class_only_in_val_is_a_class(tmp_path, runner):
    root = make_imagefolder(tmp_path / "mine", class_names=("cat",), n_train=1, n_test=1)
    make_imagefolder(tmp_path / "extra", class_names=("dog",), n_train=0, n_test=0, n_val=1)
    shutil.move(tmp_path / "extra" / "val", root / "val")
    assert runner.invoke(app, ["datasets", "add", "mine", "--root", str(root), "--type", "imagefolder"]).exit_code == 0
    info = _info(runner, "mine")
    assert info["class_names"] == ["cat", "dog"] and info["counts"] == {"train": 2, "test": 1, "val": 1}


def test_without_val_folder_nothing_changes(tmp_path, runner):
    root = make_imagefolder(tmp_path / "mine", class_names=("cat", "dog"), n_train=2, n_test=1)
    assert runner.invoke(app, ["datasets", "add", "mine", "--root", str(root)]).exit_code == 0
    assert _info(runner, "mine")["counts"] == {"train": 4, "test": 2}


def test_probe_val_fraction_holds_out_the_val_folder(tmp_path, runner, tiny_clip):
    """embed covers val/ (it is train), and the probe's hold-out is exactly val/, not a random draw."""
    from lmmclf.testing.paper1 import toy_config

    root = make_imagefolder(tmp_path / "mine", class_names=("a", "b"), n_train=3, n_test=2, n_val=1)
    config = tmp_path / "exp.yaml"
    config.write_text(toy_config(root, tiny_clip, name="mine").override("probe", epochs=2, seeds=[0], device="cpu").to_yaml())
    embedded = runner.invoke(app, ["-c", str(config), "embed", "--images-only", "--json"])
    assert embedded.exit_code == 0, embedded.output
    assert json.loads(embedded.stdout)["images"] == 12  # train 6 + val 2 + test 4
    counts = {}
    for fraction in ("0.5", "0"):
        probe = runner.invoke(app, ["-c", str(config), "probe", "--features", "image", "--val-fraction", fraction])
        assert probe.exit_code == 0, probe.output
        result = runner.invoke(app, ["-c", str(config), "--set", f"probe.val_fraction={fraction}", "eval", "--method", "image",
                                     "--json", "--no-plot", "--out-dir", str(tmp_path / "out")])
        assert result.exit_code == 0, result.output
        row = json.loads(result.stdout)["methods"][0]
        counts[fraction] = (row["train"], row["val"], row["test"])
    assert counts["0.5"] == (6, 2, 4)  # val/ is the hold-out whatever the fraction (a 50% draw would be 4)
    assert counts["0"] == (8, 0, 4)  # the papers' protocol: train on train + val
