"""Issue 9, items 7-11: what an LMM said is validated, parser changes take effect by re-parsing,
and real servers' quirks (transformers serve's 422, a 500 for every request) stop a run early."""

from __future__ import annotations

import hashlib
import json

import h5py
import pytest

from lmmclf.cli.app import app
from lmmclf.describe.parse import PARSER_VERSION, parse_answer, parse_descriptions
from lmmclf.testing.layouts import make_imagefolder
from lmmclf.testing.openai_server import TRANSFORMERS_SERVE_FIELDS, FakeOpenAIServer


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def pets(tmp_path):
    from lmmclf.datasets import register

    root = make_imagefolder(tmp_path / "pets", n_train=2, n_test=2)
    register("pets", root, "imagefolder")
    return root


def _describe(runner, server, *extra):
    return runner.invoke(app, ["describe", "pets", "--backend", "openai", "--base-url", server.url, "--model", "m",
                               "--num-descriptions", "10", "--json", *extra])


# -- item 8: parser cases --------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("1. A man in a park.\n2. A dog in a stadium.\nI hope these help!", ["A man in a park.", "A dog in a stadium."]),
    ("1. **Setting**:\n   - A gym.\n2. **Athlete**:\n   - A woman.", ["Setting: A gym.", "Athlete: A woman."]),
    ("<think>They want 2.\n1. not this\n2. nor this</think>\n1. A man\n2. A dog", ["A man", "A dog"]),
    ("(1) A man (2) A dog", ["A man", "A dog"]),
    ("Description 1: A man\nDescription 2: A dog", ["A man", "A dog"]),
    ("1. A man<|video_pad|>\n2. A dog<|im_end|>", ["A man", "A dog"]),
    ("1. A man\n   walking a dog\n2. A forest", ["A man walking a dog", "A forest"]),  # continuation still joins
])
def test_parser_cases(text, expected):
    assert parse_descriptions(text, 10) == expected
    assert parse_answer(text, 10).descriptions == expected


# -- item 7: validation ----------------------------------------------------------------------------
@pytest.mark.parametrize("text, reason", [
    ("I'm sorry, I can't help with that.", "the model refused"),
    ("Sure! Here are 10 descriptions:", "no description in the answer"),
    ("<|video_pad|><|im_end|>", "special tokens"),
    ("<think>They want ten.</think>", "only reasoning"),
])
def test_answers_without_descriptions_are_failures_with_a_reason(text, reason):
    parsed = parse_answer(text, 10)
    assert parsed.descriptions == [] and reason in parsed.error


def test_a_truncated_answer_keeps_its_complete_items_and_drops_the_cut_one():
    text = "Sure:\n1. A vaulter.\n2. A stadium.\n3. The pole is bending under the ath"
    parsed = parse_answer(text, 10, truncated=True)
    assert parsed.descriptions == ["A vaulter.", "A stadium."] and parsed.dropped_cut
    assert parse_answer(text, 10).descriptions[-1].endswith("ath")  # not cut: kept whole
    assert "--max-new-tokens" in parse_answer("Sure! Here are 10:\n\n1", 10, truncated=True).error


def test_refused_cut_and_listless_answers_through_the_cli(runner, pets):
    images = sorted(pets.rglob("*.png"))
    plan = {_sha(images[0]): ["answer:refusal"], _sha(images[1]): ["answer:length"], _sha(images[2]): ["answer:preamble_only"],
            _sha(images[3]): ["answer:special_tokens"], _sha(images[4]): ["answer:think"], _sha(images[5]): ["answer:sentence"]}
    with FakeOpenAIServer(per_image=plan) as server:
        result = _describe(runner, server)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["truncated"] == 2 and summary["failed"] == 2  # the single sentence is a caption now
    with h5py.File(summary["artifact"]) as handle:
        ids = list(handle["ids"].asstr()[...])
        errors = dict(zip(ids, handle["errors"].asstr()[...]))
        rows = {i: list(d[: n]) for i, d, n in zip(ids, handle["descriptions"].asstr()[...], handle["num_descriptions"][...])}
        cut = dict(zip(ids, handle["truncated"][...]))
        assert handle.attrs["parser_version"] == PARSER_VERSION
    by_image = {_sha(p): p for p in images}
    ident = {sha: next(i for i in ids if i.endswith(by_image[sha].name)) for sha in plan}
    fault = {plan[sha][0].removeprefix("answer:"): ident[sha] for sha in plan}
    assert errors[fault["refusal"]].startswith("the model refused")
    assert errors[fault["preamble_only"]].startswith("the answer was cut by the token budget")
    assert rows[fault["sentence"]] == ["A scene with some detail."] and not errors[fault["sentence"]]
    assert cut[fault["length"]] and rows[fault["length"]] and not rows[fault["length"]][-1].endswith("detai")
    assert all("<|" not in d for d in rows[fault["special_tokens"]]) and rows[fault["special_tokens"]]
    assert not any("not this" in d for d in rows[fault["think"]])


# -- item 9: a parser change takes effect by re-parsing, not by describing again -----------------
def test_the_summary_names_cut_answers_and_the_flag_to_raise(runner, pets):
    images = sorted(pets.rglob("*.png"))
    with FakeOpenAIServer(per_image={_sha(images[0]): ["answer:length"]}) as server:
        result = runner.invoke(app, ["describe", "pets", "--backend", "openai", "--base-url", server.url, "--model", "m",
                                     "--max-new-tokens", "100"])
    text = " ".join(result.stderr.split())
    assert result.exit_code == 0 and "1 answers were cut by the token budget" in text and "--max-new-tokens 200" in text


