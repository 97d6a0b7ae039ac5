"""Issue 9, item 11: `lmmclf describe --backend openai` against the real `transformers serve`.

One server (offline, CPU, no model pinned: each request names a tiny model folder) serves the whole
module; the tiny models are built while it starts. Skipped where transformers' serving extra
(fastapi, uvicorn, openai) is not installed. What it checks, each a recorded quirk of that server
(also reproduced by the fault server, lmmclf.testing.openai_server, in tests/test_answers.py):

- it answers `repetition_penalty` (sent unless --repetition-penalty 1.0) with HTTP 422: the run
  stops after the first 3 images, exits 1 and names `--repetition-penalty 1.0`, which works;
- it ignores temperature/top_p unless the model's generation config samples (it logs so): a
  `--sample` run records what it sent, never that it sampled;
- a model without a chat template is a bare 500 for every request: the run stops early;
- an end token the tokenizer does not mark special is left in the answer: the parser strips it.
"""

from __future__ import annotations

import json
import shutil

import h5py
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("openai")

from lmmclf.cli.app import app
from lmmclf.testing.transformers_serve import (
    leak_token,
    serve_available,
    transformers_serve,
)

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not serve_available(), reason="transformers serve is not available")]

ACCESS = '"POST /v1/chat/completions HTTP/1.1"'  # uvicorn's access log line of one request


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(server, {"taught", "leaky", "no_template"} -> model folder): the models are built while the server starts."""
    from lmmclf.testing.teach import teach_numbered_lists
    from lmmclf.testing.tiny_lmm import make_tiny_llava

    root = tmp_path_factory.mktemp("serve")
    # --log-level info: transformers' notes on ignored generation flags reach the log
    with transformers_serve(root / "server.log", wait=False, threads=1, extra_args=("--log-level", "info")) as server:
        taught = teach_numbered_lists(make_tiny_llava(root / "taught"))
        leaky = leak_token(shutil.copytree(taught, root / "leaky"), "<|video_pad|>")
        no_template = shutil.copytree(taught, root / "no-template")
        (no_template / "chat_template.jinja").unlink()
        server.wait_ready(timeout=180)
        yield server, {"taught": taught, "leaky": leaky, "no_template": no_template}


@pytest.fixture
def pets(tmp_path):
    from lmmclf.datasets import register
    from lmmclf.testing.layouts import make_imagefolder

    root = make_imagefolder(tmp_path / "pets", class_names=("a", "b"), n_train=2, n_test=1)  # 6 images
    register("pets", root, "imagefolder")
    return root


def _describe(runner, server, model, *extra):
    return runner.invoke(app, ["describe", "pets", "--backend", "openai", "--base-url", server.url, "--model", str(model),
                               "--max-new-tokens", "40", "--json", *extra])


def _requests(server, status: int) -> int:
    return sum(1 for line in server.log_text().splitlines() if ACCESS in line and f" {status} " in line)


def _rows(summary):
    with h5py.File(summary["artifact"]) as handle:
        ids = list(handle["ids"].asstr()[...])
        raw = dict(zip(ids, handle["raw"].asstr()[...]))
        kept = {i: list(d[:n]) for i, d, n in zip(ids, handle["descriptions"].asstr()[...], handle["num_descriptions"][...])}
        attrs = dict(handle.attrs)
    return raw, kept, attrs


def test_repetition_penalty_is_refused_the_run_stops_and_the_named_setting_works(runner, pets, served):
    server, models = served
    before = _requests(server, 422)
    result = _describe(runner, server, models["taught"], "--concurrency", "1")  # default repetition penalty: 1.05
    assert result.exit_code == 1, result.output
    assert _requests(server, 422) - before == 3  # the first 3 images, not all 6
    error = " ".join(result.stderr.split("Error:", 1)[1].split())
    assert "Unexpected fields in the request: {'repetition_penalty'}" in error
    assert "Stopped after the first 3" in error and "--repetition-penalty 1.0`" in error

    fixed = _describe(runner, server, models["taught"], "--repetition-penalty", "1.0")
    assert fixed.exit_code == 0, fixed.output
    summary = json.loads(fixed.stdout)
    assert summary["described"] == 6 and summary["failed"] == 0
    _, kept, attrs = _rows(summary)
    assert all(rows for rows in kept.values())  # every image has descriptions (the taught model writes a list)
    assert "repetition_penalty" not in json.loads(attrs["resolved_sent"])


def test_sampling_the_server_ignores_is_not_reported_as_sampled(runner, pets, served):
    server, models = served
    greedy = _describe(runner, server, models["taught"], "--repetition-penalty", "1.0")
    sampled = _describe(runner, server, models["taught"], "--repetition-penalty", "1.0", "--sample", "--top-p", "0.5", "--seed", "7")
    assert greedy.exit_code == 0 and sampled.exit_code == 0, sampled.output
    greedy_raw, _, greedy_attrs = _rows(json.loads(greedy.stdout))
    sampled_raw, _, sampled_attrs = _rows(json.loads(sampled.stdout))
    # the server set top_p but left do_sample off (the model's generation config): it decoded greedily
    assert "`do_sample` is not set to `True`. However, `top_p` is set to `0.5`" in server.log_text()
    assert sampled_raw == greedy_raw
    assert json.loads(sampled_attrs["resolved_sent"]) == {"max_tokens": 40, "temperature": 1.0, "top_p": 0.5, "seed": 7}
    assert sampled_attrs["resolved_sampling"] == "requested; the server may ignore it"
    assert greedy_attrs["resolved_sampling"] == "greedy (temperature 0)"


def test_a_model_without_a_chat_template_stops_the_run_early(runner, pets, served, tmp_path):
    server, models = served
    config = tmp_path / "exp.yaml"
    config.write_text("describe:\n  retry_backoff: 0\n  max_retries: 2\n")
    before = _requests(server, 500)
    result = runner.invoke(app, ["-c", str(config), "describe", "pets", "--backend", "openai", "--base-url", server.url,
                                 "--model", str(models["no_template"]), "--repetition-penalty", "1.0", "--concurrency", "1"])
    assert result.exit_code == 1, result.output
    assert _requests(server, 500) - before == 3 + 3  # the first image's 3 tries, then one each for three more: not 6 x 3
    error = " ".join(result.stderr.split("Error:", 1)[1].split())
    assert "HTTP 500: Internal Server Error" in error and "Stopped after the first 3" in error and "server's log" in error
    assert "Cannot use apply_chat_template" in server.log_text()  # the cause, in the server's log only


def test_an_end_token_left_in_the_answer_is_stripped(runner, pets, served):
    server, models = served
    result = _describe(runner, server, models["leaky"], "--repetition-penalty", "1.0")
    assert result.exit_code == 0, result.output
    raw, kept, _ = _rows(json.loads(result.stdout))
    assert all(text.endswith("<|video_pad|>") for text in raw.values())  # the server left it in every answer
    assert all(rows and not any("<|" in d for d in rows) for rows in kept.values())
