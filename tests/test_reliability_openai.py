"""Issue 8, the openai backend against a hostile server: the API key never leaks, odd replies,
trickles, huge answers and unfixable errors are that image's failure, never the run's."""

from __future__ import annotations

import json
import os
import time

import h5py
import pytest

from lmmclf.cli.app import app
from lmmclf.config import ExperimentConfig
from lmmclf.datasets import register
from lmmclf.datasets.base import DatasetIndex, Item
from lmmclf.describe import run_describe
from lmmclf.describe.backends.openai_key import FRAGMENT
from lmmclf.journal import Journal
from lmmclf.testing.layouts import make_imagefolder
from lmmclf.testing.openai_server import ODD_SHAPES, FakeOpenAIServer

KEY = "sk-proj-Ab3/x+Yz9Qw_LEAKCANARY-7Hq2Lm5Np8Rs"


@pytest.fixture
def pets(tmp_path):
    root = make_imagefolder(tmp_path / "pets", n_train=2, n_test=1)
    register("pets", root, "imagefolder")
    return root


@pytest.fixture
def dataset(tmp_path):
    root = make_imagefolder(tmp_path / "images", n_train=1, n_test=1)
    items = [Item(str(p.relative_to(root).with_suffix("")), p, "abc".index(p.parent.name), p.parts[-3])
             for p in sorted(root.rglob("*.png")) if p.parts[-3] == "train"]
    return DatasetIndex("toy", ["a", "b", "c"], items, fingerprint="toy-v1")


def _config(server, **values):
    base = {"backend": "openai", "model": "m", "concurrency": 3, "timeout": 2.0, "retry_backoff": 0.01, "base_url": server.url}
    return ExperimentConfig().override("describe", **{**base, **values})


def _describe(runner, server, *extra, config=None):
    head = ["-c", str(config)] if config else []
    return runner.invoke(app, [*head, "describe", "pets", "--backend", "openai", "--base-url", server.url, "--model", "m",
                               "--split", "train", *extra])


def _fragments(key: str) -> list[str]:
    return [key[i:i + FRAGMENT] for i in range(len(key) - FRAGMENT + 1)]


def _leaks(text: str, key: str = KEY) -> list[str]:
    return [fragment for fragment in _fragments(key) if fragment in text]


@pytest.fixture
def journaled(monkeypatch):
    """Every record the describe loop appends to its journal (which is removed once the artifact is written)."""
    seen: list[dict] = []
    append = Journal.append

    def spy(self, records):
        seen.extend(records)
        return append(self, records)

    monkeypatch.setattr(Journal, "append", spy)
    return seen


def _cache_bytes(isolated_user_dirs) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(isolated_user_dirs["cache"].rglob("*")) if path.is_file())


