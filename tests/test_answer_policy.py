"""Issue 22: describe keeps what the model says (lists, prose, captions, cut answers), records each answer's
shape, strict mode, final answers under greedy decoding, and later stages that follow the stored descriptions."""

from __future__ import annotations

import hashlib
import json

import h5py
import pytest
import yaml

from lmmclf.cli.app import app
from lmmclf.describe.parse import parse_answer, split_sentences
from lmmclf.testing.layouts import make_imagefolder
from lmmclf.testing.openai_server import FakeOpenAIServer

LLAVA_PARAGRAPH = ("The image shows a man in a red shirt riding a brown horse along a sandy beach. Waves break behind him "
                   "under a cloudy sky. A dog runs beside the horse.")


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- the parser --------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, truncated, shape, expected", [
    ("a man riding a horse on the beach\n", False, "single", ["a man riding a horse on the beach"]),  # BLIP-2 OPT
    ("cat sitting on a couch.", False, "single", ["cat sitting on a couch."]),  # PaliGemma
    (LLAVA_PARAGRAPH, False, "prose", ["The image shows a man in a red shirt riding a brown horse along a sandy beach.",
                                      "Waves break behind him under a cloudy sky.", "A dog runs beside the horse."]),
    ("1. **Rider**: A man on a horse.\n2. **Setting**: A beach.", False, "list", ["Rider: A man on a horse.", "Setting: A beach."]),  # Qwen
    (LLAVA_PARAGRAPH[:-10], True, "prose", ["The image shows a man in a red shirt riding a brown horse along a sandy beach.",
                                           "Waves break behind him under a cloudy sky."]),
    ("The image shows a man in a red shirt riding a bro", True, "cut", ["The image shows a man in a red shirt riding a bro"]),
    ("1. A man riding a hor", True, "cut", ["A man riding a hor"]),
    ("Sure! The image shows a cat. It sleeps on a mat.\n\nI hope this helps!", False, "prose", ["The image shows a cat.", "It sleeps on a mat."]),
    ("Sure, here is a description: The image shows a cat.", False, "single", ["The image shows a cat."]),
])
def test_each_shape_keeps_what_the_model_said(text, truncated, shape, expected):
    parsed = parse_answer(text, 10, truncated=truncated)
    assert (parsed.shape, parsed.descriptions, parsed.error) == (shape, expected, "")


def test_at_most_k_sentences_are_kept():
    text = " ".join(f"Sentence number {i} is here." for i in range(1, 16))
    assert len(parse_answer(text, 10).descriptions) == 10 and parse_answer(text, 3).descriptions[-1] == "Sentence number 3 is here."


@pytest.mark.parametrize("text, sentences", [
    ("Dr. Smith walks a beagle. It barks.", ["Dr. Smith walks a beagle.", "It barks."]),
    ("A dog, e.g. a beagle, sits. A cat, i.e. a tabby, naps.", ["A dog, e.g. a beagle, sits.", "A cat, i.e. a tabby, naps."]),
    ("The pole is 3.5 m high. It bends.", ["The pole is 3.5 m high.", "It bends."]),
    ("He waited... Then he left. It rained… Then it stopped.", ["He waited... Then he left.", "It rained… Then it stopped."]),
    ('A sign reads "Stop. Go back." A car waits.', ['A sign reads "Stop. Go back."', "A car waits."]),
    ("Painted by J. R. Smith in 1900. Oil on canvas.", ["Painted by J. R. Smith in 1900.", "Oil on canvas."]),
    ("Is it a dog? Yes! A small one.", ["Is it a dog?", "Yes!", "A small one."]),
])
def test_the_sentence_splitter_leaves_abbreviations_numbers_ellipses_and_quotations_whole(text, sentences):
    assert split_sentences(text) == sentences


