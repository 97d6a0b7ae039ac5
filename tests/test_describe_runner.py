"""The describe loop: keys, journals, resume, failures, shards, the openai backend and its faults."""

from __future__ import annotations

import hashlib
import os

import h5py
import numpy as np
import pytest

from lmmclf.config import ExperimentConfig
from lmmclf.datasets.base import DatasetIndex, Item
from lmmclf.describe import Answer, Backend, describe_spec, register_backend, run_describe
from lmmclf.describe.backends.base import BACKENDS
from lmmclf.errors import LmmclfError
from lmmclf.journal import Journal
from lmmclf.store import ArtifactStore
from lmmclf.testing.layouts import make_imagefolder
from lmmclf.testing.openai_server import FakeOpenAIServer, answer_for

SECRET = "sk-test-DO-NOT-LEAK-4f8e2a"
LAYOUT = ("ids", "descriptions", "num_descriptions", "raw", "generated_tokens", "ok", "errors")


@pytest.fixture
def dataset(tmp_path):
    root = make_imagefolder(tmp_path / "images", n_train=3, n_test=1)
    items = [
        Item(str(p.relative_to(root).with_suffix("")), p, "abc".index(p.parent.name), p.parts[-3])
        for p in sorted(root.rglob("*.png"))
    ]
    return DatasetIndex("toy", ["a", "b", "c"], items, fingerprint="toy-v1")


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _config(server=None, **values):
    base = {"backend": "openai", "model": "llava-hf/llava-1.5-13b-hf", "concurrency": 3, "timeout": 0.5, "retry_backoff": 0.01}
    if server is not None:
        base["base_url"] = server.url
    return ExperimentConfig().override("describe", **{**base, **values})


def _read(path) -> dict:
    with h5py.File(path, "r") as handle:
        out = {name: handle[name][...] for name in LAYOUT}
        out["K"] = int(handle.attrs["num_descriptions_requested"])
    return out


def _assert_same(a: dict, b: dict) -> None:
    for name in [*LAYOUT, "K"]:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


class CountingBackend(Backend):
    """A deterministic in-process backend that counts the images it was asked about."""

    calls: list[str] = []
    interrupt_after: int | None = None  # raise KeyboardInterrupt at this batch

    def describe_batch(self, jobs):
        if CountingBackend.interrupt_after is not None and len(CountingBackend.calls) >= CountingBackend.interrupt_after:
            raise KeyboardInterrupt
        CountingBackend.calls.extend(job.id for job in jobs)
        return [Answer(job.id, answer_for(_sha(job.path), self.prompt), generated_tokens=7) for job in jobs]


@pytest.fixture
def counting():
    register_backend("counting", CountingBackend)
    CountingBackend.calls = []
    CountingBackend.interrupt_after = None
    yield CountingBackend
    BACKENDS.pop("counting", None)


# -- the key --------------------------------------------------------------------------------
def test_key_changes_with_what_changes_descriptions_and_only_that(dataset, store):
    base = ExperimentConfig()

    def key(**values):
        return describe_spec(base.override("describe", **values), dataset, store).key

    reference = key()
    changed = [
        key(prompt="Describe the image"), key(prompt_preset="emotions"), key(num_descriptions=5),
        key(model="llava-hf/llava-1.5-7b-hf"), key(revision="a" * 40), key(max_new_tokens=100),
        key(repetition_penalty=1.0), key(sample=True), key(dtype="bfloat16"), key(quantize="4bit"),
        key(split="train"), key(limit=3), key(backend="openai"),
    ]
    assert len({reference, *changed}) == len(changed) + 1
    assert key(sample=True, temperature=0.7) != key(sample=True, temperature=0.9)
    assert key(sample=True, top_p=0.5) != key(sample=True, seed=3)
    same = [key(batch_size=3), key(device="cpu"), key(concurrency=99), key(base_url="http://elsewhere/v1"),
            key(temperature=0.1), key(seed=5), key(compile=True), key(limit=10_000)]  # a limit that keeps every item  # sampling knobs do nothing under greedy decoding
    assert set(same) == {reference}
    openai = key(backend="openai", base_url="http://a/v1")
    assert key(backend="openai", base_url="http://b/v1", api_key_env="OTHER") == openai
    assert key(backend="openai", dtype="float32", quantize="8bit") == openai  # no local weights: not in its key


