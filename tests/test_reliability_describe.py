"""Issue 8, the describe slice: malformed journals, twin processes, honest exit status and
downstream gates, and damaged describe artifacts (items 5, 6, 9 and the describe part of 12)."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import sys
import time

import h5py
import pytest
import yaml

from lmmclf.cli.app import app
from lmmclf.config import ExperimentConfig
from lmmclf.datasets.base import DatasetIndex, Item
from lmmclf.describe import Answer, Backend, describe_spec, register_backend, run_describe
from lmmclf.describe.artifact import answer_record, read_rows
from lmmclf.describe.backends.base import BACKENDS
from lmmclf.errors import CorruptArtifactError
from lmmclf.journal import Journal
from lmmclf.testing.layouts import make_imagefolder
from lmmclf.testing.openai_server import FakeOpenAIServer, answer_for


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Counting(Backend):
    """An in-process backend that answers like the fake server and records what it was asked."""

    calls: list[str] = []

    def describe_batch(self, jobs):
        Counting.calls.extend(job.id for job in jobs)
        return [Answer(job.id, answer_for(_sha(job.path), self.prompt), generated_tokens=7) for job in jobs]


@pytest.fixture
def counting():
    register_backend("counting-rel", Counting)
    Counting.calls = []
    yield Counting
    BACKENDS.pop("counting-rel", None)


@pytest.fixture
def toy(tmp_path):
    root = make_imagefolder(tmp_path / "images", n_train=2, n_test=1)
    items = [Item(str(p.relative_to(root).with_suffix("")), p, "abc".index(p.parent.name), p.parts[-3])
             for p in sorted(root.rglob("*.png"))]
    return DatasetIndex("toy", ["a", "b", "c"], items, fingerprint="toy-rel")


def _good(item) -> dict:
    return answer_record(Answer(item.id, answer_for(_sha(item.path), ""), generated_tokens=7), 10)


# -- item 5: a torn or malformed journal record is skipped and its item redone ---------------------
MALFORMED = {
    "bad utf-8": lambda item: b'{"id": "' + item.id.encode() + b'", "ok": true, "raw": "\xe2\x82"}\n',
    "missing id": lambda item: json.dumps({k: v for k, v in _good(item).items() if k != "id"}).encode() + b"\n",
    "id null": lambda item: json.dumps({**_good(item), "id": None}).encode() + b"\n",
    "id a list": lambda item: json.dumps({**_good(item), "id": [item.id]}).encode() + b"\n",
    "ok not a bool": lambda item: json.dumps({**_good(item), "ok": "yes"}).encode() + b"\n",
    "descriptions a string": lambda item: json.dumps({**_good(item), "descriptions": "a cat"}).encode() + b"\n",
    "descriptions hold numbers": lambda item: json.dumps({**_good(item), "descriptions": [1, 2]}).encode() + b"\n",
    "raw missing": lambda item: json.dumps({k: v for k, v in _good(item).items() if k != "raw"}).encode() + b"\n",
    "not an object": lambda item: json.dumps([item.id, True]).encode() + b"\n",
    "absurd nesting": lambda item: b"[" * 100_000 + b"]" * 100_000 + b"\n",
}


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_a_malformed_journal_record_is_skipped_and_its_item_redone(toy, store, counting, kind):
    cfg = ExperimentConfig().override("describe", backend="counting-rel")
    key = describe_spec(cfg, toy, store).key
    first, bad = toy.items[0], toy.items[1]
    journal = store.partial_path("describe", key, "main.jsonl")
    journal.write_bytes(json.dumps(_good(first)).encode() + b"\n" + MALFORMED[kind](bad))
    summary = run_describe(cfg, toy, store, show_progress=False)
    assert sorted(counting.calls) == sorted(item.id for item in toy.items[1:])  # the bad one redone, the good one kept
    assert summary.skipped == 1 and summary.failures_total == 0
    rows = read_rows(summary.artifact)
    assert all(row["ok"] for row in rows) and len(rows) == len(toy.items)


def test_a_line_torn_inside_a_utf8_character_does_not_jam_describe(toy, store, counting):
    """The disk-full case: a line cut mid-character, then a later append isolates it with a newline."""
    cfg = ExperimentConfig().override("describe", backend="counting-rel")
    key = describe_spec(cfg, toy, store).key
    path = store.partial_path("describe", key, "main.jsonl")
    whole = json.dumps({**_good(toy.items[0]), "raw": "1. un café crème"}, ensure_ascii=False).encode()
    cut = whole.index("é".encode()) + 1  # inside the two bytes of "é"
    path.write_bytes(whole[:cut])
    Journal(path).append([_good(toy.items[1])])
    assert [r["id"] for r in Journal(path).read()] == [toy.items[1].id]
    summary = run_describe(cfg, toy, store, show_progress=False)
    assert toy.items[0].id in counting.calls and toy.items[1].id not in counting.calls
    assert summary.failures_total == 0 and len(counting.calls) == len(toy.items) - 1


def test_odd_counts_in_a_record_read_as_zero_and_keep_the_result(toy, store, counting):
    cfg = ExperimentConfig().override("describe", backend="counting-rel")
    key = describe_spec(cfg, toy, store).key
    odd = {**_good(toy.items[0]), "generated_tokens": "lots", "retries": 10**30}
    store.partial_path("describe", key, "main.jsonl").write_text(json.dumps(odd) + "\n")
    summary = run_describe(cfg, toy, store, show_progress=False)
    assert toy.items[0].id not in counting.calls and summary.failures_total == 0


# -- item 6: a twin process waits and reads the result ----------------------------------------------
@pytest.fixture
def pets(tmp_path):
    from lmmclf.datasets import register

    root = make_imagefolder(tmp_path / "pets", n_train=1, n_test=1)
    register("pets", root, "imagefolder")
    return root


def test_two_processes_with_the_same_key_ask_each_image_once(pets, tmp_path):
    images = sorted(pets.rglob("*.png"))
    slow = {_sha(p): ["timeout"] for p in images}  # each first answer takes 0.8 s, so the runs overlap
    config = tmp_path / "exp.yaml"
    config.write_text("describe:\n  timeout: 30\n  concurrency: 1\n")
    env = {**os.environ, "LMMCLF_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1"}
    with FakeOpenAIServer(per_image=slow, slow_seconds=0.8) as server:
        command = [sys.executable, "-m", "lmmclf", "-c", str(config), "describe", "pets", "--backend", "openai",
                   "--base-url", server.url, "--model", "m", "--json"]
        first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while not server.requests and time.monotonic() < deadline:
            time.sleep(0.02)
        second = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out1, err1 = first.communicate(timeout=90)
        out2, err2 = second.communicate(timeout=90)
        assert first.returncode == 0 and second.returncode == 0, (err1 + err2).decode()[-3000:]
        assert len(server.requests) == len(images)  # not 2x: the twin asked nothing
    assert b"waiting" in err2, err2.decode()[-2000:]
    one, two = json.loads(out1), json.loads(out2)
    assert one["artifact"] == two["artifact"] and two["skipped"] == len(images) and two["described"] == 0


# -- item 9: exit status and downstream honesty -----------------------------------------------------
def test_a_run_where_every_image_failed_exits_1_with_one_sentence(runner, pets, tmp_path):
    config = tmp_path / "exp.yaml"
    config.write_text("describe:\n  max_retries: 0\n")
    with FakeOpenAIServer(script=["500"] * 50) as server:
        result = runner.invoke(app, ["-c", str(config), "describe", "pets", "--backend", "openai", "--base-url", server.url,
                                     "--model", "m", "--json"])
        assert len(server.requests) == 6
    assert result.exit_code == 1, result.output
    error = " ".join(result.stderr.split("Error:", 1)[1].split())
    assert error.startswith("All 6 images failed") and "HTTP 500" in error and "Traceback" not in result.output
    assert error.count(". ") == 0 and json.loads(result.stdout)["usable"] == 0  # one sentence; the JSON summary still comes


def test_a_partial_run_names_how_many_failed_and_a_retry_command_that_works(runner, pets, tmp_path):
    images = sorted(pets.rglob("*.png"))
    plan = {_sha(p): ["reject"] for p in images[::2]}
    with FakeOpenAIServer(per_image=plan) as server:
        args = ["--cache-dir", str(tmp_path / "c"), "describe", "pets", "--backend", "openai", "--base-url", server.url,
                "--model", "m", "--num-descriptions", "4"]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        output = " ".join(result.stderr.split())
        assert "3 of 6 images failed" in output
        retry = output.split("run `", 1)[1].split("`", 1)[0]
        words = shlex.split(retry)
        assert words[0] == "lmmclf" and sorted(words[1:]) == sorted(args)  # the same options (in declaration order)
        again = runner.invoke(app, words[1:])
        assert again.exit_code == 0 and len(server.requests) == 9  # only the 3 failed ones were asked again


@pytest.fixture
def half_described(tmp_path, tiny_clip, runner):
    """A dataset where half of the train and test images failed to be described, and its config file."""
    root = make_imagefolder(tmp_path / "half", n_train=2, n_test=2)
    images = sorted(root.rglob("*.png"))
    plan = {_sha(p): ["reject"] for p in images[::2]}
    config = {
        "dataset": {"name": "half", "type": "imagefolder", "root": str(root)},
        "describe": {"backend": "openai", "model": "m", "max_retries": 0, "num_descriptions": 3},
        "embed": {"clip_model": tiny_clip, "clip_pretrained": None, "device": "cpu", "batch_size": 16, "num_workers": 0},
        "probe": {"epochs": 2, "seeds": [0], "device": "cpu"},
    }
    path = tmp_path / "half.yaml"
    path.write_text(yaml.safe_dump(config))
    with FakeOpenAIServer(per_image=plan) as server:
        result = runner.invoke(app, ["-c", str(path), "describe", "--base-url", server.url])
    assert result.exit_code == 0, result.output
    return path, config


def test_text_methods_refuse_a_half_described_dataset_unless_allowed(runner, half_described):
    path, config = half_described
    embedded = runner.invoke(app, ["-c", str(path), "embed"])
    assert embedded.exit_code == 0, embedded.output  # embeddings never refuse
    assert runner.invoke(app, ["-c", str(path), "probe", "--features", "image"]).exit_code == 0
    for command in (["probe", "--features", "concat"], ["probe", "--features", "text"], ["prototypes"],
                    ["probe", "--features", "prototype-zeroshot"]):
        refused = runner.invoke(app, ["-c", str(path), *command])
        assert refused.exit_code == 1, (command, refused.output)
        assert "embed.max_missing_descriptions" in refused.stderr and "Traceback" not in refused.output
        assert "3 of 6 train images (50%)" in " ".join(refused.stderr.split())
    config["embed"]["max_missing_descriptions"] = 0.5
    path.write_text(yaml.safe_dump(config))
    allowed = runner.invoke(app, ["-c", str(path), "probe", "--features", "concat"])
    assert allowed.exit_code == 0, allowed.output
    assert runner.invoke(app, ["-c", str(path), "prototypes"]).exit_code == 0
    # the cached result is refused again once the setting is back (the setting is in no key)
    config["embed"]["max_missing_descriptions"] = 0.05
    path.write_text(yaml.safe_dump(config))
    assert runner.invoke(app, ["-c", str(path), "probe", "--features", "concat"]).exit_code == 1


# -- item 12 (describe part): a damaged finished artifact -------------------------------------------
def test_a_finished_artifact_missing_a_dataset_is_reported_and_recomputed(runner, pets, tiny_clip, tmp_path):
    config = tmp_path / "pets.yaml"
    config.write_text(yaml.safe_dump({"describe": {"backend": "openai", "model": "m"},
                                      "embed": {"clip_model": tiny_clip, "clip_pretrained": None, "device": "cpu", "num_workers": 0}}))
    with FakeOpenAIServer() as server:
        describe = ["-c", str(config), "describe", "pets", "--base-url", server.url, "--json"]
        first = runner.invoke(app, describe)
        assert first.exit_code == 0, first.output
        artifact = json.loads(first.stdout)["artifact"]
        with h5py.File(artifact, "r+") as handle:
            del handle["num_descriptions"]  # the completion marker stays
        with pytest.raises(CorruptArtifactError, match="num_descriptions"):
            read_rows(artifact)
        embedded = runner.invoke(app, ["-c", str(config), "embed", "pets"])
        assert embedded.exit_code == 1 and "Traceback" not in embedded.output
        assert artifact in embedded.stderr
        again = runner.invoke(app, describe)
        assert again.exit_code == 0, again.output
        # rebuilt from the per-image entries its answers left: the LMM is not asked again
        assert len(server.requests) == 6 and json.loads(again.stdout)["reused"] == 6
    assert len(read_rows(artifact)) == 6
    assert runner.invoke(app, ["-c", str(config), "embed", "pets"]).exit_code == 0


@pytest.mark.parametrize("missing", ["embeddings", "ok", "labels"])
def test_embed_readers_turn_a_missing_dataset_into_one_sentence(tmp_path, missing):
    import numpy as np

    from lmmclf.embed.read import read_image_embeddings, read_text_embeddings

    path = tmp_path / "a.h5"
    with h5py.File(path, "w") as handle:
        handle["ids"] = np.asarray(["x", "y"], dtype=object).astype("S")
        handle["splits"] = np.asarray(["train", "test"]).astype("S")
        handle["labels"] = np.zeros(2, dtype=np.int64)
        handle["embeddings"] = np.zeros((2, 4), dtype=np.float32)
        handle["ok"] = np.ones(2, dtype=bool)
        handle["mask"] = np.ones((3, 2), dtype=bool)  # wrong row count
        handle.attrs["class_names"] = json.dumps(["a"])
        del handle[missing]
    with h5py.File(path, "r") as handle:
        with pytest.raises(CorruptArtifactError, match=f"{path}.*'{missing}'"):
            read_image_embeddings(handle)
        with pytest.raises(CorruptArtifactError, match="'mask'"):
            read_text_embeddings(handle)
