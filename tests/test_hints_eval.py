"""Hints that are true (issue 10 §2) and eval/cache output (§5), through the real command line.

A missing input lists what the cache holds for that stage and dataset and how it differs; eval
lists every missing method with a chain of commands that, pasted as written, makes it; `cache ls`
filters; `cache show` is YAML with ISO times; results.csv is tidy and lands in a folder per
dataset; `describe --force` describes again.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shlex

import pytest
import yaml

from lmmclf.cli.app import app


@pytest.fixture
def toy(tmp_path, tiny_clip):
    """A config file for a 2-class image folder, a tiny CLIP and the openai backend (server set per test)."""
    from lmmclf.testing.layouts import make_imagefolder
    from lmmclf.testing.paper1 import toy_config

    root = make_imagefolder(tmp_path / "images", class_names=("a", "b"), n_train=2, n_test=2)
    cfg = toy_config(root, tiny_clip).override("probe", epochs=2, seeds=[0])
    return cfg


def _served(cfg, base_url="http://127.0.0.1:9/v1", **describe):
    return cfg.override("describe", backend="openai", base_url=base_url, model="served-lmm", **describe)


def _write(cfg, path, base_url="http://127.0.0.1:9/v1", **describe):
    cfg = _served(cfg, base_url, **describe)
    path.write_text(cfg.to_yaml())
    return str(path)


def _run_verbatim(runner, line: str):
    """Run a printed command line (possibly `a && b`) as a shell would, through the CLI app."""
    for part in line.split(" && "):
        words = shlex.split(part)
        assert words[0] == "lmmclf", line
        result = runner.invoke(app, words[1:])
        assert result.exit_code == 0, f"{part}: {result.output}"


def test_a_missing_describe_lists_what_the_cache_holds_and_how_it_differs(toy, tmp_path, runner):
    from lmmclf.testing.openai_server import FakeOpenAIServer

    with FakeOpenAIServer(k=3) as server:
        made = _write(toy, tmp_path / "made.yaml", base_url=server.url, num_descriptions=3)
        result = runner.invoke(app, ["-c", made, "describe", "--model", "/data/tiny-llava", "--max-new-tokens", "24"])
        assert result.exit_code == 0, result.output
        result = runner.invoke(app, ["-c", made, "embed"])
        assert result.exit_code == 1
        message = " ".join(result.stderr.split())
        assert re.search(r"No describe artifact [0-9a-f]{12} of toy in ", message)
        assert re.search(r"describe [0-9a-f]{8}: model /data/tiny-llava \(you asked for served-lmm\), "
                         r"max_new_tokens 24 \(you asked for 300\)", message), message
        assert "Traceback" not in result.output
        # the hint carries -c and, run as written, makes what embed asked for
        hint = re.search(r"Run `([^`]+)` to make it", message).group(1)
        assert hint == f"lmmclf -c {made} describe toy"
        _run_verbatim(runner, hint)
        shown = re.search(r"`(lmmclf -c \S+ cache show [0-9a-f]{8})` prints them", message).group(1)
        _run_verbatim(runner, shown)
    assert runner.invoke(app, ["-c", made, "embed"]).exit_code == 0


def test_eval_lists_every_missing_method_with_commands_that_work_as_written(toy, tmp_path, runner):
    from lmmclf.testing.openai_server import FakeOpenAIServer

    with FakeOpenAIServer(k=3) as server:
        config = _write(toy, tmp_path / "exp.yaml", base_url=server.url, num_descriptions=3)
        result = runner.invoke(app, ["-c", config, "eval", "--method", "image,text", "--no-plot"])
        assert result.exit_code == 1 and "Traceback" not in result.output
        text = result.stderr
        assert "no method is cached with these settings" in " ".join(text.split())
        lines = {m.group(1): m.group(2) for m in re.finditer(r"^\s+(image|text): (.+)$", text, re.M)}
        assert lines["image"] == f"lmmclf -c {config} embed toy --images-only && lmmclf -c {config} probe toy --features image"
        assert lines["text"] == (f"lmmclf -c {config} describe toy && lmmclf -c {config} embed toy && "
                                 f"lmmclf -c {config} probe toy --features text")
        _run_verbatim(runner, lines["image"])
        # one cached, one missing: the missing one is still listed, and what is cached is named
        result = runner.invoke(app, ["-c", config, "eval", "--method", "image,text", "--no-plot"])
        assert result.exit_code == 1 and "cached with these settings: image" in " ".join(result.stderr.split())
        # --method all shows what is cached; each missing row's command is printed whole on its own line
        # under the table (a table cell would wrap it at the terminal's width)
        result = runner.invoke(app, ["-c", config, "eval", "--method", "all", "--no-plot", "--out-dir", str(tmp_path / "all")])
        assert result.exit_code == 0, result.output
        printed = {m.group(1): m.group(2) for m in re.finditer(r"^(\S+): (lmmclf .+)$", result.output, re.M)}
        assert printed["text"] == lines["text"], result.output
        _run_verbatim(runner, printed["text"])
    result = runner.invoke(app, ["-c", config, "eval", "--method", "image,text", "--no-plot", "--out-dir", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output


def test_eval_help_says_missing_methods_are_listed(runner):
    result = runner.invoke(app, ["eval", "--help"])
    assert "missing" in result.output and "listed" in " ".join(result.output.split())


def _store_probe(cfg, dataset, store, features, seeds):
    import numpy as np

    from lmmclf.probe.stage import probe_spec
    from lmmclf.results import TrainingRun, write_runs

    test = [item for item in dataset.items if item.split == "test"]
    runs = [TrainingRun(seed, np.ones(2), np.array([0.5, 1.0]), [i.id for i in test], np.array([i.label for i in test]),
                        np.array([i.label for i in test])) for seed in seeds]
    store.ensure(probe_spec(cfg, dataset, store, features), lambda handle: write_runs(handle, runs))


def test_results_are_tidy_and_go_to_a_folder_per_dataset(toy, tmp_path, runner, store, monkeypatch):
    from lmmclf.datasets import load_dataset
    from lmmclf.results import CSV_COLUMNS
    from lmmclf.testing.layouts import make_imagefolder

    other_root = make_imagefolder(tmp_path / "other", class_names=("x", "y", "z"), n_train=1, n_test=1)
    configs = {}
    for name, cfg in (("toy", toy), ("other", toy.override("dataset", name="other", root=str(other_root)))):
        cfg = _served(cfg.override("probe", seeds=[0, 1]))
        dataset = load_dataset(cfg, store, show_progress=False)
        _store_probe(cfg, dataset, store, "image", [0, 1])
        _store_probe(cfg, dataset, store, "concat", [0, 1])
        configs[name] = _write(cfg, tmp_path / f"{name}.yaml")
    monkeypatch.chdir(tmp_path)
    for name, config in configs.items():
        result = runner.invoke(app, ["-c", config, "eval", "--method", "image,concat", "--no-plot"])
        assert result.exit_code == 0, result.output
    for name in configs:  # the second dataset did not overwrite the first
        table = (tmp_path / "results" / name / "results.csv").read_text()
        header, *rows = list(csv.reader(io.StringIO(table)))
        assert tuple(header) == CSV_COLUMNS and len(set(header)) == len(header)
        assert [(row[0], row[1], row[2]) for row in rows] == [(name, m, s) for m in ("image", "concat") for s in ("0", "1")]
        assert all(float(row[header.index("final_acc")]) == 1.0 for row in rows)
        assert json.loads((tmp_path / "results" / name / "results.json").read_text())["dataset"] == name


def test_cache_ls_filters_by_stage_and_dataset_and_show_is_yaml_with_iso_times(toy, tmp_path, runner, store):
    from lmmclf.datasets import load_dataset
    from lmmclf.testing.layouts import make_imagefolder
    from lmmclf.testing.paper1 import write_toy_descriptions

    other_root = make_imagefolder(tmp_path / "other", class_names=("x", "y"), n_train=1, n_test=1)
    keys = {}
    for cfg in (toy, toy.override("dataset", name="other", root=str(other_root))):
        dataset = load_dataset(cfg, store, show_progress=False)
        keys[dataset.name] = write_toy_descriptions(store, dataset)
        _store_probe(cfg, dataset, store, "image", [0])
    rows = json.loads(runner.invoke(app, ["cache", "ls", "--stage", "describe", "--dataset", "other", "--json"]).stdout)
    assert [(row["stage"], row["dataset"], row["key"]) for row in rows] == [("describe", "other", keys["other"])]
    assert {row["dataset"] for row in json.loads(runner.invoke(app, ["cache", "ls", "--dataset", "toy", "--json"]).stdout)} == {"toy"}
    assert {row["stage"] for row in json.loads(runner.invoke(app, ["cache", "ls", "--stage", "probe", "--json"]).stdout)} == {"probe"}
    bad = runner.invoke(app, ["cache", "ls", "--stage", "bogus"])
    assert bad.exit_code == 1 and "--stage" in bad.stderr and "Traceback" not in bad.output
    shown = runner.invoke(app, ["cache", "show", keys["toy"][:12]])
    assert shown.exit_code == 0, shown.output
    document = yaml.safe_load(shown.stdout)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", str(document["lmmclf_created"]))
    assert document["lmmclf_key_inputs"]["dataset"]["name"] == "toy"
    as_json = json.loads(runner.invoke(app, ["cache", "show", keys["toy"][:12], "--json"]).stdout)
    assert as_json["lmmclf_created"] == document["lmmclf_created"]


def test_describe_force_describes_again(toy, tmp_path, runner):
    from lmmclf.testing.openai_server import FakeOpenAIServer

    with FakeOpenAIServer(k=3) as server:
        config = _write(toy, tmp_path / "exp.yaml", base_url=server.url, num_descriptions=3, limit=2, split="train")
        first = json.loads(runner.invoke(app, ["-c", config, "describe", "--json"]).stdout)
        again = json.loads(runner.invoke(app, ["-c", config, "describe", "--json"]).stdout)
        assert first["described"] == 2 and again["skipped"] == 2 and len(server.requests) == 2
        forced = runner.invoke(app, ["-c", config, "describe", "--force", "--json"])
        assert forced.exit_code == 0, forced.output
        summary = json.loads(forced.stdout)
        assert summary["described"] == 2 and summary["skipped"] == 0 and len(server.requests) == 4
        assert summary["key"] == first["key"]