def test_key_follows_a_local_model_folder_contents(dataset, store, tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "chat_template.jinja").write_text("A")
    cfg = ExperimentConfig().override("describe", model=str(model))
    first = describe_spec(cfg, dataset, store).key
    (model / "chat_template.jinja").write_text("B")
    second = describe_spec(cfg, dataset, store).key
    (model / "config.json").write_text('{"x": 1}')
    assert len({first, second, describe_spec(cfg, dataset, store).key}) == 3


# -- the loop -------------------------------------------------------------------------------
def test_artifact_layout_and_cached_rerun(dataset, store, counting):
    cfg = _config(backend="counting", batch_size=4)
    summary = run_describe(cfg, dataset, store, show_progress=False)
    assert summary.described == len(dataset.items) and summary.failed == 0
    data = _read(summary.artifact)
    assert list(data["ids"].astype(str)) == [item.id for item in dataset.items]
    assert data["K"] == 10 and data["descriptions"].shape == (len(dataset.items), 10)
    assert data["ok"].all() and (data["generated_tokens"] == 7).all()
    first = dataset.items[0]
    raw = answer_for(_sha(first.path), "")
    assert data["raw"][0].decode() == raw
    assert data["num_descriptions"][0] == raw.count("\n")  # the preamble line is dropped
    assert not list((store.root / "describe").glob("*.partial.*"))  # journals folded into the artifact
    again = run_describe(cfg, dataset, store, show_progress=False)
    assert again.skipped == len(dataset.items) and again.described == 0
    assert len(counting.calls) == len(dataset.items)


def test_ctrl_c_keeps_finished_batches_and_resume_does_no_work_twice(dataset, store, counting, capsys):
    cfg = _config(backend="counting", batch_size=2)
    counting.interrupt_after = 4  # two batches done, the third is interrupted
    with pytest.raises(KeyboardInterrupt):
        run_describe(cfg, dataset, store, show_progress=False)
    assert "run the same command again" in capsys.readouterr().err
    journal = Journal(store.partial_path("describe", describe_spec(cfg, dataset, store).key, "main.jsonl"))
    assert [r["id"] for r in journal.read()] == [item.id for item in dataset.items[:4]]
    counting.interrupt_after = None
    summary = run_describe(cfg, dataset, store, show_progress=False)
    assert summary.skipped == 4 and summary.described == len(dataset.items) - 4
    assert sorted(counting.calls) == sorted(item.id for item in dataset.items)  # nothing twice

    fresh = ArtifactStore(store.root.parent / "fresh")
    _assert_same(_read(run_describe(cfg, dataset, fresh, show_progress=False).artifact), _read(summary.artifact))


def test_shards_combine_into_the_single_run_artifact(dataset, store, counting):
    cfg = _config(backend="counting", batch_size=2)
    parts = [run_describe(cfg, dataset, store, shard=(i, 3), show_progress=False) for i in range(3)]
    assert [p.artifact is None for p in parts] == [True, True, False]
    assert parts[0].remaining == len(dataset.items) - parts[0].assigned
    assert sum(p.assigned for p in parts) == len(dataset.items)
    single = run_describe(cfg, dataset, ArtifactStore(store.root.parent / "single"), show_progress=False)
    _assert_same(_read(parts[2].artifact), _read(single.artifact))


def test_a_plain_run_picks_up_shard_journals(dataset, store, counting):
    cfg = _config(backend="counting", batch_size=2)
    shard = run_describe(cfg, dataset, store, shard=(0, 2), show_progress=False)
    counting.calls = []
    plain = run_describe(cfg, dataset, store, show_progress=False)
    assert plain.skipped == shard.assigned and len(counting.calls) == len(dataset.items) - shard.assigned
    assert plain.artifact and _read(plain.artifact)["ok"].all()


