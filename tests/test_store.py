"""The artifact store: keys, atomic writes, corruption handling, locking, housekeeping."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

from lmmclf.errors import CorruptArtifactError, MissingArtifactError
from lmmclf.store import ArtifactStore, KeySpec


def _fill(values):
    def compute(handle):
        handle.create_dataset("x", data=values)

    return compute


def _spec(**changes):
    base = dict(stage="demo", version=1, dataset={"name": "d", "fingerprint": "abc"}, model={"name": "m", "revision": "r1"}, params={"lr": 0.001, "k": 10}, inputs={"parent": "f" * 64})
    base.update(changes)
    return KeySpec(**base)


def test_key_is_stable_across_processes():
    code = textwrap.dedent(
        """
        from lmmclf.store import KeySpec
        print(KeySpec(stage="demo", version=1, dataset={"name": "d", "fingerprint": "abc"},
                      model={"revision": "r1", "name": "m"}, params={"k": 10, "lr": 0.001},
                      inputs={"parent": "f" * 64}).key)
        """
    )
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert other == _spec().key  # dict order does not matter, process does not matter


@pytest.mark.parametrize(
    "change",
    [
        {"stage": "other"},
        {"version": 2},
        {"dataset": {"name": "d", "fingerprint": "abd"}},
        {"model": {"name": "m", "revision": "r2"}},
        {"params": {"lr": 0.002, "k": 10}},
        {"inputs": {"parent": "e" * 64}},
    ],
)
def test_key_changes_with_every_input(change):
    assert _spec(**change).key != _spec().key


def test_key_rejects_values_without_stable_text():
    with pytest.raises(ValueError):
        _ = _spec(params={"lr": float("nan")}).key
    with pytest.raises(TypeError):
        _ = _spec(params={"obj": object()}).key


def test_ensure_writes_once_and_stores_provenance(store):
    calls = []

    def compute(handle):
        calls.append(1)
        handle["x"] = np.arange(5)
        return 5

    spec = _spec()
    path = store.ensure(spec, compute)
    assert store.ensure(spec, compute) == path
    assert len(calls) == 1
    with store.open("demo", spec.key) as handle:
        assert handle.attrs["lmmclf_items"] == 5
        assert '"revision":"r1"' in handle.attrs["lmmclf_key_inputs"]
        assert handle.attrs["lmmclf_version"]
    assert [info.key for info in store.list()] == [spec.key]


def test_interrupted_write_leaves_no_artifact(store):
    spec = _spec()

    def compute(handle):
        handle["x"] = np.arange(3)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        store.ensure(spec, compute)
    assert not store.path("demo", spec.key).exists()
    assert list(store.path("demo", spec.key).parent.glob("*.tmp-*")) == []
    with pytest.raises(MissingArtifactError, match="lmmclf make-it"):
        store.open("demo", spec.key, make_hint="lmmclf make-it")


def test_interrupted_forced_recompute_keeps_the_old_artifact(store):
    spec = _spec()
    store.ensure(spec, lambda handle: handle.create_dataset("x", data=np.arange(3)) and None)

    def compute(handle):
        raise KeyboardInterrupt  # Ctrl-C during `--force`

    with pytest.raises(KeyboardInterrupt):
        store.ensure(spec, compute, force=True)
    assert store.is_complete("demo", spec.key)
    with store.open("demo", spec.key) as handle:
        assert list(handle["x"][...]) == [0, 1, 2]


def test_killed_writer_leaves_no_artifact(store, tmp_path):
    spec = _spec()
    code = textwrap.dedent(
        f"""
        import os, numpy as np
        from lmmclf.store import ArtifactStore, KeySpec
        spec = KeySpec(**{dict(stage=spec.stage, version=spec.version, dataset=spec.dataset, model=spec.model, params=spec.params, inputs=spec.inputs)!r})
        with ArtifactStore({str(store.root)!r}).create(spec) as h:
            h["x"] = np.zeros(10)
            os._exit(9)  # dies mid-write, like kill -9
        """
    )
    subprocess.run([sys.executable, "-c", code], check=False)
    assert not store.is_complete("demo", spec.key)
    assert not store.path("demo", spec.key).exists()


@pytest.mark.parametrize("damage", ["truncate", "no-marker", "garbage"])
def test_corrupt_artifact_is_detected_and_recomputed(store, damage):
    spec = _spec()
    store.ensure(spec, _fill(np.arange(1000)))
    path = store.path("demo", spec.key)
    if damage == "truncate":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 3])
    elif damage == "garbage":
        path.write_bytes(b"not an hdf5 file at all")
    else:
        with h5py.File(path, "a") as handle:
            handle.attrs["lmmclf_complete"] = False
    assert not store.is_complete("demo", spec.key)
    with pytest.raises(CorruptArtifactError, match=str(path.name)):
        store.open("demo", spec.key)
    store.ensure(spec, _fill(np.arange(7)))
    with store.open("demo", spec.key) as handle:
        assert handle["x"].shape == (7,)


def _concurrent_writer(root, counter_dir, index):
    import time

    from lmmclf.store import ArtifactStore

    def compute(handle):
        (counter_dir / f"computed-{index}").write_text("1")
        time.sleep(0.5)
        handle["x"] = np.full(100_000, index)

    ArtifactStore(root).ensure(_spec(), compute)


def test_two_concurrent_writers_compute_once(store, tmp_path):
    counter = tmp_path / "counter"
    counter.mkdir()
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_concurrent_writer, args=(store.root, counter, i)) for i in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    assert len(list(counter.iterdir())) == 1  # the second waited on the lock, then read
    with store.open("demo", _spec().key) as handle:
        values = np.unique(handle["x"][:])
    assert len(values) == 1


def _age(path, seconds=3600):
    import os
    import time

    os.utime(path, (time.time() - seconds, time.time() - seconds))


def test_remove_and_gc(store):
    spec = _spec()
    store.ensure(spec, _fill([1]))
    journal = store.partial_path("demo", "0" * 64, "main.jsonl")
    journal.write_text('{"id": "a", "ok": true}\n')
    temp = store.path("demo", "1" * 64).with_name("x.h5.tmp-999999999-abc")
    temp.write_bytes(b"partial")
    from lmmclf.cache_gc import plan_gc

    frame_temp = store.root / "frames" / "v1" / ("a" * 64 + ".partial.999999999-0123abcd.png")
    frame_temp.parent.mkdir(parents=True)
    frame_temp.write_bytes(b"half a frame")
    for path in (journal, temp, frame_temp):
        _age(path)

    def removed(**options):
        return {entry.path.name for entry in plan_gc(store, **options) if entry.remove}

    assert temp.name in removed() and frame_temp.name in removed()
    assert journal.name not in removed()  # resumable progress is kept by default
    assert journal.name in removed(discard_progress=True)
    assert store.path("demo", spec.key).name not in removed()
    assert store.path("demo", spec.key).name in removed(max_size_bytes=0)
    store.remove(store.find(spec.key[:10]))
    assert store.list() == []


def test_sidecar_files_are_counted_and_removed_with_their_artifact(store):
    spec = _spec()
    path = store.ensure(spec, _fill(np.arange(10)))
    weights = path.with_suffix(".safetensors")
    weights.write_bytes(b"w" * 5000)
    info = store.find(spec.key)
    assert info.size >= 5000 + path.stat().st_size
    from lmmclf.cache_gc import plan_gc

    assert {path.name, weights.name} <= {entry.path.name for entry in plan_gc(store, max_size_bytes=0) if entry.remove}
    store.remove(info)
    assert not weights.exists() and not path.exists()


def test_default_root_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LMMCLF_CACHE", str(tmp_path / "elsewhere"))
    assert ArtifactStore().root == tmp_path / "elsewhere"
