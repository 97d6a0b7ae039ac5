"""The command line's shared behaviour: fast help, exit codes, config and cache commands."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from lmmclf.cli.app import COMMANDS, GROUPS, app
from lmmclf.store import ArtifactStore, KeySpec


def test_start_up_imports_nothing_heavy():
    code = "import sys, lmmclf.cli.app; print(sorted(m for m in ('torch', 'transformers', 'open_clip', 'h5py', 'matplotlib') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_every_command_is_registered():
    names = {command.name for command in app.registered_commands} | {group.name for group in app.registered_groups}
    assert names == {name for _, _, name in COMMANDS + GROUPS}


@pytest.mark.parametrize("name", [name for _, _, name in COMMANDS + GROUPS])
def test_every_command_has_help(runner, name):
    result = runner.invoke(app, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_usage_error_exits_2(runner):
    assert runner.invoke(app, ["no-such-command"]).exit_code == 2
    assert runner.invoke(app, ["cache", "ls", "--no-such-flag"]).exit_code == 2


def test_user_error_is_one_sentence_and_exit_1(runner, tmp_path):
    result = runner.invoke(app, ["-c", str(tmp_path / "missing.yaml"), "config", "show"])
    assert result.exit_code == 1
    assert "missing.yaml does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_config_show_applies_file(runner, tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("probe:\n  epochs: 7\n")
    result = runner.invoke(app, ["-c", str(path), "config", "show", "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["probe"]["epochs"] == 7


def test_cache_ls_show_rm(runner, isolated_user_dirs):
    store = ArtifactStore(isolated_user_dirs["cache"])
    spec = KeySpec(stage="embed-image", version=1, dataset={"name": "bar", "fingerprint": "f"}, model={"name": "ViT", "pretrained": "openai"})

    def compute(handle):
        handle["embeddings"] = np.zeros((3, 4))
        return 3

    store.ensure(spec, compute)
    listed = json.loads(runner.invoke(app, ["cache", "ls", "--json"]).stdout)
    assert [(row["stage"], row["dataset"], row["items"]) for row in listed] == [("embed-image", "bar", 3)]
    human = runner.invoke(app, ["cache", "ls"])
    assert spec.key[:12] in human.stderr
    shown = json.loads(runner.invoke(app, ["cache", "show", spec.key[:8], "--json"]).stdout)
    assert shown["lmmclf_key_inputs"]["model"]["pretrained"] == "openai"
    assert shown["datasets"] == {"embeddings": [3, 4]}
    assert runner.invoke(app, ["cache", "rm", spec.key[:8]]).exit_code == 0
    assert store.list() == []
    missing = runner.invoke(app, ["cache", "show", "deadbeef"])
    assert missing.exit_code == 1 and "deadbeef" in missing.stderr