@pytest.mark.parametrize("text, reason", [
    ("I'm sorry, but I can't describe this image. It may be sensitive.", "the model refused"),
    ("", "empty answer"),
    ("<think>The user wants ten descriptions.</think>", "only reasoning"),
])
def test_refusals_empty_and_reasoning_only_answers_stay_failures(text, reason):
    parsed = parse_answer(text, 10)
    assert parsed.descriptions == [] and parsed.error.startswith(reason)


def test_strict_mode_counts_only_lists_and_names_the_shape():
    assert parse_answer("1. a\n2. b", 10, require_list=True).descriptions == ["a", "b"]
    assert "prose" in parse_answer(LLAVA_PARAGRAPH, 10, require_list=True).error
    assert "single caption" in parse_answer("a cat on a mat", 10, require_list=True).error


# -- the command line ----------------------------------------------------------------------------
@pytest.fixture
def pets(tmp_path):
    from lmmclf.datasets import register

    root = make_imagefolder(tmp_path / "pets", n_train=1, n_test=1)  # 6 images, one per answer shape
    register("pets", root, "imagefolder")
    return root


SHAPE_PLAN = ["answer:caption", "answer:paragraph", "answer:qwen_list", "answer:cut_paragraph", "answer:cut_early", "answer:refusal"]


def _shape_plan(root) -> dict[str, list[str]]:
    images = sorted(root.rglob("*.png"))
    return {_sha(image): [fault] * 20 for image, fault in zip(images, SHAPE_PLAN)}


def _describe(runner, server, *extra, cache=None):
    prefix = ["--cache-dir", str(cache)] if cache else []
    return runner.invoke(app, [*prefix, "describe", "pets", "--backend", "openai", "--base-url", server.url, "--model", "m",
                               "--json", *extra])


def test_the_shapes_real_families_give_are_kept_and_counted(runner, pets):
    with FakeOpenAIServer(per_image=_shape_plan(pets)) as server:
        result = _describe(runner, server)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["shapes"] == {"list": 1, "prose": 2, "single": 1, "cut": 1}
    assert summary["failures_total"] == 1 and summary["usable"] == 5
    with h5py.File(summary["artifact"]) as handle:
        shapes = list(handle["shapes"].asstr()[...])
        ok = list(handle["ok"][...])
        counts = list(handle["num_descriptions"][...])
    assert sorted(shapes) == ["", "cut", "list", "prose", "prose", "single"]
    by_shape = dict(zip(shapes, counts))
    assert by_shape["list"] == 10 and by_shape["prose"] >= 2 and by_shape["single"] == 1 and by_shape["cut"] == 1
    assert ok.count(False) == 1


def test_the_table_and_cache_info_show_shapes_and_most_cut_says_to_raise_the_budget(runner, pets):
    plan = {_sha(image): ["answer:cut_early"] * 5 for image in sorted(pets.rglob("*.png"))[:4]}
    with FakeOpenAIServer(per_image=plan) as server:
        result = runner.invoke(app, ["describe", "pets", "--backend", "openai", "--base-url", server.url, "--model", "m",
                                     "--max-new-tokens", "50"])
    text = " ".join(result.stderr.replace("│", " ").split())
    assert result.exit_code == 0, result.output
    assert "answer shapes list 2, prose 0, single 0, cut 4" in text
    assert "Most answers (4 of 6) were cut" in text and "--max-new-tokens 100" in text
    listing = runner.invoke(app, ["cache", "ls", "--json"])
    rows = [row for row in json.loads(listing.stdout) if row["stage"] == "describe"]
    assert rows[0]["shapes"] == {"list": 2, "prose": 0, "single": 0, "cut": 4}
    info = runner.invoke(app, ["cache", "info", rows[0]["key"][:12]])
    assert info.exit_code == 0 and "answer shapes: list 2, prose 0, single 0, cut 4" in " ".join(info.output.split())


