"""Fine-tuning against hostile checkpoints, corrupt trunk caches and a full disk (issue 8).

Real stages on a toy experiment (an image folder, a tiny ``local-dir:`` CLIP, hand-written
descriptions, embed-text and prototypes by their own code), then ``lmmclf finetune`` through
the real command line. Faults are real files (pickle payloads, garbage, truncations), a real
small tmpfs where this machine allows mounting one, else an ``ENOSPC`` injected at the write.
"""

from __future__ import annotations

import errno
import os
import pickle
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import torch

from lmmclf.cli.app import app


@pytest.fixture(scope="module")
def image_root(tmp_path_factory):
    from lmmclf.testing.layouts import make_imagefolder

    return make_imagefolder(tmp_path_factory.mktemp("data") / "toy", n_train=6, n_test=3)


@pytest.fixture
def experiment(image_root, tiny_clip, store):
    """describe (hand-written) -> embed-text -> prototypes, then the config file and the run's key."""
    from lmmclf.datasets import load_dataset
    from lmmclf.describe import describe_spec
    from lmmclf.embed.run import embed_texts
    from lmmclf.finetune import finetune_spec
    from lmmclf.prototypes import make_prototypes
    from lmmclf.testing.describe_artifact import write_describe_artifact
    from lmmclf.testing.paper1 import class_descriptions, toy_config

    cfg = toy_config(image_root, tiny_clip).override(
        "finetune", epochs=2, batch_size=4, lr=1e-3, device="cpu", num_workers=0, trunk_dtype="float32")
    dataset = load_dataset(cfg, store, show_progress=False)
    texts = [class_descriptions(dataset.class_names, item.label, i) for i, item in enumerate(dataset.items)]
    write_describe_artifact(store, describe_spec(cfg, dataset, store), [i.id for i in dataset.items], texts, k=3)
    embed_texts(cfg, dataset, store)
    make_prototypes(cfg, dataset, store)
    config = store.root.parent / "exp.yaml"
    config.write_text(cfg.to_yaml())
    key = finetune_spec(cfg, dataset, store).key
    return cfg, config, key


def finetune(runner, config, *args):
    return runner.invoke(app, ["-c", str(config), "finetune", "--json", *args])


def checkpoint_path(store, key) -> Path:
    return store.partial_path("finetune", key, "ckpt.pt")


def set_aside_files(store, key) -> list[Path]:
    return sorted((store.root / "finetune").glob(f"{key}.bad-*"))


def assert_clean_failure(result, directory: Path) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and "Error" in result.stderr
    assert f"No space left on the device holding {directory}" in result.stderr


