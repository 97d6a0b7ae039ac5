"""Middle frames: the definition, decoding once, the content-keyed cache, resuming, corrupt videos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lmmclf.config import ExperimentConfig
from lmmclf.datasets import load_dataset
from lmmclf.datasets import loader
from lmmclf.datasets.frames import frames_dir, middle_frame
from lmmclf.testing.layouts import make_ucf101
from lmmclf.testing.videos import video_frames, write_corrupt_video, write_video


def decoded_frames(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


@pytest.mark.parametrize("n_frames", [1, 2, 6, 7])
def test_middle_frame_is_floor_half(tmp_path, n_frames):
    video = write_video(tmp_path / "clip.avi", video_frames(0, 3, n_frames, (32, 24), np.random.default_rng(0)))
    frames = decoded_frames(video)
    assert len(frames) == n_frames
    got = np.asarray(middle_frame(video.read_bytes()).convert("RGB"))
    assert np.array_equal(got, frames[n_frames // 2])
    if n_frames > 2:  # the frames differ, so this is not vacuous
        assert not np.array_equal(got, frames[n_frames // 2 - 1])


def counting(monkeypatch) -> list[str]:
    calls: list[str] = []
    original = loader.extract_many

    def wrapped(videos, cache_root, frame_format):
        calls.extend(videos)
        return original(videos, cache_root, frame_format)

    monkeypatch.setattr(loader, "extract_many", wrapped)
    return calls


def cfg_for(root: Path, **dataset) -> ExperimentConfig:
    return ExperimentConfig().override("dataset", name="ucf101", root=str(root), **dataset)


def test_frames_are_extracted_once_and_equal_the_middle_frame(tmp_path, store, monkeypatch):
    from PIL import Image

    root = make_ucf101(tmp_path / "ucf", groups=3, clips=1, n_frames=6)
    calls = counting(monkeypatch)
    cfg = cfg_for(root, decode_workers=1)  # inline: the counter sees every decode
    first = load_dataset(cfg, store)
    assert len(calls) == 9
    cached = sorted(frames_dir(store.root).glob("*.png"))
    assert len(cached) == 9 and not list(frames_dir(store.root).glob("*.partial.*"))  # no temp files left
    mtimes = {p: p.stat().st_mtime_ns for p in cached}
    for item in first.items:
        video = root / "UCF-101" / (item.id + ".avi")
        frames = decoded_frames(video)
        assert np.array_equal(np.asarray(Image.open(item.path).convert("RGB")), frames[len(frames) // 2])

    calls.clear()
    second = load_dataset(cfg, store)
    assert calls == []
    assert second.fingerprint == first.fingerprint
    assert {p: p.stat().st_mtime_ns for p in cached} == mtimes

    # other splits reuse the same frames (the cache is keyed by video bytes, not by split)
    load_dataset(cfg_for(root, decode_workers=1, split=2), store)
    assert calls == []


def test_interrupted_extraction_resumes(tmp_path, store, monkeypatch):
    root = make_ucf101(tmp_path / "ucf", groups=3, clips=2)
    cfg = cfg_for(root, decode_workers=1)
    first = load_dataset(cfg, store)
    # a run interrupted after some frames: lose 4 of them (and the memo rows of nothing else)
    lost = [item.path for item in first.items[:4]]
    for path in lost:
        path.unlink()
    calls = counting(monkeypatch)
    again = load_dataset(cfg, store)
    assert len(calls) == 4
    assert again.fingerprint == first.fingerprint
    assert all(path.exists() for path in lost)


def test_parallel_extraction_matches_inline(tmp_path, store, isolated_user_dirs):
    from lmmclf.store import ArtifactStore

    root = make_ucf101(tmp_path / "ucf", groups=3, clips=2)
    inline = load_dataset(cfg_for(root, decode_workers=1), store)
    other = ArtifactStore(tmp_path / "other-cache")
    parallel = load_dataset(cfg_for(root, decode_workers=2), other)
    assert parallel.fingerprint == inline.fingerprint
    for a, b in zip(inline.items, parallel.items):
        assert a.path.read_bytes() == b.path.read_bytes()


def test_frame_format_changes_files_and_identity(tmp_path, store):
    from PIL import Image

    root = make_ucf101(tmp_path / "ucf", groups=3, clips=1)
    png = load_dataset(cfg_for(root, decode_workers=1), store)
    jpg = load_dataset(cfg_for(root, decode_workers=1, frame_format="jpg"), store)
    assert all(i.path.suffix == ".jpg" for i in jpg.items)
    assert Image.open(jpg.items[0].path).format == "JPEG"
    assert jpg.options["frame_format"] == "jpg" and png.identity() != jpg.identity()


def test_corrupt_video_is_skipped_reported_and_remembered(tmp_path, store, monkeypatch, capsys):
    root = make_ucf101(tmp_path / "ucf", groups=3, clips=2)
    bad = write_corrupt_video(root / "UCF-101" / "YoYo" / "v_YoYo_g02_c01.avi")
    cfg = cfg_for(root, decode_workers=1)
    index = load_dataset(cfg, store)
    assert index.counts() == {"train": 11, "test": 6}
    assert [Path(s.source).name for s in index.skipped] == [bad.name]
    assert index.skipped[0].reason.startswith("cannot decode video")
    assert "Skipped 1 unusable file(s)" in capsys.readouterr().err
    calls = counting(monkeypatch)
    again = load_dataset(cfg, store)
    assert calls == [] and len(again.skipped) == 1  # not decoded again
    # replacing the file with a good video makes it count again
    write_video(bad, video_frames(2, 3, 5, (32, 24), np.random.default_rng(1)))
    fixed = load_dataset(cfg, store)
    assert calls == [str(bad)] and not fixed.skipped and fixed.counts()["train"] == 12


def test_failed_frame_write_leaves_nothing(tmp_path):
    from lmmclf.datasets.frames import write_atomic

    class Exploding:
        def save(self, path, format, **options):
            Path(path).write_bytes(b"half a frame")
            raise OSError("disk full")

    target = tmp_path / "frames" / ("0" * 64 + ".png")
    with pytest.raises(OSError, match="disk full"):
        write_atomic(Exploding(), target, "png")
    assert list(target.parent.iterdir()) == []