def test_require_list_counts_lists_only_and_a_run_with_none_exits_1(runner, pets):
    with FakeOpenAIServer(per_image=_shape_plan(pets)) as server:
        strict = _describe(runner, server, "--require-list")
        assert strict.exit_code == 0, strict.output
        summary = json.loads(strict.stdout)
        assert summary["usable"] == 1 and summary["failures_total"] == 5 and summary["require_list"]
        asked = len(server.requests)
        again = _describe(runner, server, "--require-list")  # the same answers: nothing to ask, the policy is applied on read
        assert len(server.requests) == asked and json.loads(again.stdout)["usable"] == 1
    plan = {_sha(image): ["answer:paragraph"] * 5 for image in sorted(pets.rglob("*.png"))}
    with FakeOpenAIServer(per_image=plan) as server:
        none = runner.invoke(app, ["--cache-dir", str(pets.parent / "c2"), "describe", "pets", "--backend", "openai",
                                   "--base-url", server.url, "--model", "m", "--require-list"])
    assert none.exit_code == 1 and "not a list but prose" in " ".join(none.stderr.split())


def test_a_greedy_answer_is_final_and_retry_failed_asks_again_for_exactly_the_failed(runner, pets):
    images = sorted(pets.rglob("*.png"))
    plan = {_sha(images[0]): ["answer:refusal"], _sha(images[1]): ["empty"], _sha(images[2]): ["reject"]}
    with FakeOpenAIServer(per_image=plan) as server:
        first = _describe(runner, server)
        assert first.exit_code == 0 and json.loads(first.stdout)["failures_total"] == 3
        asked = len(server.requests)
        plain = _describe(runner, server)
        summary = json.loads(plain.stdout)
        assert len(server.requests) - asked == 1  # only the rejected request; the refusal and the empty answer stand
        assert summary["kept_failures"] == 2 and summary["failures_total"] == 2
        text = runner.invoke(app, ["describe", "pets", "--backend", "openai", "--base-url", server.url, "--model", "m"])
        hint = " ".join(text.stderr.split())
        assert "--retry-failed`" in hint
        asked = len(server.requests)
        retried = _describe(runner, server, "--retry-failed")
        assert len(server.requests) - asked == 2 and json.loads(retried.stdout)["failures_total"] == 0
    assert {request["image"] for request in server.requests[-2:]} == {_sha(images[0]), _sha(images[1])}


def test_with_sample_answer_failures_are_retried_by_default(runner, pets):
    images = sorted(pets.rglob("*.png"))
    with FakeOpenAIServer(per_image={_sha(images[0]): ["answer:refusal"]}) as server:
        assert _describe(runner, server, "--sample").exit_code == 0
        asked = len(server.requests)
        again = _describe(runner, server, "--sample")
        assert len(server.requests) - asked == 1 and json.loads(again.stdout)["failures_total"] == 0


def test_an_artifact_parsed_by_the_old_rules_is_reparsed_and_its_prose_becomes_usable(runner, pets):
    """What the parser before the answer policy stored: a paragraph as a failure ("no list"), no shapes."""
    images = sorted(pets.rglob("*.png"))
    with FakeOpenAIServer(per_image={_sha(images[0]): ["answer:paragraph"]}) as server:
        path = json.loads(_describe(runner, server).stdout)["artifact"]
    with h5py.File(path, "r+") as handle:
        ok, errors = handle["ok"][...], handle["errors"].asstr()[...].astype(object)
        row = list(handle["shapes"].asstr()[...]).index("prose")
        ok[row], errors[row] = False, "no list in the answer: The image shows a man ..."
        handle["ok"][...] = ok
        handle["errors"][...] = errors
        manifest = json.loads(handle.attrs["lmmclf_manifest"])
        for name in ("shapes", "answered"):
            del handle[name], manifest[name]
        handle.attrs["lmmclf_manifest"] = json.dumps(manifest)
        handle.attrs["parser_version"] = 2
    from lmmclf.embed.texts import read_descriptions

    with h5py.File(path) as handle:
        assert len(read_descriptions(handle).texts[row]) == 3  # usable on read, before any rerun
    with FakeOpenAIServer() as server:
        again = _describe(runner, server)
        assert not server.requests  # nothing described again
    summary = json.loads(again.stdout)
    assert summary["failures_total"] == 0 and summary["shapes"]["prose"] == 1


