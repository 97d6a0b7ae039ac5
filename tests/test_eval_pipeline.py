"""End to end through the CLI: describe -> embed -> prototypes -> probe -> eval --method all."""

from __future__ import annotations

import json


def test_pipeline_from_describe_to_eval(tmp_path, runner):
    from lmmclf.cli.app import app
    from lmmclf.demo import prepare_demo

    assets = prepare_demo(tmp_path / "demo", n_train=3, n_test=2, epochs=5)
    config = str(assets.config)
    for command in (["describe"], ["embed"], ["prototypes"], ["probe", "--features", "image,text,concat,mean,zeroshot,prototype-zeroshot"]):
        result = runner.invoke(app, ["-c", config, *command])
        assert result.exit_code == 0, f"{command}: {result.output}"
    out = tmp_path / "results"
    result = runner.invoke(app, ["-c", config, "eval", "--method", "image,text,concat,mean,zeroshot,prototype-zeroshot",
                                 "--compare", "concat,image", "--out-dir", str(out), "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert [m["method"] for m in document["methods"]] == ["image", "text", "concat", "mean", "zeroshot", "prototype-zeroshot"]
    assert all(m["test_items"] == 8 for m in document["methods"])  # 4 classes x 2 test images, same images for all
    assert document["methods"][2]["seeds"] == [0, 1] and len(document["methods"][2]["curves"]["test_acc_mean"]) == 5
    assert document["comparison"]["items"] == 8
    assert (out / "accuracy.png").exists() and (out / "results.md").exists()
    table = runner.invoke(app, ["-c", config, "eval", "--method", "all", "--out-dir", str(out)])
    assert table.exit_code == 0 and "CONCAT" in table.stderr
