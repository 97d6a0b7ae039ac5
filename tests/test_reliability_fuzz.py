"""Fuzz the cache: truncate and flip bytes in every kind of cache file, then run the next command.

Whatever the damage, the command ends without a traceback (done, or one sentence and exit 1),
nothing read executes code, and running again ends with a good result: the damaged file is
recomputed, resumed from, or set aside (issue 8, "a fuzz test").
"""

from __future__ import annotations

import random

import pytest

from lmmclf.cli.app import app
from lmmclf.datasets import register
from lmmclf.testing.layouts import make_imagefolder
from lmmclf.testing.openai_server import FakeOpenAIServer


def mutations(data: bytes, seed: int) -> dict[str, bytes]:
    """Damaged versions of ``data``: empty, one byte, cut in half, cut at the end, flipped bytes, garbage appended."""
    rng = random.Random(seed)
    flipped = bytearray(data)
    for _ in range(max(1, len(data) // 200)):
        position = rng.randrange(len(flipped))
        flipped[position] ^= 1 << rng.randrange(8)
    spread = bytearray(data)
    for position in range(0, len(spread), max(1, len(spread) // 16)):
        spread[position] ^= 0xFF
    return {
        "empty": b"",
        "one-byte": data[:1],
        "half": data[: len(data) // 2],
        "cut-end": data[:-7] if len(data) > 7 else b"",
        "flipped": bytes(flipped),
        "spread": bytes(spread),
        "garbage-tail": data + bytes(rng.randrange(256) for _ in range(97)),
        "random": bytes(rng.randrange(256) for _ in range(len(data) or 64)),
    }


FAST = ("half", "spread")  # CI's representative damage; the rest runs with the slow tests


def _chosen(data: bytes, seed: int, full: bool) -> dict[str, bytes]:
    every = mutations(data, seed)
    return every if full else {name: every[name] for name in FAST}


def _clean(result) -> None:
    """No traceback; success, or one error sentence with exit 1."""
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code in (0, 1), result.output
    if result.exit_code == 1:
        assert "Error:" in result.stderr, result.output


@pytest.fixture
def experiment(tmp_path, runner, store):
    """An image folder, a fake LMM server, a tiny CLIP: describe, embed and an image probe in the cache."""
    from lmmclf.testing.tiny_clip import make_tiny_clip

    root = make_imagefolder(tmp_path / "pets", class_names=("a", "b"), n_train=3, n_test=2)
    register("pets", root, "imagefolder")
    clip = make_tiny_clip(tmp_path / "clip")
    config = tmp_path / "exp.yaml"
    with FakeOpenAIServer(lifetime=600, max_requests=5000) as server:
        config.write_text(
            "dataset: {name: pets}\n"
            f"describe: {{backend: openai, base_url: '{server.url}', model: fake, num_descriptions: 3, max_retries: 0}}\n"
            f"embed: {{clip_model: '{clip}', clip_pretrained: null, device: cpu, num_workers: 0, batch_size: 8}}\n"
            "probe: {epochs: 2, device: cpu}\n"
        )
        base = ["-c", str(config)]
        for command in (["describe"], ["embed"], ["probe", "--features", "concat"]):
            result = runner.invoke(app, [*base, *command])
            assert result.exit_code == 0, result.output
        yield base, store, server


def _pipeline_heals(runner, base, commands) -> None:
    """Run the commands; each may report damage once, and a second try must succeed."""
    for command in commands:
        first = runner.invoke(app, [*base, *command])
        _clean(first)
        if first.exit_code != 0:
            again = runner.invoke(app, [*base, *command])
            _clean(again)
            assert again.exit_code == 0, f"{command} did not heal: {first.output} / {again.output}"


FULL = pytest.param(True, marks=pytest.mark.slow, id="every-damage")


@pytest.mark.parametrize("full", [False, FULL])
@pytest.mark.parametrize("stage", ["describe", "embed-image", "embed-text", "probe"])
def test_damaged_artifacts(experiment, runner, stage, full, tmp_path):
    base, store, _ = experiment
    artifacts = [info for info in store.list() if info.stage == stage]
    assert artifacts, stage
    path = artifacts[0].path
    pristine = path.read_bytes()
    probe, report = ["probe", "--features", "concat"], ["eval", "--method", "concat", "--out-dir", str(tmp_path / "out")]
    # the stage that reads the damaged file, then (as its error says) the one that makes it, then the reader again
    repair = {"describe": [["embed"], ["describe"], ["embed"]], "embed-image": [probe, ["embed"], probe],
              "embed-text": [probe, ["embed"], probe], "probe": [report, probe, report]}
    for name, damaged in _chosen(pristine, len(stage), full).items():
        path.write_bytes(damaged)
        if full:
            _pipeline_heals(runner, base, [["describe"], ["embed"], probe, report, ["cache", "ls"]])
        else:
            first, producer, again = repair[stage]
            _clean(runner.invoke(app, [*base, *first]))
            _pipeline_heals(runner, base, [producer, again])
        _clean(runner.invoke(app, ["cache", "show", artifacts[0].key[:12]]))


@pytest.mark.parametrize("full", [False, FULL])
def test_damaged_journal_is_resumed(experiment, runner, full):
    base, store, _ = experiment
    key = next(info.key for info in store.list() if info.stage == "describe")
    store.remove(store.find(key))
    result = runner.invoke(app, [*base, "describe", "--shard", "0/2"])
    assert result.exit_code == 0, result.output
    journal = next((store.root / "describe").glob("*.partial.*.jsonl"))
    pristine = journal.read_bytes()
    for name, damaged in _chosen(pristine, 7, full).items():
        journal.write_bytes(damaged)
        _pipeline_heals(runner, base, [["describe", "--shard", "0/2"], ["cache", "gc", "--dry-run"]])
    _pipeline_heals(runner, base, [["describe"]])
    assert store.is_complete("describe", key)


@pytest.mark.parametrize("full", [False, FULL])
def test_damaged_file_hash_memo(experiment, runner, full):
    base, store, _ = experiment
    memo = store.file_hash_db()
    pristine = memo.read_bytes()
    for name, damaged in _chosen(pristine, 3, full).items():
        for side in memo.parent.glob(memo.name + "-*"):
            side.unlink()
        memo.write_bytes(damaged)
        _pipeline_heals(runner, base, [["datasets", "info", "pets"], ["probe", "--features", "concat"]])


@pytest.mark.parametrize("full", [False, FULL])
def test_damaged_cached_frame(tmp_path, runner, store, full):
    from lmmclf.datasets.frames import frames_dir
    from lmmclf.testing.layouts import make_ucf101

    root = make_ucf101(tmp_path / "UCF101", groups=3, clips=1, n_frames=4)
    base = ["datasets"]
    assert runner.invoke(app, [*base, "add", "ucf101", "--root", str(root)]).exit_code == 0
    assert runner.invoke(app, [*base, "info", "ucf101"]).exit_code == 0
    frame = sorted(frames_dir(store.root).glob("*.png"))[0]
    pristine = frame.read_bytes()
    for name, damaged in _chosen(pristine, 11, full).items():
        frame.write_bytes(damaged)
        for command in (["info", "ucf101"], ["check", "ucf101"]):
            result = runner.invoke(app, [*base, *command])
            _clean(result)
            assert result.exit_code == 0, f"{name}: {result.output}"
        assert _pixels(frame.read_bytes()) == _pixels(pristine), name  # bytes after the PNG's end change nothing


def _pixels(data: bytes) -> bytes:
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB").tobytes()
