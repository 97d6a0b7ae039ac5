"""The README's first command: the offline demo runs every stage through the real command line."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_demo_script_runs_every_stage(tmp_path):
    out = tmp_path / "demo-out"
    env = {**os.environ, "LMMCLF_NO_PROGRESS": "1"}
    result = subprocess.run(["bash", str(REPO / "examples" / "demo.sh"), str(out)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "plumbing demo" in result.stdout
    results = json.loads((out / "results" / "results.json").read_text())
    text = json.dumps(results)
    for label in ("CLIP (image)", "CONCAT", "MEAN", "zero-shot", "Finetuning w/o Reg.", "LMM-Reg.-CLIP"):
        assert label in text, label
    assert (out / "results" / "accuracy.png").stat().st_size > 0
    # the demo ends with a report whose accuracies are eval's
    report = json.loads((out / "results" / "report" / "report.json").read_text())
    assert {name: entry["accuracy"] for name, entry in report["methods"].items()} == {m["method"]: m["mean"] for m in results["methods"]}
    assert report["describe"]["images"] == 24 + 48 and (out / "results" / "report" / "index.html").is_file()
    # the demo kept to its own folders: nothing in the test's cache or user config
    assert not Path(os.environ["LMMCLF_CACHE"]).exists()