class Payload:
    """Unpickling this writes a marker file: what an attacker's checkpoint would run."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


def interrupted_checkpoint(cfg, store, key) -> Path:
    """A real checkpoint: a run stopped in its second epoch."""
    from lmmclf.finetune import run_finetune
    from lmmclf.finetune.trainer import TrainingInterrupted

    calls = {"n": 0}

    def stop():
        calls["n"] += 1
        return calls["n"] == 7  # 5 steps per epoch: inside epoch 2

    with pytest.raises(TrainingInterrupted):
        run_finetune(cfg, store, show_progress=False, should_stop=stop)
    return checkpoint_path(store, key)


@pytest.mark.parametrize("container", ["pickle", "torch-zip"])
def test_a_pickle_payload_checkpoint_never_runs_and_is_moved_aside(experiment, runner, store, tmp_path, container):
    cfg, config, key = experiment
    marker = tmp_path / f"marker-{uuid.uuid4().hex}"
    ckpt = checkpoint_path(store, key)
    if container == "pickle":
        ckpt.write_bytes(pickle.dumps({"format": 2, "seed": Payload(marker)}))
    else:
        torch.save({"format": 2, "seed": Payload(marker), "model": {"w": torch.zeros(2)}}, ckpt)
    result = finetune(runner, config)
    assert not marker.exists(), "loading the checkpoint ran code"
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    (moved,) = set_aside_files(store, key)
    assert not ckpt.exists() and ".partial." not in moved.name  # out of resume's way
    assert str(ckpt) in result.stderr and moved.name in result.stderr and "training starts fresh" in result.stderr


@pytest.mark.parametrize("damage", ["zero-bytes", "garbage", "truncated", "old-format", "not-a-dict", "missing-fields"])
def test_an_unloadable_checkpoint_is_reported_moved_aside_and_training_starts_fresh(experiment, runner, store, damage):
    cfg, config, key = experiment
    ckpt = checkpoint_path(store, key)
    writers = {
        "zero-bytes": lambda: ckpt.write_bytes(b""),
        "garbage": lambda: ckpt.write_bytes(os.urandom(4096)),
        "truncated": lambda: (torch.save({"format": 2, "model": {"w": torch.randn(4096)}}, ckpt),
                              ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])),
        "old-format": lambda: torch.save({"format": 1, "seed": 0}, ckpt),
        "not-a-dict": lambda: torch.save([1, 2, 3], ckpt),
        "missing-fields": lambda: torch.save({"format": 2, "seed": 0}, ckpt),
    }
    writers[damage]()
    result = finetune(runner, config)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output and "Aborted" not in result.output
    assert len(set_aside_files(store, key)) == 1 and not ckpt.exists()
    assert str(ckpt) in result.stderr and "training starts fresh" in result.stderr


def test_a_checkpoint_that_does_not_fit_the_run_is_set_aside_and_the_result_is_a_fresh_run(experiment, runner, store):
    from lmmclf.finetune import run_finetune

    cfg, config, key = experiment
    ckpt = interrupted_checkpoint(cfg, store, key)
    state = torch.load(ckpt, weights_only=True)  # the real format loads without unpickling code
    assert state["format"] == 2 and (state["epoch"], state["step"]) == (1, 2)
    name = next(iter(state["model"]))
    state["model"][name] = torch.zeros(3, 3, 3)  # wrong shape: a partial load must not leak into training
    torch.save(state, ckpt)
    result = finetune(runner, config)
    assert result.exit_code == 0, result.output
    assert "do not fit this run" in result.stderr and len(set_aside_files(store, key)) == 1
    damaged = run_finetune(cfg, store, show_progress=False)[0].run
    fresh = run_finetune(cfg, store, show_progress=False, force=True, resume=False)[0].run
    assert damaged.curves["ce_loss"].tolist() == fresh.curves["ce_loss"].tolist()


def test_a_safe_checkpoint_resumes_exactly(experiment, store):
    from lmmclf.finetune import run_finetune

    cfg, _, key = experiment
    ckpt = interrupted_checkpoint(cfg, store, key)
    assert torch.load(ckpt, weights_only=True)["rng"]["numpy"]["keys"].dtype == torch.int64
    resumed = run_finetune(cfg, store, show_progress=False)[0].run
    reference = run_finetune(cfg, store, show_progress=False, force=True, resume=False)[0].run
    for name, values in reference.curves.items():
        assert resumed.curves[name].tolist() == values.tolist(), name
    assert not set_aside_files(store, key)


def test_weights_files_are_byte_identical_across_runs_and_honour_the_umask(experiment, runner, store):
    import json

    from lmmclf.hashing import hash_file

    cfg, config, key = experiment
    previous = os.umask(0o022)
    try:
        first = finetune(runner, config)
        assert first.exit_code == 0, first.output
        weights = Path(json.loads(first.stdout)[0]["weights"])
        before = weights.read_bytes()
        for _ in range(2):
            again = finetune(runner, config, "--force")
            assert again.exit_code == 0, again.output
            assert weights.read_bytes() == before  # the metadata order no longer varies
    finally:
        os.umask(previous)
    assert weights.stat().st_mode & 0o777 == 0o644 == store.path("finetune", key).stat().st_mode & 0o777
    with store.open("finetune", key) as handle:
        assert handle.attrs["weights_sha256"] == hash_file(weights)


def test_a_full_disk_while_saving_a_checkpoint_is_one_sentence_and_keeps_the_previous_one(experiment, runner, store, monkeypatch):
    import lmmclf.finetune.checkpoint as checkpoint

    cfg, config, key = experiment
    real_fsync, calls = os.fsync, {"n": 0}

    def fsync(fd):
        calls["n"] += 1
        if calls["n"] == 2:  # the checkpoint after epoch 2
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(checkpoint.os, "fsync", fsync)
    result = finetune(runner, config)
    assert_clean_failure(result, store.root / "finetune")
    ckpt = checkpoint_path(store, key)
    assert torch.load(ckpt, weights_only=True)["epoch"] == 1  # epoch 1's checkpoint survives
    assert not list(ckpt.parent.glob("*.tmp-*"))
    monkeypatch.setattr(checkpoint.os, "fsync", real_fsync)
    resumed = finetune(runner, config)
    assert resumed.exit_code == 0 and "Resuming seed 0" in resumed.stderr


def test_a_full_disk_while_building_the_trunk_cache_is_one_sentence(experiment, runner, store, monkeypatch):
    import lmmclf.disk_space as space

    cfg, config, key = experiment
    monkeypatch.setattr(space, "_fallocate", lambda path, mode, offset, length: errno.ENOSPC)
    result = finetune(runner, config)
    assert_clean_failure(result, store.root / "trunk")
    assert not list((store.root / "trunk").glob("*.h5*"))  # no half-written artifact


@pytest.mark.parametrize("damage", ["missing-tokens", "short-tokens", "unreadable-chunk"])
def test_a_damaged_trunk_cache_is_recomputed_not_trusted(experiment, store, damage):
    import h5py

    from lmmclf.finetune import run_finetune

    cfg, _, key = experiment
    cfg = cfg.override("finetune", epochs=1)
    first = run_finetune(cfg, store, show_progress=False)[0].run
    (trunk,) = (store.root / "trunk").glob("*.h5")
    with h5py.File(trunk, "r+") as handle:
        tokens = handle["tokens"][()]
        del handle["tokens"]
        if damage == "short-tokens":
            handle.create_dataset("tokens", data=tokens[:2])
        elif damage == "unreadable-chunk":  # compressed, so garbage in a chunk fails to decode on reading
            handle.create_dataset("tokens", data=tokens, chunks=(1, *tokens.shape[1:]), compression="gzip")
            info = handle["tokens"].id.get_chunk_info(0)
    if damage == "unreadable-chunk":
        with open(trunk, "r+b") as raw:
            raw.seek(info.byte_offset)
            raw.write(b"\xff" * info.size)
    again = run_finetune(cfg, store, show_progress=False, force=True)[0].run
    assert again.curves["ce_loss"].tolist() == first.curves["ce_loss"].tolist()
    with h5py.File(trunk, "r") as handle:
        assert handle["tokens"].shape == tokens.shape


def _mount_tmpfs(target: Path, size: str) -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    target.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(target)], capture_output=True)
    return done.returncode == 0


@pytest.mark.slow  # a fresh interpreter per case: a crash must not take pytest with it
@pytest.mark.parametrize("stage", ["trunk", "finetune"])
def test_a_really_full_disk_is_one_sentence_not_a_crash(experiment, store, stage):
    """On a real full file system (a 2 MB tmpfs): HDF5 used to die with a segmentation fault here."""
    cfg, config, key = experiment
    target = store.root / stage
    if target.exists():
        shutil.rmtree(target)
    if not _mount_tmpfs(target, "2m"):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        free = shutil.disk_usage(target).free
        (target / "filler").write_bytes(b"\0" * (free - 96 * 1024))  # room for less than the stage needs
        env = {**os.environ, "LMMCLF_CACHE": str(store.root)}
        done = subprocess.run([sys.executable, "-m", "lmmclf", "-c", str(config), "finetune", "--epochs", "2"],
                              capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 1, done.stderr  # not -11 (SIGSEGV)
        assert "Traceback" not in done.stderr and f"No space left on the device holding {target}" in done.stderr
    finally:
        subprocess.run(["umount", str(target)], capture_output=True)


@pytest.mark.parametrize("damage", ["garbage", "foreign", "truncated", "bad-header-value"])
def test_a_damaged_weights_file_is_one_sentence(experiment, store, tmp_path, damage):
    from safetensors.torch import save_file

    from lmmclf.errors import LmmclfError
    from lmmclf.finetune import load_finetuned, run_finetune
    from lmmclf.finetune.run import WEIGHTS_FORMAT

    cfg, _, _ = experiment
    path = tmp_path / "weights.safetensors"
    if damage == "garbage":
        path.write_bytes(os.urandom(1000))
    elif damage == "foreign":
        save_file({"a": torch.zeros(2)}, str(path))
    elif damage == "bad-header-value":
        save_file({"a": torch.zeros(2)}, str(path), metadata={"format": WEIGHTS_FORMAT, "class_names": "{not json"})
    else:
        weights = run_finetune(cfg.override("finetune", epochs=1), store, show_progress=False)[0].weights
        path.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(LmmclfError, match=str(path)):
        load_finetuned(path)
