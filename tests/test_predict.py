"""``lmmclf predict`` and ``lmmclf.load_classifier``: trained methods applied to new images, through the real CLI.

One tiny demo experiment per module (a fake OpenAI-compatible server describes, the tiny CLIP embeds,
the real probe and fine-tuning train); the tests then predict on the dataset's own test images, whose stored
predictions the trained methods must reproduce.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import yaml

KEY_ENV = "LMMCLF_TEST_PREDICT_KEY"  # not OPENAI_API_KEY, which every test clears


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The demo experiment, described by a fake OpenAI-compatible server (deterministic, per-image answers),
    with one probe seed, image and concat probes and a baseline fine-tuning run."""
    import os

    from typer.testing import CliRunner

    from lmmclf.cli.app import app
    from lmmclf.demo import prepare_demo
    from lmmclf.testing.openai_server import FakeOpenAIServer

    base = tmp_path_factory.mktemp("predict")
    assets = prepare_demo(base / "demo", n_train=3, n_test=2, epochs=4)
    with FakeOpenAIServer() as server:
        os.environ[KEY_ENV] = "sk-test"
        config = yaml.safe_load(assets.config.read_text())
        config["describe"] = {"backend": "openai", "model": "m", "base_url": server.url, "api_key_env": KEY_ENV,
                              "num_descriptions": 3, "concurrency": 2, "timeout": 5.0}
        config["probe"]["seeds"] = [0]  # one seed: predictions must equal that run's stored ones exactly
        path = base / "one-seed.yaml"
        path.write_text(yaml.safe_dump(config))
        cache = base / "cache"
        runner = CliRunner()
        for command in (["describe"], ["embed"], ["prototypes"], ["probe", "--features", "image,concat"], ["finetune", "--alpha", "0"]):
            result = runner.invoke(app, ["-c", str(path), "--cache-dir", str(cache), *command])
            assert result.exit_code == 0, f"{command}: {result.output}"
        yield {"config": path, "cache": cache, "data": assets.data, "base": base, "server": server}
        os.environ.pop(KEY_ENV, None)


def _invoke(runner, trained, *args):
    from lmmclf.cli.app import app

    return runner.invoke(app, ["-c", str(trained["config"]), "--cache-dir", str(trained["cache"]), "predict", *args])


def _stored(trained, method: str) -> dict[str, str]:
    """Test item id -> the class the trained method stored for it (seed 0)."""
    from lmmclf.config import load_config
    from lmmclf.datasets import load_dataset
    from lmmclf.evaluation.methods import resolve_methods
    from lmmclf.results import read_runs
    from lmmclf.store import ArtifactStore

    cfg = load_config(trained["config"])
    store = ArtifactStore(trained["cache"])
    index = load_dataset(cfg, store, show_progress=False)
    spec = resolve_methods([method])[0].specs(cfg, index, store)[0]
    with store.open(spec.stage, spec.key) as handle:
        run = read_runs(handle)[0]
    return {item_id: index.class_names[p] for item_id, p in zip(run.test_ids, run.test_predictions)}


@pytest.mark.parametrize("method", ["image", "concat", "finetune"])
def test_predictions_on_the_test_images_equal_the_stored_ones(trained, runner, method):
    result = _invoke(runner, trained, str(trained["data"] / "test"), "--method", method, "--json", "--top-k", "2")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 8 and all(row["error"] is None and len(row["top"]) == 2 for row in rows)
    stored = _stored(trained, method)
    got = {row["path"].split("/test/")[1]: row["class"] for row in rows}  # the ids are paths under the root
    assert got == {item_id.split("test/", 1)[1]: label for item_id, label in stored.items()}
    assert all(sum(t["probability"] for t in row["top"]) <= 1 + 1e-9 for row in rows)


def test_a_second_predict_does_no_describe_or_embed_work_and_a_corrupt_file_is_reported(trained, runner, tmp_path):
    from lmmclf.testing.images import write_corrupt_image

    new = tmp_path / "new"
    shutil.copytree(trained["data"] / "test" / "apple", new / "apple")
    write_corrupt_image(new / "broken.png")
    csv_file = tmp_path / "out.csv"
    first = _invoke(runner, trained, str(new), "--method", "concat", "--json", "--csv", str(csv_file))
    assert first.exit_code == 0, first.output
    rows = [json.loads(line) for line in first.stdout.splitlines()]
    broken = [row for row in rows if row["path"].endswith("broken.png")]
    assert len(rows) == 3 and broken[0]["error"] and broken[0]["class"] is None
    assert all(row["class"] for row in rows if row is not broken[0])
    # the copies of test images the dataset holds: their answers are reused, the LMM is not asked
    asked = len(trained["server"].requests)
    assert "reused the descriptions of 2 images" in " ".join(first.stderr.split()) and "error" in first.stderr
    assert len(csv_file.read_text().splitlines()) == 4
    second = _invoke(runner, trained, str(new / "*.png"), str(new / "apple"), "--method", "concat", "--json")
    assert second.exit_code == 0, second.output
    assert "nothing was computed" in second.stderr
    assert len(trained["server"].requests) == asked  # the LMM was not asked again
    assert [json.loads(line)["class"] for line in second.stdout.splitlines()][1:] == [row["class"] for row in rows if row is not broken[0]]


def test_load_classifier_from_python(trained):
    import lmmclf
    from lmmclf.config import load_config

    classifier = lmmclf.load_classifier("demo", "image", config=load_config(trained["config"]), cache_dir=trained["cache"])
    assert classifier.classes == ["apple", "banana", "cherry", "grape"] and classifier.seeds == [0]
    paths = sorted((trained["data"] / "test").rglob("*.png"))
    probabilities = classifier.predict_proba(paths)
    assert probabilities.shape == (8, 4) and np.allclose(probabilities.sum(axis=1), 1)
    results = classifier.predict([*paths[:1], trained["base"] / "missing.png"])
    assert results[0].label in classifier.classes and results[1].error == "not found"


def test_an_untrained_method_names_the_commands_that_make_it(trained, runner):
    result = _invoke(runner, trained, str(trained["data"] / "test"), "--method", "mean")
    assert result.exit_code == 1
    assert "lmmclf -c" in result.stderr and "probe demo --features mean" in result.stderr
    assert "Traceback" not in result.output
