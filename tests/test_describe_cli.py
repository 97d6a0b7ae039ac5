"""`lmmclf describe` end to end on an image folder: both backends, a SIGKILLed run resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from lmmclf.cli.app import app
from lmmclf.config import ExperimentConfig
from lmmclf.datasets import load_dataset, register
from lmmclf.describe import describe_spec
from lmmclf.journal import Journal
from lmmclf.store import ArtifactStore
from lmmclf.testing.layouts import make_imagefolder
from lmmclf.testing.openai_server import FakeOpenAIServer
from lmmclf.testing.teach import teach_numbered_lists
from lmmclf.testing.tiny_lmm import make_tiny_llava

LAYOUT = ("ids", "descriptions", "num_descriptions", "raw", "generated_tokens", "ok", "errors")


@pytest.fixture
def pets(tmp_path):
    root = make_imagefolder(tmp_path / "pets", n_train=4, n_test=2)
    register("pets", root, "imagefolder")
    return root


def _arrays(path) -> dict:
    with h5py.File(path, "r") as handle:
        return {name: handle[name][...] for name in LAYOUT}


def test_openai_backend_end_to_end(runner, pets, store):
    with FakeOpenAIServer() as server:
        args = ["describe", "pets", "--backend", "openai", "--base-url", server.url, "--model", "llava-hf/llava-1.5-13b-hf",
                "--split", "train", "--limit", "5", "--json"]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        summary = json.loads(result.stdout)
        assert summary["described"] == 5 and summary["failed"] == 0 and len(server.requests) == 5
        assert "images selected" not in result.stderr  # with --json the summary is on stdout only, as in other stages
        again = json.loads(runner.invoke(app, args).stdout)
        assert again["skipped"] == 5 and len(server.requests) == 5  # cached
    # a later stage finds the artifact by computing the same key from the same config
    cfg = ExperimentConfig().override("dataset", name="pets").override(
        "describe", backend="openai", base_url="http://other-host/v1", split="train", limit=5)
    spec = describe_spec(cfg, load_dataset(cfg, store, show_progress=False), store)
    assert spec.key == summary["key"] and store.is_complete("describe", spec.key)
    data = _arrays(summary["artifact"])
    assert data["ids"].shape == (5,) and data["ok"].all() and (data["num_descriptions"] >= 3).all()


def test_user_errors_are_one_sentence(runner, pets):
    result = runner.invoke(app, ["describe"])
    assert result.exit_code == 1 and "No dataset given" in result.stderr
    result = runner.invoke(app, ["describe", "pets", "--shard", "3/2"])
    assert result.exit_code == 1 and "--shard" in result.stderr
    result = runner.invoke(app, ["describe", "pets", "--backend", "openai"])
    assert result.exit_code == 1 and "--base-url" in result.stderr
    result = runner.invoke(app, ["describe", "pets", "--quantize", "3bit"])
    assert result.exit_code == 2 and "Invalid value for --quantize" in " ".join(result.output.replace("│", " ").split())  # a usage error


def test_sigkilled_run_resumes_to_the_uninterrupted_artifact(runner, pets, tmp_path, isolated_user_dirs):
    """A subprocess is killed with SIGKILL mid-run; the rerun skips the journaled images and
    the result equals an uninterrupted run's artifact, with no image generated twice."""
    model = teach_numbered_lists(make_tiny_llava(tmp_path / "tiny-llava"))
    flags = ["--model", str(model), "--batch-size", "2", "--max-new-tokens", "40", "--quantize", "none", "--device", "cpu",
             "--split", "train"]
    cache = isolated_user_dirs["cache"]
    total = 12
    process = subprocess.Popen(
        [sys.executable, "-m", "lmmclf", "describe", "pets", *flags],
        env={**os.environ, "LMMCLF_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    journal_records: list[dict] = []
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and process.poll() is None:
            journals = list((cache / "describe").glob("*.partial.main.jsonl"))
            if journals:
                journal_records = list(Journal(journals[0]).read())
                if len(journal_records) >= 2:
                    break
            time.sleep(0.005)
        assert process.poll() is None, f"the run ended before it could be killed: {process.stderr.read().decode()[-2000:]}"
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    journal = list((cache / "describe").glob("*.partial.main.jsonl"))[0]
    done_before = {r["id"] for r in Journal(journal).read()}
    assert 2 <= len(done_before) < total
    assert not list((cache / "describe").glob("*.h5"))  # no artifact from a killed run

    resumed = runner.invoke(app, ["describe", "pets", *flags, "--json"])
    assert resumed.exit_code == 0, resumed.output
    summary = json.loads(resumed.stdout)
    assert summary["skipped"] == len(done_before) and summary["described"] == total - len(done_before)
    assert summary["described"] + summary["skipped"] == total  # no image generated twice

    fresh = tmp_path / "fresh-cache"
    whole = runner.invoke(app, ["--cache-dir", str(fresh), "describe", "pets", *flags, "--json"])
    assert whole.exit_code == 0, whole.output
    uninterrupted = json.loads(whole.stdout)
    assert uninterrupted["key"] == summary["key"]
    a, b = _arrays(summary["artifact"]), _arrays(uninterrupted["artifact"])
    for name in LAYOUT:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert ArtifactStore(fresh).is_complete("describe", summary["key"])


def test_ctrl_c_exits_at_once_with_130_and_says_how_to_resume(pets, tmp_path, store, isolated_user_dirs):
    """SIGINT while requests hang: finished answers are journaled, the process exits without waiting for them."""
    import hashlib

    items = load_dataset(ExperimentConfig().override("dataset", name="pets"), store, show_progress=False).items
    hanging = {hashlib.sha256(item.path.read_bytes()).hexdigest(): ["timeout"] for item in items[3:]}
    config = tmp_path / "exp.yaml"
    config.write_text("describe:\n  timeout: 60\n  concurrency: 2\n")
    with FakeOpenAIServer(per_image=hanging, slow_seconds=30) as server:
        process = subprocess.Popen(
            [sys.executable, "-m", "lmmclf", "-c", str(config), "describe", "pets", "--backend", "openai",
             "--base-url", server.url, "--model", "m"],
            env={**os.environ, "LMMCLF_NO_PROGRESS": "1"}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(server.requests) < 5:  # 3 answered, 2 hanging
            time.sleep(0.05)
        time.sleep(0.3)
        process.send_signal(signal.SIGINT)
        start = time.monotonic()
        try:
            _, err = process.communicate(timeout=20)
        finally:
            if process.poll() is None:
                process.kill()
    assert process.returncode == 130, err.decode()[-2000:]
    assert time.monotonic() - start < 10  # did not wait for the 30 s requests in flight
    assert "run the same command again" in err.decode()
    journal = list((isolated_user_dirs["cache"] / "describe").glob("*.partial.main.jsonl"))[0]
    assert sorted(r["id"] for r in Journal(journal).read()) == sorted(item.id for item in items[:3])
