"""Issue 8, dataset listings and cached frames: hostile or broken entries are each their own
problem (skipped with a reason, never a traceback), listed paths stay inside the dataset root
unless ``dataset.allow_outside_root`` is set, and a broken cached video frame is found and
extracted again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from lmmclf.config import ExperimentConfig
from lmmclf.datasets import load_dataset
from lmmclf.datasets.frames import frames_dir
from lmmclf.testing.images import class_image, write_image
from lmmclf.testing.layouts import make_imagefolder, make_ucf101


def cfg_for(name: str, root: Path, **dataset) -> ExperimentConfig:
    return ExperimentConfig().override("dataset", name=name, root=str(root), **dataset)


def cli(runner, *args: str, config: Path | None = None):
    from lmmclf.cli.app import app

    prefix = ["--config", str(config)] if config else []
    result = runner.invoke(app, [*prefix, *args])
    assert "Traceback" not in (result.stdout + result.stderr), result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def secret_image(folder: Path) -> Path:
    return write_image(folder / "x.png", class_image(0, 2, (16, 16), np.random.default_rng(7)))


@pytest.fixture
def ucf(tmp_path):
    return make_ucf101(tmp_path / "UCF101", groups=3, clips=1, n_frames=4)


# -- item 3: paths escape the dataset root -----------------------------------------------------
def test_csv_rows_outside_the_root_are_skipped_unless_allowed(tmp_path, store, runner):
    images = make_imagefolder(tmp_path / "ds" / "imgs", class_names=("cat", "dog"), n_train=1, n_test=1)
    secret = secret_image(tmp_path / "secret")
    (images / "link.png").symlink_to(secret)  # a symlinked *file* leading out of the root
    rows = ["id,path,label,split"]
    for path in sorted(images.rglob("*_000.png")):
        relative = path.relative_to(images).as_posix()
        rows.append(f"{relative},imgs/{relative},{path.parts[-2]},{path.parts[-3]}")
    rows += [
        f"a,{secret},cat,train",  # an absolute path elsewhere
        "b,../secret/x.png,cat,train",
        "c,imgs/../../secret/x.png,dog,test",
        "d,imgs/link.png,dog,test",
        "e,imgs/../imgs/train/cat/cat_000.png,cat,test",  # `..` that stays inside is fine
    ]
    manifest = tmp_path / "ds" / "list.csv"
    manifest.write_text("\n".join(rows) + "\n")
    index = load_dataset(cfg_for("m", manifest, type="csv"), store)
    assert all(item.path.resolve() != secret.resolve() for item in index.items)
    assert index.counts() == {"train": 2, "test": 3}
    outside = sorted(s.reason for s in index.skipped)
    assert len(outside) == 4 and all("outside the dataset root" in r and "dataset.allow_outside_root" in r for r in outside)
    assert any("is a symlink to" in r for r in outside)

    cli(runner, "datasets", "add", "m", "--root", str(manifest), "--type", "csv")
    result = cli(runner, "datasets", "check", "m", "--json")
    assert result.exit_code == 1 and len(json.loads(result.stdout)["skipped"]) == 4

    allowing = tmp_path / "allow.yaml"
    allowing.write_text("dataset:\n  allow_outside_root: true\n")
    result = cli(runner, "datasets", "check", "m", "--json", config=allowing)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["items"] == 9


def test_ucf_split_line_escaping_the_root_is_skipped(tmp_path, store, ucf):
    secret = secret_image(tmp_path / "secret")
    absolute = secret_image(tmp_path / "elsewhere" / "YoYo")  # absolute, in a folder named like a class
    lists = ucf / "ucfTrainTestlist"
    with open(lists / "testlist01.txt", "ab") as handle:
        handle.write(f"YoYo/../../../secret/x.png\r\n{absolute}\r\n/etc/hostname\r\n".encode())
    index = load_dataset(cfg_for("ucf101", ucf, decode_workers=1), store)
    assert {item.path.resolve() for item in index.items}.isdisjoint({secret.resolve(), absolute.resolve()})
    assert len(index.skipped) == 3 and index.counts() == {"train": 6, "test": 3}
    assert all("testlist01.txt line" in s.reason and "outside the dataset root" in s.reason for s in index.skipped)
    allowed = load_dataset(cfg_for("ucf101", ucf, decode_workers=1, allow_outside_root=True), store)
    assert {secret, absolute} <= {item.path for item in allowed.items}
    assert [s.source for s in allowed.skipped] == ["/etc/hostname"]  # no class folder: no label


def test_symlinked_root_and_class_folders_on_another_disk_keep_working(tmp_path, store, ucf):
    whole = load_dataset(cfg_for("ucf101", ucf, decode_workers=1), store)
    other_disk = tmp_path / "disk2"
    other_disk.mkdir()
    yoyo = ucf / "UCF-101" / "YoYo"
    yoyo.rename(other_disk / "YoYo")
    yoyo.symlink_to(other_disk / "YoYo", target_is_directory=True)
    (tmp_path / "link-to-root").symlink_to(ucf, target_is_directory=True)
    for root in (ucf, tmp_path / "link-to-root"):
        index = load_dataset(cfg_for("ucf101", root, decode_workers=1), store)
        assert not index.skipped and index.fingerprint == whole.fingerprint
    # a listed file that is itself a symlink to a file outside the root is not read
    clip = ucf / "UCF-101" / "ApplyEyeMakeup" / "v_ApplyEyeMakeup_g02_c01.avi"
    clip.rename(other_disk / clip.name)
    clip.symlink_to(other_disk / clip.name)
    [skipped] = load_dataset(cfg_for("ucf101", ucf, decode_workers=1), store).skipped
    assert "is a symlink to" in skipped.reason and "outside the dataset root" in skipped.reason


# -- item 13: directories, dangling symlinks and loops in listings and folders --------------------
def test_ucf_listed_entries_that_are_not_files_are_skipped(tmp_path, ucf, runner):
    yoyo = ucf / "UCF-101" / "YoYo"
    (yoyo / "v_YoYo_g01_c01.avi").unlink()
    (yoyo / "v_YoYo_g01_c01.avi").mkdir()  # a folder named *.avi
    (yoyo / "v_YoYo_g02_c01.avi").unlink()
    (yoyo / "v_YoYo_g02_c01.avi").symlink_to(tmp_path / "gone.avi")  # dangling
    (yoyo / "v_YoYo_g03_c01.avi").unlink()
    (yoyo / "V_YOYO_G03_C01.AVI").symlink_to(yoyo / "V_YOYO_G03_C01.AVI")  # a loop, found only ignoring case
    clip = ucf / "UCF-101" / "ApplyEyeMakeup" / "v_ApplyEyeMakeup_g01_c01.avi"
    clip.unlink()
    os.mkfifo(clip)  # reading a pipe would block forever
    cli(runner, "datasets", "add", "ucf101", "--root", str(ucf))
    result = cli(runner, "datasets", "check", "ucf101", "--json")
    assert result.exit_code == 1
    reasons = {Path(s["source"]).name.lower(): s["reason"] for s in json.loads(result.stdout)["skipped"]}
    assert "is a folder, not a file" in reasons["v_yoyo_g01_c01.avi"]
    assert "is a dangling symlink" in reasons["v_yoyo_g02_c01.avi"]
    assert "is a symlink loop" in reasons["v_yoyo_g03_c01.avi"]
    assert "not a regular file" in reasons["v_applyeyemakeup_g01_c01.avi"]
    assert json.loads(result.stdout)["items"] == 5
    result = cli(runner, "datasets", "info", "ucf101")
    assert result.exit_code == 0 and "skipped 4" in result.stderr


def test_imagefolder_lists_broken_symlinks_and_a_looping_class_folder(tmp_path, store, runner):
    root = make_imagefolder(tmp_path / "data", class_names=("a", "b"), n_train=2, n_test=1)
    (root / "train" / "a" / "dangling.png").symlink_to(tmp_path / "nothing.png")
    (root / "train" / "a" / "loop.png").symlink_to(root / "train" / "a" / "loop.png")
    (root / "train" / "loop").symlink_to(root, target_is_directory=True)  # a class folder linked to the root
    (root / "test" / "c").symlink_to(tmp_path / "unmounted", target_is_directory=True)  # dangling class folder
    index = load_dataset(cfg_for("mine", root, type="imagefolder"), store)
    assert index.class_names == ["a", "b"] and index.counts() == {"train": 4, "test": 2}
    reasons = {Path(s.source).name: s.reason for s in index.skipped}
    assert set(reasons) == {"dangling.png", "loop.png", "loop", "c"}
    assert "dangling symlink" in reasons["dangling.png"] and "symlink loop" in reasons["loop.png"]
    assert "(a loop)" in reasons["loop"] and "dangling symlink" in reasons["c"]
    cli(runner, "datasets", "add", "mine", "--root", str(root), "--type", "imagefolder")
    result = cli(runner, "datasets", "info", "mine", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["skipped"] == 4


# -- item 12 (frames): a broken cached frame is found and extracted again ------------------------
def _cached_frames(store) -> list[Path]:
    return sorted(frames_dir(store.root).glob("*.png"))


def test_truncated_cached_frame_is_extracted_again_on_the_next_run(ucf, store, capsys):
    cfg = cfg_for("ucf101", ucf, decode_workers=1)
    first = load_dataset(cfg, store)
    frame = first.items[0].path
    good = frame.read_bytes()
    frame.write_bytes(good[: len(good) // 2])
    capsys.readouterr()
    again = load_dataset(cfg, store)
    assert frame.read_bytes() == good and again.fingerprint == first.fingerprint and not again.skipped
    assert [Path(r.source) for r in again.repaired] == [frame]
    assert "Repaired 1 broken cached frame(s)" in capsys.readouterr().err
    assert not load_dataset(cfg, store).repaired  # and it is trusted again


def test_datasets_check_finds_bit_rot_that_kept_size_and_mtime(ucf, store, runner):
    cli(runner, "datasets", "add", "ucf101", "--root", str(ucf))
    assert cli(runner, "datasets", "info", "ucf101").exit_code == 0
    frames = _cached_frames(store)
    good = {p: p.read_bytes() for p in frames}
    damaged = frames[:2]
    for path in damaged:  # flip bytes in the middle, keep size and mtime (as bit rot would)
        before = path.stat()
        data = bytearray(good[path])
        for i in range(len(data) // 2, len(data) // 2 + 8):
            data[i] ^= 0xFF
        path.write_bytes(bytes(data))
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    result = cli(runner, "datasets", "check", "ucf101", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert sorted(Path(r["frame"]) for r in report["repaired"]) == damaged and not report["skipped"]
    assert all(p.read_bytes() == good[p] for p in frames)
    result = cli(runner, "datasets", "check", "ucf101", "--json")
    assert json.loads(result.stdout)["repaired"] == []


def test_broken_frame_found_when_the_video_is_hashed_again(ucf, store, monkeypatch):
    """With the memo gone (a new cache database), the worker checks the frame it would reuse."""
    cfg = cfg_for("ucf101", ucf, decode_workers=1)
    first = load_dataset(cfg, store)
    frame = first.items[-1].path
    good = frame.read_bytes()
    frame.write_bytes(b"")
    for path in Path(store.file_hash_db()).parent.glob(Path(store.file_hash_db()).name + "*"):
        path.unlink()
    again = load_dataset(cfg, store)
    assert frame.read_bytes() == good and [Path(r.source) for r in again.repaired] == [frame]
    assert again.fingerprint == first.fingerprint


def test_a_video_listed_in_both_splits_is_named_with_both_files(ucf, runner):
    """A trainlist line repeated in the testlist is one id twice; the check is one pass, not a count per id."""
    lists = ucf / "ucfTrainTestlist"
    line = (lists / "trainlist01.txt").read_bytes().split(b"\r\n")[0].split(b" ")[0]
    with open(lists / "testlist01.txt", "ab") as handle:
        handle.write(line + b"\r\n")
    result = cli(runner, "--set", f"dataset.root={ucf}", "--set", "dataset.decode_workers=1", "datasets", "info", "ucf101")
    assert result.exit_code == 1
    message = " ".join(result.stderr.split())
    assert "is used twice, both times for" in message and message.count(Path(line.decode()).stem) == 2  # the id and the file