# -- later stages see the descriptions that are stored now -----------------------------------------
@pytest.fixture
def half_config(tmp_path, tiny_clip, pets):
    config = {
        "dataset": {"name": "pets"},
        "describe": {"backend": "openai", "model": "m", "max_retries": 0, "num_descriptions": 4},
        "embed": {"clip_model": tiny_clip, "clip_pretrained": None, "device": "cpu", "batch_size": 16, "num_workers": 0,
                  "max_missing_descriptions": 0.7},
        "probe": {"epochs": 2, "seeds": [0], "device": "cpu"},
    }
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _text_artifact(runner, config) -> tuple[str, int]:
    listing = json.loads(runner.invoke(app, ["-c", str(config), "cache", "ls", "--json"]).stdout)
    newest = min((row for row in listing if row["stage"] == "embed-text"), key=lambda row: row["age_s"])
    with h5py.File(newest["path"]) as handle:
        return newest["key"], int(handle["mask"][...].any(axis=1).sum())


def test_after_a_retry_fills_failed_images_embed_prototypes_and_probes_use_the_new_descriptions(runner, pets, half_config):
    images = sorted(pets.rglob("*.png"))
    plan = {_sha(image): ["reject"] for image in images[::2]}
    with FakeOpenAIServer(per_image=plan) as server:
        assert runner.invoke(app, ["-c", str(half_config), "describe", "--base-url", server.url]).exit_code == 0
        assert runner.invoke(app, ["-c", str(half_config), "embed"]).exit_code == 0
        first_key, first_with_text = _text_artifact(runner, half_config)
        probe = runner.invoke(app, ["-c", str(half_config), "probe", "--features", "concat", "--json"])
        assert probe.exit_code == 0, probe.output
        assert runner.invoke(app, ["-c", str(half_config), "describe", "--base-url", server.url]).exit_code == 0  # fills them in
    assert first_with_text == len(images) // 2
    embedded = runner.invoke(app, ["-c", str(half_config), "embed", "--json"])
    assert embedded.exit_code == 0, embedded.output
    second_key, second_with_text = _text_artifact(runner, half_config)
    assert second_key != first_key and second_with_text == len(images)
    again = runner.invoke(app, ["-c", str(half_config), "probe", "--features", "concat", "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)[0]["key"] != json.loads(probe.stdout)[0]["key"]  # trained anew on the new texts
    assert runner.invoke(app, ["-c", str(half_config), "prototypes"]).exit_code == 0
    # nothing changed since: the same keys, nothing recomputed
    same = runner.invoke(app, ["-c", str(half_config), "embed", "--json"])
    assert _text_artifact(runner, half_config)[0] == second_key and "embed-text" not in json.loads(same.stdout)["computed"]


def test_the_two_policies_never_share_text_embeddings_unless_the_descriptions_agree(runner, pets, half_config):
    with FakeOpenAIServer(per_image=_shape_plan(pets)) as server:
        assert runner.invoke(app, ["-c", str(half_config), "describe", "--base-url", server.url]).exit_code == 0
    assert runner.invoke(app, ["-c", str(half_config), "embed"]).exit_code == 0
    lenient, lenient_with_text = _text_artifact(runner, half_config)
    assert runner.invoke(app, ["-c", str(half_config), "--set", "describe.require_list=true", "embed"]).exit_code == 0
    strict, strict_with_text = _text_artifact(runner, half_config)
    assert strict != lenient and (lenient_with_text, strict_with_text) == (5, 1)