def test_a_shard_finishing_just_after_the_writer_reports_the_artifact(dataset, store, counting, monkeypatch):
    """Shard B journals its last batch while shard A writes the artifact (with B's failed row) and drops
    the journals; B must then see the artifact complete, not report its failed row as "with other shards"."""
    from lmmclf.describe import runner

    failing = dataset.items[1].id  # in shard 1 of 2

    class OneFailure(CountingBackend):
        def describe_batch(self, jobs):
            answers = super().describe_batch(jobs)
            return [Answer(a.id, None, error="boom") if a.id == failing else a for a in answers]

    register_backend("counting", OneFailure)
    cfg = _config(backend="counting", batch_size=2)
    original = runner._finish

    def shard_zero_writes_first(*args):
        monkeypatch.setattr(runner, "_finish", original)
        assert run_describe(cfg, dataset, store, shard=(0, 2), show_progress=False).artifact
        return original(*args)

    monkeypatch.setattr(runner, "_finish", shard_zero_writes_first)
    late = run_describe(cfg, dataset, store, shard=(1, 2), show_progress=False)
    assert late.remaining == 0 and late.artifact and late.failures_total == 1
    data = _read(late.artifact)
    assert list(data["ids"].astype(str)[~data["ok"]]) == [failing]


def test_a_journal_left_beside_a_finished_artifact_is_folded_in(dataset, store, counting):
    """A run interrupted after another process wrote the artifact leaves a journal whose successes the
    artifact lacks; the next run has nothing to describe but must still fold them in."""
    from lmmclf.describe.artifact import answer_record

    failing = dataset.items[2]

    class OneFailure(CountingBackend):
        def describe_batch(self, jobs):
            answers = super().describe_batch(jobs)
            return [Answer(a.id, None, error="boom") if a.id == failing.id else a for a in answers]

    register_backend("counting", OneFailure)
    cfg = _config(backend="counting", batch_size=4)
    first = run_describe(cfg, dataset, store, show_progress=False)
    assert first.failures_total == 1
    key = describe_spec(cfg, dataset, store).key
    late = Journal(store.partial_path("describe", key, "shard1of2.jsonl"))
    late.append([answer_record(Answer(failing.id, answer_for(_sha(failing.path), ""), generated_tokens=7), 10)])
    register_backend("counting", CountingBackend)
    counting.calls = []
    again = run_describe(cfg, dataset, store, show_progress=False)
    assert counting.calls == [] and again.failures_total == 0
    assert _read(again.artifact)["ok"].all() and not late.path.exists()


def test_bad_shard_and_empty_selection_are_user_errors(dataset, store, counting):
    from lmmclf.describe import parse_shard

    assert parse_shard("1/4") == (1, 4)
    for bad in ("4/4", "x", "1/0", "-1/2"):
        with pytest.raises(LmmclfError, match="--shard"):
            parse_shard(bad)
    for bad in (0, -2):  # -2 used to describe all but the last two images; the config refuses both
        with pytest.raises(LmmclfError, match="describe.limit must be at least 1"):
            run_describe(_config(backend="counting", limit=bad), dataset, store, show_progress=False)
    assert counting.calls == []
    with pytest.raises(LmmclfError, match="no test items"):
        empty = DatasetIndex("e", ["a"], [i for i in dataset.items if i.split == "train"], "e")
        run_describe(_config(backend="counting", split="test"), empty, store, show_progress=False)


# -- the openai backend against the fault-injecting server ----------------------------------
@pytest.mark.parametrize("fault", ["500", "429", "timeout", "malformed", "drop"])
def test_transient_faults_are_retried(dataset, store, fault):
    with FakeOpenAIServer(script=[fault, fault], slow_seconds=1.5) as server:
        summary = run_describe(_config(server), dataset, store, show_progress=False)
        assert summary.failed == 0 and summary.retries == 2
        assert len(server.requests) == len(dataset.items) + 2
    data = _read(summary.artifact)
    assert data["ok"].all()
    assert data["raw"][0].decode() == answer_for(_sha(dataset.items[0].path), "")


