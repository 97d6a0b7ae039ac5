"""The cache under hostile conditions: live runs and gc, read-only and full disks, a broken memo,
damaged artifacts, odd paths in messages (issue 8, items 4, 7, 10, 11, 12)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import h5py
import numpy as np
import pytest

from lmmclf.cli.app import app
from lmmclf.store import ArtifactStore, KeySpec
from lmmclf.testing.filesystems import Unavailable, read_only_view, small_disk


def _spec(n: int = 0) -> KeySpec:
    return KeySpec(stage="demo", version=1, params={"n": n})


def _fill(values):
    def compute(handle):
        handle.create_dataset("x", data=np.asarray(values))
        return len(values)

    return compute


def _age(path, seconds: float = 3600) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


@pytest.fixture(scope="module")
def clip_name(tmp_path_factory):
    from lmmclf.testing.tiny_clip import make_tiny_clip

    return make_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny")


@pytest.fixture
def toy_config_file(tmp_path, clip_name, store):
    """A config file for an image folder, a tiny CLIP and hand-written descriptions in the cache."""
    from lmmclf.datasets import load_dataset
    from lmmclf.testing.layouts import make_imagefolder
    from lmmclf.testing.paper1 import toy_config

    root = make_imagefolder(tmp_path / "images", class_names=("a", "b"), n_train=2, n_test=1)
    cfg = toy_config(root, clip_name).override("probe", epochs=2, device="cpu")
    path = tmp_path / "exp.yaml"
    path.write_text(cfg.to_yaml())
    return path, cfg, load_dataset(cfg, store, show_progress=False)


_HOLDER = textwrap.dedent(
    """
    import sys, time
    from lmmclf.store import ArtifactStore
    store = ArtifactStore(sys.argv[1])
    with store.working("describe", sys.argv[2]):
        print("holding", flush=True)
        time.sleep(30)
    """
)


# -- item 4: gc and live runs --------------------------------------------------------------

def test_gc_never_touches_files_of_a_live_run(store, runner):
    key = "a" * 64
    journal = store.partial_path("describe", key, "main.jsonl")
    journal.write_text('{"id": "x", "ok": true}\n' * 112)
    temp = store.root / "describe" / f"{key}.h5.tmp-999999999-abcd1234"
    temp.write_bytes(b"half")
    for path in (journal, temp):
        _age(path)
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(store.root), key], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        result = runner.invoke(app, ["cache", "gc", "--discard-progress"])
        assert result.exit_code == 0, result.output
        assert journal.exists() and temp.exists()
        assert "in use by a running process" in result.stderr
    finally:
        holder.kill()
        holder.wait()
    result = runner.invoke(app, ["cache", "gc"])
    assert not temp.exists()  # debris of a dead run goes
    assert journal.exists()  # resumable progress stays by default


def test_gc_keeps_resumable_progress_and_says_how_much(store, runner):
    journal = store.partial_path("describe", "b" * 64, "main.jsonl")
    journal.write_text('{"id": "x", "ok": true}\n' * 7 + '{"id": "y", "ok": false}\n')
    checkpoint = store.partial_path("finetune", "c" * 64, "ckpt.pt")
    checkpoint.write_bytes(b"state")
    for path in (journal, checkpoint):
        _age(path)
    dry = runner.invoke(app, ["cache", "gc", "--dry-run"])
    assert dry.exit_code == 0 and "7 images described" in dry.stderr and "resumable" in dry.stderr
    runner.invoke(app, ["cache", "gc"])
    assert journal.exists() and checkpoint.exists()
    runner.invoke(app, ["cache", "gc", "--discard-progress"])
    assert not journal.exists() and not checkpoint.exists()


def test_lock_files_of_finished_runs_are_not_leftovers(store, runner):
    store.ensure(_spec(), _fill([1, 2]))
    with store.working("demo", _spec().key):
        pass
    assert list(store.root.glob("demo/*.lock"))
    result = runner.invoke(app, ["cache", "gc", "--dry-run"])
    assert ".lock" not in result.stderr and "in 0 entries" in result.stderr


def test_a_temp_file_of_a_living_process_is_kept(store):
    from lmmclf.cache_gc import plan_gc

    temp = store.root / "frames" / "v1" / f"{'d' * 64}.partial.{os.getpid()}-0123abcd.png"
    temp.parent.mkdir(parents=True)
    temp.write_bytes(b"half a frame")
    _age(temp)
    assert not [entry for entry in plan_gc(store) if entry.path == temp and entry.remove]


# -- item 7: orphan weights ----------------------------------------------------------------

def test_orphan_weights_are_listed_and_collected(store, runner):
    orphan = store.root / "finetune" / f"{'e' * 64}.safetensors"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"w" * 2048)
    _age(orphan)
    listing = runner.invoke(app, ["cache", "ls"])
    assert "1 weights files have no artifact" in listing.stderr and "cache gc" in listing.stderr
    result = runner.invoke(app, ["cache", "gc"])
    assert result.exit_code == 0 and not orphan.exists()


# -- item 10: read-only cache, broken memo ------------------------------------------------

@pytest.mark.parametrize("damage", ["random", "truncated", "empty"])
def test_a_corrupt_file_hash_memo_is_rebuilt(store, tmp_path, damage):
    from lmmclf.filehash import FileHashCache

    target = tmp_path / "file.bin"
    target.write_bytes(b"content")
    memo = FileHashCache(store.file_hash_db())
    digest = memo.hash(target)
    memo.close()
    db = store.file_hash_db()
    data = db.read_bytes()
    db.write_bytes({"random": os.urandom(len(data) or 4096), "truncated": data[: len(data) // 3], "empty": b""}[damage])
    again = FileHashCache(db)
    assert again.hash(target) == digest and again.persistent
    again.close()


def test_a_memo_that_cannot_be_written_is_skipped(tmp_path):
    from lmmclf.filehash import FileHashCache

    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    target = tmp_path / "data.bin"
    target.write_bytes(b"1234")
    memo = FileHashCache(blocker / "filehashes.sqlite")  # below a regular file: cannot exist
    assert not memo.persistent and len(memo.hash(target)) == 64


def test_read_only_cache(tmp_path, runner, toy_config_file, monkeypatch):
    config, cfg, dataset = toy_config_file
    cache = tmp_path / "cache"
    assert runner.invoke(app, ["-c", str(config), "embed", "--images-only"]).exit_code == 0
    assert runner.invoke(app, ["-c", str(config), "probe", "--features", "image"]).exit_code == 0
    try:
        view = read_only_view(cache, tmp_path / "ro-cache")
        ro = view.__enter__()
    except Unavailable as exc:
        pytest.skip(str(exc))
    try:
        monkeypatch.setenv("LMMCLF_CACHE", str(ro))
        for command in (["datasets", "info", "toy"], ["cache", "ls"], ["eval", "--method", "image", "--out-dir", str(tmp_path / "out")]):
            result = runner.invoke(app, ["-c", str(config), *command])
            assert result.exit_code == 0, f"{command}: {result.output}"
        for command in (["embed", "--images-only"], ["probe", "--features", "image", "--seeds", "1"], ["cache", "gc", "--discard-progress"]):
            result = runner.invoke(app, ["-c", str(config), *command])
            if command[0] == "cache":
                continue  # nothing to remove: gc has nothing to say
            assert result.exit_code == 1, f"{command}: {result.output}"
            assert "read-only" in result.stderr and str(ro) in result.stderr.replace("\n", "")
            assert "Traceback" not in result.output
        key = next(iter(ArtifactStore(ro).list())).key
        result = runner.invoke(app, ["cache", "rm", key[:12]])
        assert result.exit_code == 1 and "read-only" in result.stderr and "Traceback" not in result.output
    finally:
        view.__exit__(None, None, None)


# -- item 11: full disk --------------------------------------------------------------------

def test_full_disk_is_one_sentence_naming_the_folder(tmp_path, runner, toy_config_file, monkeypatch):
    config, *_ = toy_config_file
    try:
        disk = small_disk(tmp_path / "tiny-disk", 64)
        root = disk.__enter__()
    except Unavailable as exc:
        pytest.skip(str(exc))
    try:
        (root / "filler").write_bytes(b"\0" * (60 * 1024 - 4096))
        result = runner.invoke(app, ["-c", str(config), "--cache-dir", str(root / "cache"), "embed", "--images-only"])
        assert result.exit_code == 1, result.output
        assert "No space left" in result.stderr and "Traceback" not in result.output
    finally:
        disk.__exit__(None, None, None)


def test_a_write_error_inside_an_artifact_is_one_sentence(store, monkeypatch):
    from lmmclf.errors import StorageError

    def compute(handle):
        raise OSError("Unable to synchronously write data (file write failed: errno = 28, error message = 'No space left on device')")

    with pytest.raises(StorageError, match="No space left on the device holding"):
        store.ensure(_spec(), compute)
    assert not list(store.root.glob("demo/*.h5*"))


def test_cache_below_a_regular_file(tmp_path, runner, monkeypatch):
    blocker = tmp_path / "plain-file"
    blocker.write_text("x")
    monkeypatch.setenv("LMMCLF_CACHE", str(blocker / "cache"))
    result = runner.invoke(app, ["cache", "ls"])
    assert result.exit_code == 1 and "$LMMCLF_CACHE" in result.stderr and "Traceback" not in result.output


# -- item 12: damaged artifacts ------------------------------------------------------------

def test_an_artifact_missing_a_dataset_is_recomputed(store):
    path = store.ensure(_spec(), _fill([1, 2, 3]))
    with h5py.File(path, "a") as handle:
        del handle["x"]
    assert not store.is_complete("demo", _spec().key)
    from lmmclf.errors import CorruptArtifactError

    with pytest.raises(CorruptArtifactError, match="lacks data"):
        store.open("demo", _spec().key)
    store.ensure(_spec(), _fill([4, 5]))
    with store.open("demo", _spec().key) as handle:
        assert handle["x"][:].tolist() == [4, 5]


def test_cache_show_on_a_truncated_artifact(store, runner):
    path = store.ensure(_spec(), _fill(np.arange(1000)))
    path.write_bytes(path.read_bytes()[:700])
    listing = runner.invoke(app, ["cache", "ls"])
    assert listing.exit_code == 0 and "incomplete" in listing.stderr
    shown = runner.invoke(app, ["cache", "show", _spec().key[:12]])
    assert shown.exit_code == 1 and "Traceback" not in shown.output and "cache rm" in shown.stderr


# -- messages print what they say -----------------------------------------------------------

def test_error_text_is_not_read_as_markup(tmp_path, runner):
    missing = tmp_path / "[x]" / "exp.yaml"
    result = runner.invoke(app, ["-c", str(missing), "config", "show"])
    assert result.exit_code == 1
    assert "[x]" in result.stderr


def test_hints_carry_the_cache_dir_in_effect(tmp_path, runner):
    cache = tmp_path / "my cache"
    store = ArtifactStore(cache)
    orphan = cache / "finetune" / f"{'f' * 64}.safetensors"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"w")
    _age(orphan)
    result = runner.invoke(app, ["--cache-dir", str(cache), "cache", "ls"])
    assert f"lmmclf --cache-dir '{cache}' cache gc" in result.stderr.replace("\n", "")
    assert store.root == cache


def test_the_remove_hint_of_a_damaged_artifact_works_as_written(tmp_path, runner):
    """With --cache-dir in effect the hint carries it, and running the hint removes the damaged file."""
    import shlex

    from lmmclf.store import ArtifactStore

    cache = tmp_path / "elsewhere"
    path = ArtifactStore(cache).ensure(_spec(), _fill(np.arange(1000)))
    path.write_bytes(path.read_bytes()[:700])
    shown = runner.invoke(app, ["--cache-dir", str(cache), "cache", "show", _spec().key[:12]])
    assert shown.exit_code == 1
    hint = " ".join(shown.stderr.split()).split("`")[1]
    assert hint.startswith(f"lmmclf --cache-dir {cache} cache rm ")
    removed = runner.invoke(app, shlex.split(hint)[1:])
    assert removed.exit_code == 0, removed.output
    assert not path.exists()

