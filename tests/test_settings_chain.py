"""Settings that chain across commands (--set, $LMMCLF_CONFIG), the positional dataset against the
config's, and usage errors (issue 10, sections 1, 3 and 4), all through the real command line."""

from __future__ import annotations

import json
import re
import shlex
import time

import pytest

from lmmclf.cli.app import app
from lmmclf.datasets.registry import register
from lmmclf.testing.layouts import make_imagefolder
from lmmclf.testing.openai_server import FakeOpenAIServer


@pytest.fixture(autouse=True)
def no_config_env(monkeypatch):
    monkeypatch.delenv("LMMCLF_CONFIG", raising=False)


@pytest.fixture
def pets(tmp_path):
    root = make_imagefolder(tmp_path / "pets", n_train=3, n_test=2)
    register("pets", root, "imagefolder")
    return root


def _sets(*assignments: str) -> list[str]:
    return [word for assignment in assignments for word in ("--set", assignment)]


def _one_line(text: str) -> str:
    return " ".join(text.replace("│", " ").split())


def test_set_chains_a_flags_only_pipeline_and_hints_carry_it(runner, pets, tiny_clip):
    with FakeOpenAIServer() as server:
        chain = _sets("describe.backend=openai", f"describe.base_url={server.url}", "describe.model=served-llava",
                      f"embed.clip_model={tiny_clip.removeprefix('local-dir:')}", "embed.device=cpu", "embed.num_workers=0", "embed.batch_size=8")
        for command in (["describe", "pets"], ["embed", "pets"], ["probe", "pets", "--features", "concat", "--epochs", "3", "--json"]):
            result = runner.invoke(app, [*chain, *command])
            assert result.exit_code == 0, f"{command}: {result.output}"
        assert json.loads(result.stdout)[0]["features"] == "concat"
        # another describe model: the hint names the command that makes it, with every --set in effect
        other = [*chain, "--set", "describe.model=other-llava"]
        missing = runner.invoke(app, [*other, "embed", "pets"])
        assert missing.exit_code == 1
        hint = re.search(r"`(lmmclf [^`]*describe[^`]*)`", _one_line(missing.stderr))
        assert hint, missing.stderr
        words = shlex.split(hint.group(1))
        assert "describe.model=other-llava" in words and f"describe.base_url={server.url}" in words
        assert runner.invoke(app, words[1:]).exit_code == 0  # the hint, run verbatim
        assert runner.invoke(app, [*other, "embed", "pets"]).exit_code == 0


def test_config_from_environment(runner, pets, tmp_path, monkeypatch):
    config = tmp_path / "exp.yaml"
    config.write_text("dataset:\n  name: pets\nprobe:\n  epochs: 7\n")
    monkeypatch.setenv("LMMCLF_CONFIG", str(config))
    shown = json.loads(runner.invoke(app, ["config", "show", "--json"]).stdout)
    assert shown["dataset"]["name"] == "pets" and shown["probe"]["epochs"] == 7
    # --set goes over the file, -c wins over the environment
    shown = json.loads(runner.invoke(app, ["--set", "probe.epochs=9", "config", "show", "--json"]).stdout)
    assert shown["probe"]["epochs"] == 9
    other = tmp_path / "other.yaml"
    other.write_text("probe:\n  epochs: 11\n")
    assert json.loads(runner.invoke(app, ["-c", str(other), "config", "show", "--json"]).stdout)["probe"]["epochs"] == 11
    monkeypatch.setenv("LMMCLF_CONFIG", str(tmp_path / "missing.yaml"))
    result = runner.invoke(app, ["config", "show"])
    assert result.exit_code == 1 and "$LMMCLF_CONFIG" in result.stderr and "Traceback" not in result.output


def test_set_values_are_validated_like_the_config(runner):
    shown = json.loads(runner.invoke(app, [*_sets("probe.seeds=[0, 1]", "probe.lr=1e-2", "describe.prompt=yes"),
                                           "config", "show", "--json"]).stdout)
    assert shown["probe"]["seeds"] == [0, 1] and shown["probe"]["lr"] == 0.01 and shown["describe"]["prompt"] == "yes"
    for bad, named in (("probe.epochs=0", "--set probe.epochs"), ("probe.features=bogus", "--set probe.features"),
                       ("nosuch.key=1", "nosuch"), ("probe.nokey=1", "probe.nokey"), ("probe", "SECTION.KEY=VALUE")):
        result = runner.invoke(app, ["--set", bad, "config", "show"])
        assert result.exit_code == 2, result.output
        assert named in _one_line(result.output) and "Traceback" not in result.output