def test_an_older_parse_is_redone_on_read_and_the_describe_key_does_not_change(runner, pets, monkeypatch):
    from lmmclf.describe import parse
    from lmmclf.embed.texts import read_descriptions

    with FakeOpenAIServer() as server:
        first = _describe(runner, server)
    path = json.loads(first.stdout)["artifact"]
    with h5py.File(path, "r+") as handle:  # what an older parser stored: a refusal kept as a description
        raw = handle["raw"][...]
        raw[0] = "I'm sorry, I can't help with that."
        handle["raw"][...] = raw
        handle.attrs["parser_version"] = 1
    with h5py.File(path) as handle:
        texts = read_descriptions(handle).texts
    assert texts[0] == [] and all(texts[1:])
    monkeypatch.setattr(parse, "PARSER_VERSION", PARSER_VERSION + 1)  # a newer parser: same describe key
    with FakeOpenAIServer() as server:
        again = _describe(runner, server)
        assert not server.requests  # nothing described again
    assert json.loads(again.stdout)["artifact"] == path


# -- items 10 and 11: servers ----------------------------------------------------------------------
def test_transformers_serve_rejecting_repetition_penalty_stops_and_names_the_setting(runner, pets):
    with FakeOpenAIServer(accepted_fields=TRANSFORMERS_SERVE_FIELDS) as server:
        result = _describe(runner, server, "--concurrency", "1")
        asked = len(server.requests)
    assert result.exit_code == 1, result.output
    assert asked == 3  # the first few, not all 12
    error = " ".join(result.stderr.split("Error:", 1)[1].split())
    assert "Unexpected fields" in error and "--repetition-penalty 1.0`" in error and "Stopped after the first 3" in error
    with FakeOpenAIServer(accepted_fields=TRANSFORMERS_SERVE_FIELDS) as server:
        fixed = _describe(runner, server, "--concurrency", "1", "--repetition-penalty", "1.0")
    assert fixed.exit_code == 0, fixed.output
    assert all("repetition_penalty" not in r["fields"] for r in server.requests)


def test_a_server_answering_500_to_everything_stops_early(runner, pets, tmp_path):
    config = tmp_path / "exp.yaml"
    config.write_text("describe:\n  retry_backoff: 0\n  max_retries: 6\n")
    with FakeOpenAIServer(script=["500"] * 200) as server:
        result = runner.invoke(app, ["-c", str(config), "describe", "pets", "--backend", "openai", "--base-url", server.url,
                                     "--model", "m", "--concurrency", "1"])
        asked = len(server.requests)
    assert result.exit_code == 1, result.output
    assert asked <= 7 + 3  # the first image's 7 tries, then one each for three more: not 7 x 12 (84)
    assert "Stopped after the first 3" in " ".join(result.stderr.split())


def test_what_was_sent_is_recorded_not_a_claim_of_sampling(runner, pets):
    with FakeOpenAIServer() as server:
        result = _describe(runner, server, "--sample", "--seed", "3")
    with h5py.File(json.loads(result.stdout)["artifact"]) as handle:
        sent = json.loads(handle.attrs["resolved_sent"])
        assert sent["seed"] == 3 and "temperature" in sent
        assert "may ignore" in handle.attrs["resolved_sampling"]


def test_a_server_pinned_to_another_model_stops_the_run_and_names_its_model(runner, pets):
    """`transformers serve MODEL` answers any other model name with 400 "Server is pinned to 'MODEL'"."""
    with FakeOpenAIServer(accepted_fields=TRANSFORMERS_SERVE_FIELDS, pinned_model="/models/llava") as server:
        result = _describe(runner, server, "--concurrency", "1", "--repetition-penalty", "1.0")
        asked = len(server.requests)
    assert result.exit_code == 1, result.output
    assert asked == 3
    error = " ".join(result.stderr.split("Error:", 1)[1].split())
    assert "Server is pinned to '/models/llava'" in error and "--model /models/llava " in error
    hint = error.split("`")[-2]  # the retry command: the model replaced, not a second --model after the first
    assert hint.count("--model") == 1 and hint.startswith("lmmclf describe pets")
    with FakeOpenAIServer(accepted_fields=TRANSFORMERS_SERVE_FIELDS, pinned_model="m") as server:
        assert _describe(runner, server, "--repetition-penalty", "1.0").exit_code == 0


def test_a_bare_internal_server_error_for_every_request_stops_early_and_points_at_the_server_log(runner, pets, tmp_path):
    """What `transformers serve` answers when serving raises (no chat template, a model it cannot load)."""
    config = tmp_path / "exp.yaml"
    config.write_text("describe:\n  retry_backoff: 0\n  max_retries: 1\n")
    with FakeOpenAIServer(script=["500_plain"] * 200) as server:
        result = runner.invoke(app, ["-c", str(config), "describe", "pets", "--backend", "openai", "--base-url", server.url,
                                     "--model", "m", "--concurrency", "1"])
        asked = len(server.requests)
    assert result.exit_code == 1, result.output
    assert asked == 2 + 2 + 1 + 1  # image 1's 2 tries; image 2's second try is the 4th alike: then one each for two more
    error = " ".join(result.stderr.split("Error:", 1)[1].split())
    assert "HTTP 500: Internal Server Error" in error and "Stopped after the first 3" in error and "server's log" in error
