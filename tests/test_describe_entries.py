"""Issue 23, item 1: answers are cached per image (its bytes' digest) and describe identity, so a grown dataset,
another split, a moved folder or an older artifact's images ask the LMM nothing twice."""

from __future__ import annotations

import json
import shutil

import h5py
import pytest
from PIL import Image

from lmmclf.cli.app import app
from lmmclf.datasets import register
from lmmclf.describe.entries import FOLDER
from lmmclf.testing.layouts import make_imagefolder
from lmmclf.testing.openai_server import FakeOpenAIServer


@pytest.fixture
def pets(tmp_path):
    root = make_imagefolder(tmp_path / "pets", n_train=2, n_test=1)  # 9 images
    register("pets", root, "imagefolder")
    return root


def _describe(runner, server, dataset="pets", *extra):
    result = runner.invoke(app, ["describe", dataset, "--backend", "openai", "--base-url", server.url, "--model", "m", "--json", *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _rows(path) -> dict[str, list[str]]:
    with h5py.File(path) as handle:
        ids = handle["ids"].asstr()[...]
        table, counts = handle["descriptions"].asstr()[...], handle["num_descriptions"][...]
    return {i: list(row[:n]) for i, row, n in zip(ids, table, counts)}


def test_one_new_image_sends_one_request(runner, pets):
    with FakeOpenAIServer() as server:
        first = _describe(runner, server)
        assert len(server.requests) == 9
        Image.new("RGB", (32, 32), (10, 200, 30)).save(pets / "train" / "a" / "new.png")
        grown = _describe(runner, server)
        assert len(server.requests) == 10  # the new image only
    assert grown["key"] != first["key"] and grown["reused"] == 9 and grown["described"] == 1
    old, new = _rows(first["artifact"]), _rows(grown["artifact"])
    assert all(new[item] == descriptions for item, descriptions in old.items())  # the same answers, row for row
    listing = json.loads(runner.invoke(app, ["cache", "ls", "--json"]).stdout)
    entries = [row for row in listing if row["stage"] == "describe-entries"]
    assert [row["items"] for row in entries] == [10]
    info = runner.invoke(app, ["cache", "info", entries[0]["key"][:12], "--json"])
    assert info.exit_code == 0 and json.loads(info.stdout)["items"] == 10


def test_another_split_and_a_moved_folder_ask_nothing(runner, pets, tmp_path):
    with FakeOpenAIServer() as server:
        everything = _describe(runner, server)
        train = _describe(runner, server, "pets", "--split", "train")
        moved = tmp_path / "elsewhere"
        shutil.copytree(pets, moved)
        register("moved", moved, "imagefolder")
        again = _describe(runner, server, "moved")
        assert len(server.requests) == 9
    assert train["reused"] == 6 and again["reused"] == 9 and again["key"] != everything["key"]
    assert sorted(_rows(again["artifact"]).values()) == sorted(_rows(everything["artifact"]).values())


def test_force_asks_again_and_other_settings_are_other_entries(runner, pets):
    with FakeOpenAIServer() as server:
        _describe(runner, server)
        _describe(runner, server, "pets", "--split", "test", "--force")
        assert len(server.requests) == 9 + 3
        _describe(runner, server, "pets", "--split", "test", "--max-new-tokens", "200")  # another identity
        assert len(server.requests) == 9 + 3 + 3


def test_a_kept_refusal_is_reused_as_a_failure_and_retry_failed_asks_again(runner, pets):
    import hashlib

    first_image = sorted((pets / "train").rglob("*.png"))[0]
    plan = {hashlib.sha256(first_image.read_bytes()).hexdigest(): ["answer:refusal"]}
    with FakeOpenAIServer(per_image=plan) as server:
        _describe(runner, server)
        train = _describe(runner, server, "pets", "--split", "train")
        assert len(server.requests) == 9 and train["kept_failures"] == 1 and train["failures_total"] == 1
        retried = _describe(runner, server, "pets", "--split", "train", "--retry-failed")
        assert len(server.requests) == 10 and retried["failures_total"] == 0


def test_an_artifact_from_before_entries_becomes_entries(runner, pets, isolated_user_dirs):
    with FakeOpenAIServer() as server:
        first = _describe(runner, server)
        cache = next(p for p in (first["artifact"],)).rsplit("/describe/", 1)[0]
        shutil.rmtree(f"{cache}/{FOLDER}")  # as a cache written by an older lmmclf holds it
        again = _describe(runner, server)  # nothing to describe; its rows become entries
        train = _describe(runner, server, "pets", "--split", "train")
        assert len(server.requests) == 9
    assert again["artifact"] == first["artifact"] and train["reused"] == 6


# -- item 3: settings that never mix ---------------------------------------------------------------
def test_a_resume_whose_resolved_dtype_differs_is_refused_and_names_both(runner, tmp_path):
    from lmmclf.demo import prepare_demo

    assets = prepare_demo(tmp_path / "demo", n_train=1, n_test=1, epochs=1, teach=False)
    args = ["-c", str(assets.config), "describe", "--max-new-tokens", "4", "--json"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    path = json.loads(first.stdout)["artifact"]
    with h5py.File(path, "r+") as handle:
        assert json.loads(handle.attrs["answer_settings"]) == {"dtype": "float32", "quantize": "none"}
        # as if a GPU machine (fp16) had made these answers, and one image had failed in passing
        handle.attrs["answer_settings"] = json.dumps({"dtype": "float16", "quantize": "none"})
        ok, answered, errors = handle["ok"][...], handle["answered"][...], handle["errors"].asstr()[...].astype(object)
        raw = handle["raw"].asstr()[...].astype(object)
        ok[0], answered[0], errors[0], raw[0] = False, False, "gave up after 7 tries: HTTP 503", ""
        handle["ok"][...], handle["answered"][...], handle["errors"][...], handle["raw"][...] = ok, answered, errors, raw
    cache = path.rsplit("/describe/", 1)[0]
    shutil.rmtree(f"{cache}/{FOLDER}")
    resumed = runner.invoke(app, args)
    assert resumed.exit_code == 1, resumed.output[-2500:]
    error = " ".join(resumed.stderr.split())
    assert "describe.dtype resolves to float32 here" in error and "dtype float16" in error and "--dtype float32" in error
    with h5py.File(path) as handle:  # nothing was lost or merged
        assert not handle["ok"][0] and json.loads(handle.attrs["answer_settings"])["dtype"] == "float16"


# -- image embeddings per image too ------------------------------------------------------------------
def test_image_embeddings_of_a_grown_dataset_copy_the_known_images_and_equal_a_fresh_run(runner, pets, tiny_clip, tmp_path):
    import numpy as np

    config = tmp_path / "exp.yaml"
    config.write_text(json.dumps({"embed": {"clip_model": tiny_clip, "clip_pretrained": None, "device": "cpu",
                                            "num_workers": 0, "batch_size": 4}}))
    first = runner.invoke(app, ["-c", str(config), "embed", "pets", "--images-only", "--json"])
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["images_reused"] == 0
    Image.new("RGB", (32, 32), (10, 200, 30)).save(pets / "train" / "a" / "new.png")
    grown = runner.invoke(app, ["-c", str(config), "embed", "pets", "--images-only", "--json"])
    summary = json.loads(grown.stdout)
    assert summary["images_reused"] == 9 and summary["images"] == 10
    fresh = runner.invoke(app, ["-c", str(config), "--cache-dir", str(tmp_path / "fresh"), "embed", "pets", "--images-only", "--json"])
    assert json.loads(fresh.stdout)["images_reused"] == 0

    def table(key, cache=None):
        listing = json.loads(runner.invoke(app, [*(["--cache-dir", str(cache)] if cache else []), "cache", "ls", "--json"]).stdout)
        path = next(row["path"] for row in listing if row["key"] == key)
        with h5py.File(path) as handle:
            return handle["embeddings"][...]

    copied, computed = table(summary["image_key"]), table(json.loads(fresh.stdout)["image_key"], tmp_path / "fresh")
    assert len({tuple(row[:4]) for row in computed}) == 10  # different images, different embeddings
    np.testing.assert_allclose(copied, computed, rtol=0, atol=1e-5)


def test_a_server_that_now_serves_another_checkpoint_under_the_same_name_is_refused(runner, pets):
    import hashlib

    image = sorted(pets.rglob("*.png"))[0]
    plan = {hashlib.sha256(image.read_bytes()).hexdigest(): ["reject"]}  # a passing failure: asked again next run
    with FakeOpenAIServer(per_image=plan, served_models={"m": {"root": "/models/llava-13b-fp16"}}) as server:
        first = _describe(runner, server)
    assert first["failures_total"] == 1
    with h5py.File(first["artifact"]) as handle:
        assert json.loads(handle.attrs["answer_settings"]) == {"served_root": "/models/llava-13b-fp16"}
    with FakeOpenAIServer(served_models={"m": {"root": "/models/llava-13b-awq"}}) as server:
        result = runner.invoke(app, ["describe", "pets", "--backend", "openai", "--base-url", server.url, "--model", "m"])
        assert not server.requests  # refused before any image was asked
    assert result.exit_code == 1
    error = " ".join(result.stderr.split())
    assert "/models/llava-13b-awq" in error and "/models/llava-13b-fp16" in error and "8 answers" in error
    with FakeOpenAIServer(served_models={"m": {"root": "/models/llava-13b-fp16"}}) as server:
        assert _describe(runner, server)["failures_total"] == 0  # the same checkpoint again: the run finishes
