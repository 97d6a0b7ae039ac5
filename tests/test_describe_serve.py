"""Issue 9, item 11: `lmmclf describe --backend openai` against the real `transformers serve`.

One server (offline, CPU, no model pinned: each request names a tiny model folder) serves the whole
module; the tiny models are built while it starts. Skipped where transformers' serving extra
(fastapi, uvicorn, openai) is not installed. The tests check what lmmclf does and writes, never the
server's log text or status codes, which change between releases (each recorded behaviour of each
version is reproduced by the fault server, lmmclf.testing.openai_server, in tests/test_answers.py
and tests/test_server_versions.py):

- a request field the server refuses (`repetition_penalty`, sent unless --repetition-penalty 1.0)
  stops the run early, exits 1 and names the setting, which then works; a server that accepts it
  describes everything;
- a `--sample` run records what it sent, never a claim that the server sampled;
- a model without a chat template fails the run (exit 1, nothing described, one message with the
  command to run again; that a plain rerun then describes everything is tested on the fault server,
  since this server keeps the processor it loaded first);
- an end token the tokenizer does not mark special never reaches a stored description.
"""

from __future__ import annotations

import json
import shlex
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



@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(server, {"taught", "leaky", "no_template"} -> model folder): the models are built while the server starts."""
    from lmmclf.testing.teach import teach_numbered_lists
    from lmmclf.testing.tiny_lmm import make_tiny_llava

    root = tmp_path_factory.mktemp("serve")
    with transformers_serve(root / "server.log", wait=False, threads=1) as server:
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


def _rows(summary):
    with h5py.File(summary["artifact"]) as handle:
        ids = list(handle["ids"].asstr()[...])
        raw = dict(zip(ids, handle["raw"].asstr()[...]))
        kept = {i: list(d[:n]) for i, d, n in zip(ids, handle["descriptions"].asstr()[...], handle["num_descriptions"][...])}
        attrs = dict(handle.attrs)
    return raw, kept, attrs


def test_a_refused_request_field_stops_the_run_and_the_named_setting_works(runner, pets, served):
    server, models = served
    result = _describe(runner, server, models["taught"], "--concurrency", "1")  # default repetition penalty: 1.05
    if result.exit_code == 0:  # a server that accepts repetition_penalty: it was sent and everything is described
        summary = json.loads(result.stdout)
        assert summary["described"] == 6
        assert json.loads(_rows(summary)[2]["resolved_sent"])["repetition_penalty"] == 1.05
        return
    assert result.exit_code == 1, result.output
    error = " ".join(result.stderr.split("Error:", 1)[1].split())
    assert "Stopped after the first 3" in error and "--repetition-penalty 1.0`" in error
    assert "described" not in result.stdout or json.loads(result.stdout)["described"] == 0

    hint = error.split("`")[-2]  # the command the error names, run as written
    assert hint.startswith("lmmclf describe pets") and "--repetition-penalty 1.0" in hint
    fixed = runner.invoke(app, [*shlex.split(hint)[1:], "--json"])
    assert fixed.exit_code == 0, fixed.output
    summary = json.loads(fixed.stdout)
    assert summary["described"] == 6 and summary["failed"] == 0
    _, kept, attrs = _rows(summary)
    assert all(rows for rows in kept.values())  # every image has descriptions (the taught model writes a list)
    assert "repetition_penalty" not in json.loads(attrs["resolved_sent"])


def test_sampling_is_recorded_as_requested_never_as_done(runner, pets, served):
    server, models = served
    greedy = _describe(runner, server, models["taught"], "--repetition-penalty", "1.0")
    sampled = _describe(runner, server, models["taught"], "--repetition-penalty", "1.0", "--sample", "--top-p", "0.5", "--seed", "7")
    assert greedy.exit_code == 0 and sampled.exit_code == 0, sampled.output
    _, _, greedy_attrs = _rows(json.loads(greedy.stdout))
    _, _, sampled_attrs = _rows(json.loads(sampled.stdout))
    assert json.loads(sampled_attrs["resolved_sent"]) == {"max_tokens": 40, "temperature": 1.0, "top_p": 0.5, "seed": 7}
    assert sampled_attrs["resolved_sampling"] == "requested; the server may ignore it"
    assert json.loads(greedy_attrs["resolved_sent"]) == {"max_tokens": 40, "temperature": 0.0, "top_p": 1.0}
    assert greedy_attrs["resolved_sampling"] == "greedy (temperature 0)"


def test_a_model_without_a_chat_template_fails_the_run_in_one_message(runner, pets, served, tmp_path):
    server, models = served
    model = models["no_template"]
    config = tmp_path / "exp.yaml"
    config.write_text("describe:\n  retry_backoff: 0\n  max_retries: 1\n")
    args = ["-c", str(config), "describe", "pets", "--backend", "openai", "--base-url", server.url, "--model", str(model),
            "--repetition-penalty", "1.0", "--concurrency", "1", "--max-new-tokens", "40", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert json.loads(result.stdout)["described"] == 0
    error = " ".join(result.stderr.split("Error:", 1)[1].split())
    assert "Traceback" not in result.stderr and f"lmmclf -c {config} describe pets" in error


def test_an_end_token_left_in_the_answer_never_reaches_a_description(runner, pets, served):
    server, models = served
    result = _describe(runner, server, models["leaky"], "--repetition-penalty", "1.0")
    assert result.exit_code == 0, result.output
    _, kept, _ = _rows(json.loads(result.stdout))
    assert all(rows and not any("<|" in d for d in rows) for rows in kept.values())