def test_invalid_flag_values_are_usage_errors_naming_the_flag(runner, pets):
    for command, flag in ((["probe", "pets", "--features", "bogus"], "--features"),
                          (["probe", "pets", "--epochs", "0"], "--epochs"),
                          (["probe", "pets", "--optimizer", "rmsprop"], "--optimizer"),
                          (["finetune", "pets", "--alpha", "-1"], "--alpha"),
                          (["finetune", "pets", "--epochs", "0"], "--epochs")):
        result = runner.invoke(app, command)
        assert result.exit_code == 2, f"{command}: {result.output}"
        text = _one_line(result.output)
        assert f"Invalid value for {flag}" in text and "finetune.alpha" not in text, text


def test_global_options_after_the_command_are_accepted(runner, tmp_path):
    config = tmp_path / "exp.yaml"
    config.write_text("probe:\n  epochs: 7\n")
    result = runner.invoke(app, ["config", "show", "--json", "-c", str(config), "--set", "probe.lr=0.5"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["probe"]["epochs"] == 7 and shown["probe"]["lr"] == 0.5


def test_positional_dataset_is_not_read_with_another_datasets_root(runner, tmp_path):
    demo = make_imagefolder(tmp_path / "demo", class_names=("w", "x", "y", "z"), n_train=2, n_test=1)
    mine = make_imagefolder(tmp_path / "mine", class_names=("a", "b", "c"), n_train=2, n_test=1)
    register("mine", mine, "imagefolder")
    config = tmp_path / "demo.yaml"
    config.write_text(f"dataset:\n  name: demo\n  root: {demo}\n  type: imagefolder\n")
    info = runner.invoke(app, ["-c", str(config), "datasets", "info", "mine", "--json"])
    assert info.exit_code == 0, info.output
    assert json.loads(info.stdout)["class_names"] == ["a", "b", "c"]
    # the config's own dataset still reads its root
    assert json.loads(runner.invoke(app, ["-c", str(config), "datasets", "info", "--json"]).stdout)["classes"] == 4
    # an unregistered name is one sentence, never the config's images under that name
    result = runner.invoke(app, ["-c", str(config), "datasets", "info", "unknown"])
    assert result.exit_code == 1 and "'unknown' is not registered" in _one_line(result.stderr)


def test_help_shows_defaults_and_bare_flags_and_input_sections(runner):
    text = runner.invoke(app, ["probe", "--help"], env={"COLUMNS": "200"}).output
    assert "<bool>" not in text
    assert "probe.epochs; built-in 500" in text
    assert "Reads dataset.*, describe.*, embed.* to find its inputs" in text
    assert "--json true" not in text
    result = runner.invoke(app, ["probe", "--json", "true"])  # "true" lands in DATASET: a flag takes no value
    assert result.exit_code == 2 and "take no value" in _one_line(result.output), result.output


def test_clip_model_folder_is_a_local_dir(tiny_clip):
    from lmmclf.clip import clip_identity, load_clip
    from lmmclf.filehash import FileHashCache

    folder = tiny_clip.removeprefix("local-dir:")
    loaded = load_clip(folder, "openai", device="cpu")  # the default tag is ignored, as for local-dir:
    assert loaded.embed_dim > 0
    hashes = FileHashCache(None)  # in memory
    assert clip_identity(folder, "openai", hashes) == clip_identity(tiny_clip, None, hashes)


def test_hub_model_offline_fails_fast(runner, pets, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    result = runner.invoke(app, ["describe", "pets", "--model", "nobody-here/no-such-model", "--device", "cpu"])
    assert result.exit_code == 1, result.output
    text = _one_line(result.stderr)
    assert "nor in the local Hugging Face cache" in text and "Traceback" not in result.output
    assert time.monotonic() - start < 20
