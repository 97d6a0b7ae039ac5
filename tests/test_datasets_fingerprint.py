"""Dataset fingerprints: stable across processes, sensitive to bytes, labels, split membership,
classes; and the per-file memo that spares a second run from rereading every file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lmmclf.config import ExperimentConfig
from lmmclf.datasets import load_dataset
from lmmclf.datasets import fingerprint as fp
from lmmclf.testing.layouts import make_imagefolder


def csv_dataset(root: Path, rows: list[tuple[str, str, str]]) -> Path:
    manifest = root / "manifest.csv"
    manifest.write_text("path,label,split\n" + "".join(f"{p},{l},{s}\n" for p, l, s in rows))
    return manifest


@pytest.fixture
def images(tmp_path):
    """Six BMP images (a format where one changed byte is still a valid image)."""
    from PIL import Image

    root = make_imagefolder(tmp_path / "src", class_names=("a", "b"), n_train=2, n_test=1)
    rows = []
    for png in sorted(root.rglob("*.png")):
        bmp = png.with_suffix(".bmp")
        Image.open(png).save(bmp)
        png.unlink()
        split, label = bmp.relative_to(root).parts[:2]
        rows.append((bmp.relative_to(tmp_path).as_posix(), label, split))
    return tmp_path, rows


def load(root: Path, store):
    return load_dataset(ExperimentConfig().override("dataset", name="m", root=str(root), type="csv"), store)


def test_fingerprint_is_stable_across_processes(images, store, tmp_path):
    root, rows = images
    manifest = csv_dataset(root, rows)
    here = load(manifest, store).fingerprint
    script = (
        "import sys; from lmmclf.config import ExperimentConfig; from lmmclf.store import ArtifactStore;"
        "from lmmclf.datasets import load_dataset;"
        "cfg = ExperimentConfig().override('dataset', name='m', root=sys.argv[1], type='csv');"
        "print(load_dataset(cfg, ArtifactStore(sys.argv[2]), show_progress=False).fingerprint)"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(manifest), str(tmp_path / "fresh-cache")],
        capture_output=True, text=True, check=True,
    )
    assert out.stdout.strip() == here


def test_fingerprint_sensitivity(images, store):
    root, rows = images
    base = load(csv_dataset(root, rows), store).fingerprint

    # one changed image byte (a pixel byte at the end of a BMP: still a valid image)
    target = root / rows[0][0]
    data = bytearray(target.read_bytes())
    data[-1] ^= 0x01
    target.write_bytes(bytes(data))
    changed = load(csv_dataset(root, rows), store)
    assert not changed.skipped and changed.fingerprint != base
    data[-1] ^= 0x01
    target.write_bytes(bytes(data))
    assert load(csv_dataset(root, rows), store).fingerprint == base  # restored bytes, same print

    relabelled = [(rows[0][0], "b", rows[0][2])] + rows[1:]
    assert load(csv_dataset(root, relabelled), store).fingerprint != base
    moved = [(rows[0][0], rows[0][1], "train" if rows[0][2] == "test" else "test")] + rows[1:]
    assert load(csv_dataset(root, moved), store).fingerprint != base
    renamed = [(p, {"a": "x", "b": "b"}[l], s) for p, l, s in rows]  # class names count too
    assert load(csv_dataset(root, renamed), store).fingerprint != base
    # row order in the manifest does not matter (items are ordered by class, then id)
    assert load(csv_dataset(root, list(reversed(rows))), store).fingerprint == base


def test_fingerprint_function_covers_each_field():
    entry = ("id1", "0" * 64, "image", 0, "train")
    base = fp.fingerprint(["a", "b"], [entry])
    for position, value in enumerate(("id2", "1" * 64, "video-middle/1", 1, "test")):
        changed = list(entry)
        changed[position] = value
        assert fp.fingerprint(["a", "b"], [tuple(changed)]) != base
    assert fp.fingerprint(["b", "a"], [entry]) != base


def test_memo_spares_rereads(images, store, monkeypatch):
    root, rows = images
    manifest = csv_dataset(root, rows)
    first = load(manifest, store)
    calls: list[str] = []
    original = fp.hash_and_verify
    monkeypatch.setattr(fp, "hash_and_verify", lambda path: calls.append(path) or original(path))
    assert load(manifest, store).fingerprint == first.fingerprint
    assert calls == []
    # touching one file (new mtime) makes exactly that file be read again
    import os

    target = root / rows[2][0]
    stat = target.stat()
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert load(manifest, store).fingerprint == first.fingerprint
    assert calls == [str(target.resolve())]
    # the memo lives in the store's root, keyed by absolute path, size and mtime
    assert store.file_hash_db().is_file()
