"""lmmclf bench: one table over datasets, each cell equal to that dataset's own eval --json."""

from __future__ import annotations

import json


def test_bench_table_equals_each_eval(tmp_path, runner):
    from lmmclf.cli.app import app
    from lmmclf.demo import prepare_demo

    assets = prepare_demo(tmp_path / "demo", n_train=3, n_test=2, epochs=3)
    config = str(assets.config)
    root = json.loads(json.dumps(__import__("yaml").safe_load(open(config))))["dataset"]["root"]
    added = runner.invoke(app, ["datasets", "add", "second", "--root", root, "--type", "imagefolder"])
    assert added.exit_code == 0, added.output
    out = tmp_path / "bench"
    result = runner.invoke(app, ["-c", config, "bench", "--datasets", "demo,second,absent", "--method", "image,zeroshot",
                                 "--out-dir", str(out), "--json"])
    assert result.exit_code == 0, result.output
    table = json.loads(result.stdout)
    assert list(table["datasets"]) == ["demo", "second"] and table["methods"] == ["image", "zeroshot"]
    assert "absent" in table["failed"] and "not registered" in table["failed"]["absent"]["error"]
    for name in ("demo", "second"):
        own = runner.invoke(app, ["-c", config, "eval", name, "--method", "image,zeroshot", "--out-dir", str(tmp_path / name), "--json", "--no-plot"])
        assert own.exit_code == 0, own.output
        means = {m["method"]: m["mean"] for m in json.loads(own.stdout)["methods"]}
        assert table["datasets"][name] == means
    for method in ("image", "zeroshot"):
        expected = (table["datasets"]["demo"][method] + table["datasets"]["second"][method]) / 2
        assert abs(table["mean"][method]["mean"] - expected) < 1e-12 and table["mean"][method]["datasets"] == 2
    assert (out / "bench.md").read_text().count("| demo |") == 1
    rows = (out / "bench.csv").read_text().splitlines()
    assert rows[0] == "dataset,method,test_acc,datasets" and len(rows) == 1 + 4 + 2

    # --from-cache computes nothing: concat is missing and named with the commands that make it
    cached = runner.invoke(app, ["-c", config, "bench", "--datasets", "demo", "--method", "image,concat", "--from-cache",
                                 "--out-dir", str(out), "--json"])
    assert cached.exit_code == 0, cached.output
    document = json.loads(cached.stdout)
    assert document["methods"] == ["image"] and document["datasets"]["demo"]["image"] == table["datasets"]["demo"]["image"]
    commands = document["failed"]["demo"]["commands"]
    assert commands and "describe" in commands[0] and "probe demo --features concat" in commands[0]

    # nothing usable: exit 1
    nothing = runner.invoke(app, ["-c", config, "bench", "--datasets", "absent", "--method", "image", "--from-cache", "--out-dir", str(out)])
    assert nothing.exit_code == 1


def test_clip_benchmark_json(tmp_path, runner):
    """eval --clip-benchmark: one CLIP_benchmark result per row; the recall computed independently from the stored predictions."""
    from lmmclf.cli.app import app
    from lmmclf.demo import prepare_demo
    from lmmclf.results import read_runs
    from lmmclf.store import ArtifactStore

    assets = prepare_demo(tmp_path / "demo", n_train=3, n_test=2, epochs=3)
    config = str(assets.config)
    out = tmp_path / "results"
    result = runner.invoke(app, ["-c", config, "eval", "--method", "image,zeroshot", "--compute-missing", "--no-plot",
                                 "--clip-benchmark", "--out-dir", str(out), "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    files = sorted((out / "clip_benchmark").glob("*.json"))
    assert len(files) == 2
    by_method = {json.loads(f.read_text())["lmmclf_method"]: json.loads(f.read_text()) for f in files}
    store = ArtifactStore(None)
    for summary in document["methods"]:
        data = by_method[summary["method"]]
        assert set(data) >= {"dataset", "model", "pretrained", "task", "metrics", "language"} and data["dataset"] == "demo"
        prefix = "lp_" if summary["method"] == "image" else ""
        assert data["task"] == ("linear_probe" if prefix else "zeroshot_classification")
        assert data["metrics"][f"{prefix}acc1"] == summary["mean"]
        with store.open("probe", summary["keys"][0]) as handle:
            runs = read_runs(handle)
        per_seed = []
        for run in runs:  # the metric is the mean over seeds, as the accuracy
            labels, predictions = list(run.test_labels), list(run.test_predictions)
            recalls = []
            for c in sorted(set(labels)):
                rows = [i for i, label in enumerate(labels) if label == c]
                recalls.append(sum(predictions[i] == c for i in rows) / len(rows))
            per_seed.append(sum(recalls) / len(recalls))
        assert abs(data["metrics"][f"{prefix}mean_per_class_recall"] - sum(per_seed) / len(per_seed)) < 1e-12