# -- item 2: the key --------------------------------------------------------------------------
def test_a_key_with_surrounding_whitespace_is_stripped_and_works(runner, pets, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", f"  {KEY}\r\n")  # copied from a Windows .env
    with FakeOpenAIServer() as server:
        result = _describe(runner, server, "--json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["failed"] == 0
        assert {entry["authorization"] for entry in server.requests} == {f"Bearer {KEY}"}


@pytest.mark.parametrize("bad", [f"{KEY[:10]}\r{KEY[10:]}", f"{KEY}\x07", f"\x1b{KEY}", f"{KEY[:12]}é{KEY[12:]}", f"{KEY}\udcff",
                                 f"{KEY}\x7f", f"{KEY[:5]}\u200b{KEY[5:]}"])
def test_a_key_no_header_can_carry_is_one_sentence_before_any_request(runner, pets, monkeypatch, tmp_path, bad):
    config = tmp_path / "exp.yaml"
    config.write_text("describe:\n  api_key_env: MY_LMM_KEY\n")
    monkeypatch.setenv("MY_LMM_KEY", bad)
    with FakeOpenAIServer() as server:
        result = runner.invoke(app, ["-c", str(config), "describe", "pets", "--backend", "openai", "--base-url", server.url,
                                     "--model", "m", "--split", "train"])
        assert server.requests == []
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "$MY_LMM_KEY" in result.stderr and "describe.api_key_env" in result.stderr
    assert not _leaks(result.output)


@pytest.mark.parametrize("status, offset", [(400, 0), (400, 150), (400, 185), (400, 195), (400, 230), (500, 185)])
def test_an_echoed_key_leaks_nowhere_wherever_the_excerpt_cuts_it(runner, pets, monkeypatch, journaled, isolated_user_dirs,
                                                                  tmp_path, offset, status):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    config = tmp_path / "exp.yaml"
    config.write_text("describe:\n  max_retries: 1\n  retry_backoff: 0.01\n  concurrency: 1\n")
    with FakeOpenAIServer(script=["echo_auth_at"] * 2, echo_offset=offset, echo_status=status) as server:
        result = _describe(runner, server, config=config)  # the console shows the failure's reason
        assert result.exit_code in (0, 1) and "Traceback" not in result.output
        plain = _describe(runner, server, "--json", config=config)  # the failed image again
        assert server.requests[0]["authorization"] == f"Bearer {KEY}"  # the key did reach the server
    errors = [record.get("error", "") for record in journaled]
    assert any(error.startswith("rejected: HTTP 400" if status == 400 else "gave up after") for error in errors), errors
    if offset < 200:  # the key was inside the quoted excerpt: masked, not cut
        assert any("*" in error for error in errors), errors
    everything = result.output + plain.output + json.dumps(journaled) + repr(_cache_bytes(isolated_user_dirs))
    assert not _leaks(everything)


def test_every_echoed_form_of_the_key_is_scrubbed(runner, pets, monkeypatch, journaled, isolated_user_dirs):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with FakeOpenAIServer(script=["echo_auth_forms"], echo_status=400) as server:
        result = _describe(runner, server, "--json")
    assert "rejected: HTTP 400" in json.dumps(journaled)
    assert not _leaks(result.output + json.dumps(journaled) + repr(_cache_bytes(isolated_user_dirs)))


# -- item 8: odd replies, deadlines, unfixable errors, huge answers ----------------------------
MODEL_ANSWERS = {"content_null"}  # the model answered nothing: final under greedy decoding
KEPT = {"usage_string", "tokens_string", "tokens_float", "tokens_huge", "tokens_list", "parts_ok", "nul_in_text"}


@pytest.mark.parametrize("shape", sorted(ODD_SHAPES))
def test_valid_json_of_an_odd_shape_is_that_images_failure(dataset, store, shape):
    with FakeOpenAIServer(script=[f"odd:{shape}"]) as server:
        summary = run_describe(_config(server), dataset, store, show_progress=False)
        assert len(server.requests) == len(dataset.items)  # no retry: the same server answers the same way
    with h5py.File(summary.artifact, "r") as handle:
        ok, errors, raw = handle["ok"][...], handle["errors"].asstr()[...], handle["raw"].asstr()[...]
        tokens = handle["generated_tokens"][...]
    if shape in KEPT:  # usage is bookkeeping; a NUL or lone surrogate becomes U+FFFD
        assert summary.failed == 0 and ok.all()
        assert (tokens >= 0).all() and (tokens < 2**31).all()
        assert all("\x00" not in text for text in raw)
    else:
        assert summary.failed == 1 and ok.sum() == len(dataset.items) - 1
        reason = next(error for error in errors if error)
        with h5py.File(summary.artifact, "r") as handle:
            answered = handle["answered"][...][ok == 0][0]
        # a malformed reply is the server's (retried next run); no content, a refusal, a filter: the model's answer
        assert (reason.startswith("rejected: ") and not answered) or (answered and shape in MODEL_ANSWERS), (reason, answered)
        assert len(reason.removeprefix("rejected: ")) > 5, reason


@pytest.mark.parametrize("fault", ["trickle", "trickle_headers"])
def test_describe_timeout_is_a_deadline_for_the_whole_request(dataset, store, fault):
    items = DatasetIndex("one", ["a"], dataset.items[:1], "one")
    with FakeOpenAIServer(script=[fault], trickle_interval=0.1, lifetime=20) as server:
        started = time.monotonic()
        summary = run_describe(_config(server, timeout=1.0, max_retries=0), items, store, show_progress=False)
        elapsed = time.monotonic() - started
    assert summary.failed == 1 and "describe.timeout (1 s for the whole request)" in summary.failure_examples[0]
    assert elapsed < 1.0 + 1.5, elapsed


@pytest.mark.parametrize("status, tries", [(400, 1), (401, 1), (403, 1), (404, 1), (413, 1), (422, 1), (301, 1),
                                           (408, 3), (409, 3), (429, 3), (503, 3)])
def test_only_errors_another_try_can_fix_are_retried(dataset, store, status, tries):
    items = DatasetIndex("one", ["a"], dataset.items[:1], "one")
    with FakeOpenAIServer(script=["echo_auth_at"] * 3, echo_status=status) as server:
        summary = run_describe(_config(server, max_retries=2), items, store, show_progress=False)
        assert len(server.requests) == tries
    assert summary.failed == 1 and f"HTTP {status}" in summary.failure_examples[0]


def test_a_base_url_no_request_can_use_is_one_sentence(runner, pets):
    for url in ("ftp://127.0.0.1/v1", "localhost:8000/v1", "http:///v1"):
        result = runner.invoke(app, ["describe", "pets", "--backend", "openai", "--base-url", url, "--model", "m"])
        assert result.exit_code == 1 and "must be an http:// or https:// URL" in result.stderr, url
        assert "Traceback" not in result.output and "--base-url (describe.base_url)" in result.stderr, url


def test_a_huge_answer_is_capped_and_fails_that_image(dataset, store):
    with FakeOpenAIServer(script=["huge"], huge_bytes=20 * 2**20) as server:
        summary = run_describe(_config(server), dataset, store, show_progress=False)
        assert len(server.requests) == len(dataset.items)  # not retried
    assert summary.failed == 1 and "4 MiB cap" in summary.failure_examples[0]
    assert os.path.getsize(summary.artifact) < 2**20