def test_failures_are_recorded_reported_and_retried_next_run(dataset, store):
    bad, rejected, empty = (dataset.items[i] for i in (1, 4, 6))
    plan = {_sha(bad.path): ["500"] * 3, _sha(rejected.path): ["reject"], _sha(empty.path): ["empty"]}
    with FakeOpenAIServer(per_image=plan) as server:
        cfg = _config(server, max_retries=2)
        first = run_describe(cfg, dataset, store, show_progress=False)
        assert first.failed == 3 and first.failures_total == 3 and first.artifact
        data = _read(first.artifact)
        errors = dict(zip(data["ids"].astype(str), data["errors"].astype(str)))
        assert not data["ok"][[1, 4, 6]].any() and data["ok"].sum() == len(dataset.items) - 3
        assert errors[bad.id].startswith("gave up after 3 tries: HTTP 500")
        assert errors[rejected.id].startswith("rejected: HTTP 400")
        assert errors[empty.id] == "empty answer"
        assert data["num_descriptions"][1] == 0 and data["descriptions"][1][0] == b""
        with h5py.File(first.artifact, "r") as handle:
            assert list(handle["answered"][[1, 4, 6]]) == [False, False, True]
        before = len(server.requests)
        second = run_describe(cfg, dataset, store, show_progress=False)
        # the passing failures were asked again; the model's empty answer stands under greedy decoding
        assert len(server.requests) - before == 2
        assert second.described == 2 and second.kept_failures == 1 and second.failures_total == 1
        before = len(server.requests)
        third = run_describe(cfg, dataset, store, show_progress=False, retry_failed=True)
        assert len(server.requests) - before == 1  # exactly the failed image
    assert third.described == 1 and third.skipped == len(dataset.items) - 1 and third.failures_total == 0
    assert _read(third.artifact)["ok"].all()


def test_unreadable_image_fails_alone(dataset, store, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG broken")
    items = list(dataset.items[:3]) + [Item("broken", broken, 0, "train")]
    with FakeOpenAIServer() as server:
        summary = run_describe(_config(server), DatasetIndex("t", ["a"], items, "t"), store, show_progress=False)
    assert summary.described == 3 and summary.failed == 1
    assert "unreadable image" in summary.failure_examples[0]


def test_the_api_key_is_sent_but_never_stored_or_printed(dataset, store, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with FakeOpenAIServer(script=["echo_auth", "500", "reject"]) as server:
        cfg = _config(server, max_retries=0)
        summary = run_describe(cfg, dataset, store, show_progress=True)
        assert server.requests[0]["authorization"] == f"Bearer {SECRET}"  # the key did reach the server
    assert summary.failed == 3 and any("Bearer ***" in line for line in summary.failure_examples)
    captured = capsys.readouterr()
    assert SECRET not in captured.out + captured.err + repr(summary.to_dict())
    for path in store.root.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in describe_spec(cfg, dataset, store).to_json()


def test_openai_needs_a_base_url(dataset, store):
    with pytest.raises(LmmclfError, match="--base-url"):
        run_describe(_config(), dataset, store, show_progress=False)


def test_openai_concurrency_below_one_is_a_user_error(dataset, store):
    """--concurrency 0 (read as "auto", like --batch-size 0) used to start no request and report nothing done."""
    with FakeOpenAIServer() as server:
        for bad in (0, -2):
            with pytest.raises(LmmclfError, match="concurrency"):
                run_describe(_config(server, concurrency=bad), dataset, store, show_progress=False)
        assert server.requests == []


def test_server_is_bounded():
    import time

    import httpx

    with FakeOpenAIServer(lifetime=0.3) as server:
        time.sleep(0.8)  # it stops by itself
        with pytest.raises(httpx.TransportError):
            httpx.post(server.url + "/chat/completions", json={}, timeout=1.0)
    assert os.environ.get("OPENAI_API_KEY") is None
