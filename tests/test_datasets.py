"""Dataset adapters on their official layouts: counts, labels, class order, quirks, errors."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from lmmclf.config import ExperimentConfig
from lmmclf.datasets import DatasetError, load_dataset
from lmmclf.testing.images import write_corrupt_image
from lmmclf.testing.layouts import make_bar, make_era, make_imagefolder, make_ucf101, ucf_test_groups


def cfg_for(name: str, root: Path | None = None, **dataset) -> ExperimentConfig:
    return ExperimentConfig().override("dataset", name=name, root=str(root) if root else None, **dataset)


# -- imagefolder and csv ---------------------------------------------------------------------
def test_imagefolder_counts_labels_and_order(tmp_path, store):
    root = make_imagefolder(tmp_path / "data", class_names=("zebra", "ant", "mole"), n_train=3, n_test=2)
    index = load_dataset(cfg_for("mine", root, type="imagefolder"), store)
    assert index.class_names == ["ant", "mole", "zebra"]  # sorted folder names
    assert index.counts() == {"train": 9, "test": 6}
    for item in index.items:
        assert item.id.split("/")[1] == index.class_names[item.label]
        assert item.id.startswith(item.split + "/")
    assert [i.label for i in index.items] == sorted(i.label for i in index.items)  # class order first
    assert index.items == sorted(index.items, key=lambda i: (i.label, i.id))


def test_csv_manifest(tmp_path, store):
    root = make_imagefolder(tmp_path / "imgs", class_names=("cat", "dog"), n_train=2, n_test=1)
    rows = ["path,label,split"]
    for path in sorted(root.rglob("*.png")):
        split, label = path.relative_to(root).parts[:2]
        rows.append(f"imgs/{path.relative_to(root).as_posix()},{label},{split}")
    rows.append("imgs/missing.png,dog,train")
    manifest = tmp_path / "list.csv"
    manifest.write_text("\n".join(rows) + "\n")
    index = load_dataset(cfg_for("pets", manifest, type="csv"), store)
    assert index.class_names == ["cat", "dog"]
    assert index.counts() == {"train": 4, "test": 2}
    assert [s.reason for s in index.skipped] == ["listed in list.csv line 8 but missing"]


def test_csv_one_video_under_two_ids(tmp_path, store):
    """Two manifest rows may name the same file; with a video, each row must still become its own item."""
    era = make_era(tmp_path / "ERA", classes=("Baseball", "Boating"), n_train=1, n_test=1)
    videos = sorted(era.rglob("*.mp4"))
    rows = ["id,path,label,split", f"first,{videos[0]},a,train", f"again,{videos[0]},a,test", f"other,{videos[1]},b,train"]
    manifest = tmp_path / "list.csv"
    manifest.write_text("\n".join(rows) + "\n")
    index = load_dataset(cfg_for("vids", manifest, type="csv", decode_workers=1), store)
    assert sorted(item.id for item in index.items) == ["again", "first", "other"]
    assert index.counts() == {"train": 2, "test": 1}


def test_csv_errors_name_the_file(tmp_path, store):
    manifest = tmp_path / "bad.csv"
    manifest.write_text("path,label\nx.png,a\n")
    with pytest.raises(DatasetError, match=r"bad\.csv lacks the column\(s\) split"):
        load_dataset(cfg_for("x", manifest, type="csv"), store)
    make_imagefolder(tmp_path / "i", class_names=("a",), n_train=1, n_test=1)
    manifest.write_text("path,label,split\ni/train/a/a_000.png,a,validation\n")
    with pytest.raises(DatasetError, match=r"bad\.csv line 2: split must be train or test"):
        load_dataset(cfg_for("x", manifest, type="csv"), store)


# -- UCF-101 ----------------------------------------------------------------------------------
@pytest.fixture
def ucf(tmp_path):
    return make_ucf101(tmp_path / "UCF101", groups=4, clips=2)


@pytest.mark.parametrize("split", [1, 2, 3])
def test_ucf101_official_splits(ucf, store, split):
    index = load_dataset(cfg_for("ucf101", ucf, split=split, decode_workers=1), store)
    tested = ucf_test_groups(split, 4)
    assert index.class_names == ["ApplyEyeMakeup", "HandstandPushups", "YoYo"]  # classInd order
    assert index.counts() == {"train": 3 * 2 * (4 - len(tested)), "test": 3 * 2 * len(tested)}
    assert index.options == {"split": split, "frame_format": "png"}
    for item in index.items:
        folder, name = item.id.split("/")
        assert index.class_names[item.label] == folder
        group = int(name.split("_g")[1][:2])
        assert (item.split == "test") == (group in tested)
    # the release's quirk: folder HandstandPushups, files v_HandStandPushups_*
    assert any(i.id.startswith("HandstandPushups/v_HandStandPushups_g01") for i in index.items)


def test_ucf101_crlf_and_case_differences(ucf, store):
    lists = ucf / "ucfTrainTestlist"
    assert b"\r\n" in (lists / "trainlist01.txt").read_bytes()
    test_list = lists / "testlist01.txt"
    text = test_list.read_text().replace("YoYo/v_YoYo_g01_c01.avi", "YoYo/v_yoyo_G01_C01.AVI")
    test_list.write_bytes(text.encode())
    index = load_dataset(cfg_for("ucf101", ucf, decode_workers=1), store)
    assert not index.skipped
    assert index.counts()["test"] == 12


def test_ucf101_root_variants_and_extracted_frames(tmp_path, store, ucf):
    by_release = load_dataset(cfg_for("ucf101", ucf, decode_workers=1), store)
    by_videos = load_dataset(cfg_for("ucf101", ucf / "UCF-101", decode_workers=1), store)
    assert by_videos.fingerprint == by_release.fingerprint
    frames = make_ucf101(tmp_path / "frames", groups=4, clips=2, frames=".png")
    from_frames = load_dataset(cfg_for("ucf101", frames), store)
    assert [i.id for i in from_frames.items] == [i.id for i in by_release.items]
    assert from_frames.options == {"split": 1}
    assert all(i.path.suffix == ".png" and i.path.is_relative_to(frames) for i in from_frames.items)


def test_ucf101_split1_counts_at_release_size(tmp_path):
    """Real-sized split files (101 classes, 25 groups, 13,320 clips) give 9,537 / 3,783.

    The clip counts per group are synthetic (the real videos cannot ship); they are chosen so
    that the totals match the release, and the files are empty (scanning does not decode).
    """
    from lmmclf.datasets.ucf101 import Ucf101Adapter

    classes = [f"Class{i:03d}" for i in range(100)]
    classes.insert(36, "HandstandPushups")

    def clips(label, group):
        if group <= 7:
            return 6 if label * 7 + group - 1 < 248 else 5
        return 6 if label * 18 + group - 8 < 447 else 5

    root = tmp_path / "release"
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    train, test = [], []
    for label, name in enumerate(classes):
        folder = root / "UCF-101" / name
        folder.mkdir(parents=True)
        file_class = "HandStandPushups" if name == "HandstandPushups" else name
        for group in range(1, 26):
            for clip in range(1, clips(label, group) + 1):
                relative = f"{name}/v_{file_class}_g{group:02d}_c{clip:02d}.avi"
                (root / "UCF-101" / relative).touch()
                (test if group <= 7 else train).append(relative if group <= 7 else f"{relative} {label + 1}")
    (lists / "classInd.txt").write_text("".join(f"{i + 1} {n}\r\n" for i, n in enumerate(classes)))
    (lists / "trainlist01.txt").write_text("".join(line + "\r\n" for line in train))
    (lists / "testlist01.txt").write_text("".join(line + "\r\n" for line in test))
    scan = Ucf101Adapter().scan(root, ExperimentConfig().dataset)
    assert len(scan.class_names) == 101 and not scan.skipped
    assert sum(s.split == "train" for s in scan.sources) == 9537
    assert sum(s.split == "test" for s in scan.sources) == 3783


def test_ucf101_errors_name_the_file(ucf, store):
    lists = ucf / "ucfTrainTestlist"
    cfg = cfg_for("ucf101", ucf, decode_workers=1)
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(cfg_for("ucf101", ucf / "nowhere"), store)
    with pytest.raises(DatasetError, match="has splits 1, 2 and 3"):
        load_dataset(cfg_for("ucf101", ucf, split=4), store)

    train = (lists / "trainlist01.txt").read_bytes()
    (lists / "trainlist01.txt").write_bytes(train + b"Bogus/v_Bogus_g01_c01.avi 4\r\n")
    with pytest.raises(DatasetError, match=r"trainlist01\.txt line \d+: class 'Bogus' is not in classInd\.txt"):
        load_dataset(cfg, store)
    (lists / "trainlist01.txt").write_bytes(train + b"YoYo/v_YoYo_g02_c01.avi 1\r\n")
    with pytest.raises(DatasetError, match=r"trainlist01\.txt line \d+: label 1 disagrees with the folder 'YoYo'"):
        load_dataset(cfg, store)
    (lists / "trainlist01.txt").write_bytes(train + "YoYo/v_YoYo_g02_c01.avi 3 caf\xe9\r\n".encode("latin-1"))
    with pytest.raises(DatasetError, match=r"trainlist01\.txt is not UTF-8 text"):
        load_dataset(cfg, store)
    (lists / "trainlist01.txt").write_bytes(train)

    (lists / "testlist01.txt").write_bytes(b"\r\n")
    with pytest.raises(DatasetError, match=r"split file .*testlist01\.txt is empty"):
        load_dataset(cfg, store)
    (lists / "testlist01.txt").unlink()
    with pytest.raises(DatasetError, match=r"split file .*testlist01\.txt is missing"):
        load_dataset(cfg, store)
    shutil.rmtree(lists)
    with pytest.raises(DatasetError, match=r"split files not found: expected .*ucfTrainTestlist/classInd\.txt"):
        load_dataset(cfg, store)


def test_ucf101_missing_listed_video_is_skipped(ucf, store, capsys):
    (ucf / "UCF-101" / "YoYo" / "v_YoYo_g02_c01.avi").unlink()
    index = load_dataset(cfg_for("ucf101", ucf, decode_workers=1), store)
    assert index.counts() == {"train": 11, "test": 12}
    assert len(index.skipped) == 1 and "listed in trainlist01.txt line" in index.skipped[0].reason
    assert "Skipped 1 unusable file(s)" in capsys.readouterr().err


# -- BAR and ERA -----------------------------------------------------------------------------
def test_bar_release_layout(tmp_path, store):
    root = make_bar(tmp_path / "BAR", n_train=3, n_test=2)
    assert (root / "train" / "pole vaulting_0.jpg").is_file()
    (root / "train").rename(root / "Train")  # case of the split folders does not matter
    (root / "test" / "README.txt").write_text("not an image")
    (root / "test" / "unknown_3.jpg").write_bytes((root / "test" / "diving_4.jpg").read_bytes())
    index = load_dataset(cfg_for("bar", root), store)
    assert index.class_names == ["climbing", "diving", "fishing", "racing", "throwing", "vaulting"]
    assert index.counts() == {"train": 18, "test": 12}
    assert {i.id for i in index.items if i.label == 5} >= {"Train/pole vaulting_0.jpg", "test/pole vaulting_4.jpg"}
    for item in index.items:
        prefix = item.id.split("/")[1].rsplit("_", 1)[0]
        assert index.class_names[item.label] == prefix.replace("pole ", "")
    assert [s.source.endswith("unknown_3.jpg") for s in index.skipped] == [True]
    (root / "Train" / ".ipynb_checkpoints").mkdir()  # a hidden folder is not a class folder
    assert load_dataset(cfg_for("bar", root), store).fingerprint == index.fingerprint


def test_era_videos_and_frames(tmp_path, store):
    from lmmclf.datasets.era import EVENTS

    videos = make_era(tmp_path / "ERA", n_train=2, n_test=1)
    index = load_dataset(cfg_for("era", videos, decode_workers=2), store)
    assert len(index.class_names) == 25 == len(EVENTS)
    assert index.class_names == sorted(index.class_names, key=str.lower)
    assert index.counts() == {"train": 50, "test": 25}
    assert index.options == {"frame_format": "png"}
    assert all(index.class_names[i.label] == i.id.split("/")[1] for i in index.items)

    frames = make_era(tmp_path / "ERA-frames", n_train=2, n_test=1, frames=".jpg")
    for split in ("Train", "Test"):
        (frames / split).rename(frames / split.lower())
    from_frames = load_dataset(cfg_for("era", frames), store)
    assert from_frames.class_names == index.class_names
    assert [i.id.lower() for i in from_frames.items] == [i.id.lower() for i in index.items]


# -- corrupt input, unknown names ---------------------------------------------------------------
def test_corrupt_image_is_skipped_and_reported(tmp_path, store, capsys):
    root = make_imagefolder(tmp_path / "data", n_train=2, n_test=1)
    bad = write_corrupt_image(root / "train" / "b" / "b_broken.png")
    (root / "test" / "c" / "c_empty.jpg").write_bytes(b"")
    index = load_dataset(cfg_for("mine", root, type="imagefolder"), store)
    assert index.counts() == {"train": 6, "test": 3}
    assert sorted(Path(s.source).name for s in index.skipped) == ["b_broken.png", "c_empty.jpg"]
    reasons = {Path(s.source).name: s.reason for s in index.skipped}
    assert "cannot decode image" in reasons["b_broken.png"] and "empty" in reasons["c_empty.jpg"]
    err = capsys.readouterr().err
    assert "Skipped 2 unusable file(s)" in err and "b_broken.png" in err
    from lmmclf.cli.app import app
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, ["datasets", "add", "mine", "--root", str(root), "--type", "imagefolder"])
    result = CliRunner().invoke(app, ["datasets", "check", "mine", "--json"])
    assert result.exit_code == 1 and len(json.loads(result.stdout)["skipped"]) == 2
    # the verdict is remembered: the second load does not decode the broken file again
    import lmmclf.datasets.fingerprint as fp

    calls = []
    original = fp.hash_and_verify
    fp_patch = pytest.MonkeyPatch()
    fp_patch.setattr(fp, "hash_and_verify", lambda path: calls.append(path) or original(path))
    try:
        again = load_dataset(cfg_for("mine", root, type="imagefolder"), store)
    finally:
        fp_patch.undo()
    assert calls == [] and len(again.skipped) == 2 and again.fingerprint == index.fingerprint
    assert bad.exists()


def test_a_file_still_being_copied_is_not_remembered_as_broken(tmp_path, store, monkeypatch):
    """An image that changes while it is hashed (a copy in progress) is hashed again next time."""
    import lmmclf.datasets.fingerprint as fp

    root = make_imagefolder(tmp_path / "data", n_train=2, n_test=1)
    growing = sorted((root / "train").rglob("*.png"))[0]
    whole = growing.read_bytes()
    original = fp.hash_and_verify

    def copy_in_progress(path):
        if Path(path) != growing:
            return original(path)
        growing.write_bytes(whole[: len(whole) // 2])
        result = original(path)  # sees half a file
        growing.write_bytes(whole)  # the copy completes before the memo is written
        stat = growing.stat()
        os.utime(growing, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # coarse clocks
        return result

    monkeypatch.setattr(fp, "hash_and_verify", copy_in_progress)
    first = load_dataset(cfg_for("mine", root, type="imagefolder"), store)
    assert [Path(s.source) for s in first.skipped] == [growing]
    monkeypatch.undo()
    again = load_dataset(cfg_for("mine", root, type="imagefolder"), store)
    assert again.skipped == [] and any(item.path == growing for item in again.items)


def test_unknown_name_and_empty_split(tmp_path, store):
    with pytest.raises(DatasetError, match=r"run `lmmclf datasets add pets --root PATH --type TYPE`"):
        load_dataset(cfg_for("pets"), store)
    with pytest.raises(DatasetError, match=r"run `lmmclf datasets add ucf101 --root PATH`"):
        load_dataset(cfg_for("ucf101"), store)
    with pytest.raises(DatasetError, match="Unknown dataset type 'images'"):
        load_dataset(cfg_for("x", tmp_path, type="images"), store)
    root = make_imagefolder(tmp_path / "d", n_train=1, n_test=0)
    (root / "test" / "a").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"the test split is empty"):
        load_dataset(cfg_for("x", root, type="imagefolder"), store)
    write_corrupt_image(root / "test" / "a" / "broken.png")
    with pytest.raises(DatasetError, match=r"no usable test file \(1 unreadable; `lmmclf datasets check x`"):
        load_dataset(cfg_for("x", root, type="imagefolder"), store)


# -- registry and CLI --------------------------------------------------------------------------
def test_cli_add_and_info_on_release(tmp_path, runner, ucf):
    from lmmclf.cli.app import app

    result = runner.invoke(app, ["datasets", "add", "ucf101", "--root", str(ucf)])
    assert result.exit_code == 0, result.output
    registry = (Path(__import__("os").environ["LMMCLF_CONFIG_DIR"]) / "datasets.yaml").read_text()
    assert "ucf101" in registry and str(ucf) in registry

    result = runner.invoke(app, ["datasets", "info", "ucf101", "--json"])
    assert result.exit_code == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["counts"] == {"train": 12, "test": 12} and info["classes"] == 3
    assert info["options"] == {"split": 1, "frame_format": "png"} and info["skipped"] == 0
    assert len(info["fingerprint"]) == 64

    result = runner.invoke(app, ["datasets", "info", "ucf101", "--split", "2"])
    assert result.exit_code == 0
    assert "18 train, 6 test" in result.stderr

    result = runner.invoke(app, ["datasets", "list", "--json"])
    listed = json.loads(result.stdout)
    assert listed["registered"]["ucf101"]["type"] == "ucf101"
    assert {"ucf101", "era", "bar", "imagefolder", "csv", "dtd", "imagenet"} <= set(listed["types"])


def test_cli_errors_are_one_sentence(tmp_path, runner):
    from lmmclf.cli.app import app

    result = runner.invoke(app, ["datasets", "add", "pets", "--root", str(tmp_path)])
    assert result.exit_code == 1 and "add --type" in result.stderr
    result = runner.invoke(app, ["datasets", "add", "bar", "--root", str(tmp_path / "missing")])
    assert result.exit_code == 1 and "does not exist" in result.stderr
    result = runner.invoke(app, ["datasets", "info", "nothing"])
    assert result.exit_code == 1
    assert "lmmclf datasets add nothing --root PATH" in result.stderr
    assert "Traceback" not in result.stderr
