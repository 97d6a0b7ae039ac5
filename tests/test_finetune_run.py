"""``run_finetune`` and ``lmmclf finetune`` end to end on a toy experiment.

Real stages all the way: an image folder, a tiny open_clip model (``local-dir:``),
hand-written descriptions stored as a describe artifact, embed-text and prototypes computed
by their own code, then fine-tuning with its artifacts, checkpoints and CLI.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from lmmclf.config import ExperimentConfig
from lmmclf.store import ArtifactStore


@pytest.fixture(scope="module")
def image_root(tmp_path_factory):
    from lmmclf.testing.layouts import make_imagefolder

    return make_imagefolder(tmp_path_factory.mktemp("data") / "toy", n_train=6, n_test=3)


def toy_finetune_config(image_root, tiny_clip, **finetune) -> ExperimentConfig:
    from lmmclf.testing.paper1 import toy_config

    cfg = toy_config(image_root, tiny_clip)
    values = {"epochs": 2, "batch_size": 8, "lr": 1e-3, "device": "cpu", "num_workers": 0, "trunk_dtype": "float32", **finetune}
    return cfg.override("finetune", **values)


def make_prototypes_for(cfg, store, change_description=None):
    """describe (hand-written) -> embed-text -> prototypes, the way the real stages run them."""
    from lmmclf.datasets import load_dataset
    from lmmclf.describe import describe_spec
    from lmmclf.embed.run import embed_texts
    from lmmclf.prototypes import make_prototypes
    from lmmclf.testing.describe_artifact import write_describe_artifact
    from lmmclf.testing.paper1 import class_descriptions

    dataset = load_dataset(cfg, store, show_progress=False)
    texts = [class_descriptions(dataset.class_names, item.label, i) for i, item in enumerate(dataset.items)]
    if change_description:
        split = change_description
        row = next(i for i, item in enumerate(dataset.items) if item.split == split)
        texts[row] = ["something entirely different", "and another thing"]
    write_describe_artifact(store, describe_spec(cfg, dataset, store), [i.id for i in dataset.items], texts, k=3)
    embed_texts(cfg, dataset, store)
    make_prototypes(cfg, dataset, store)
    return dataset


@pytest.fixture
def experiment(image_root, tiny_clip, store):
    cfg = toy_finetune_config(image_root, tiny_clip)
    dataset = make_prototypes_for(cfg, store)
    return cfg, dataset


def test_run_finetune_stores_runs_weights_and_reuses_them(experiment, store):
    from lmmclf.finetune import finetune_spec, load_finetuned, run_finetune
    from lmmclf.prototypes import load_prototypes

    cfg, dataset = experiment
    outcomes = run_finetune(cfg, store, show_progress=False)
    (outcome,) = outcomes
    assert outcome.trained and outcome.key == finetune_spec(cfg, dataset, store).key
    run = outcome.run
    assert len(run.test_acc) == 2 and set(run.curves) >= {"ce_loss", "reg_loss", "proto_distance", "test_loss"}
    assert run.test_ids == [item.id for item in dataset.split("test")]
    assert not store.partial_path("finetune", outcome.key, "ckpt.pt").exists()  # removed when done
    with store.open("finetune", outcome.key) as handle:
        np.testing.assert_array_equal(handle["prototypes"][()], load_prototypes(cfg, dataset, store)[0])
        assert handle.attrs["trunk_key"]  # trained from the trunk cache
    assert store.list()  # trunk and finetune artifacts
    assert any(info.stage == "trunk" for info in store.list())

    # the stored weights rebuild the classifier and give the stored predictions
    import torch
    from PIL import Image

    trunk, model, preprocess, names = load_finetuned(outcome.weights)
    assert names == dataset.class_names
    images = torch.stack([preprocess(Image.open(item.path).convert("RGB")) for item in dataset.split("test")])
    with torch.no_grad():
        _, logits = model(trunk(images))
    assert logits.argmax(dim=1).tolist() == run.test_predictions.tolist()

    again = run_finetune(cfg, store, show_progress=False)
    assert not again[0].trained and again[0].run.test_acc.tolist() == run.test_acc.tolist()


def test_alpha_zero_is_the_baseline_with_everything_else_equal(experiment, store):
    from lmmclf.finetune import finetune_spec, run_finetune

    cfg, dataset = experiment
    base_cfg = cfg.override("finetune", alpha=0.0)
    reg_cfg = cfg.override("finetune", alpha=0.5)
    base = run_finetune(base_cfg, store, show_progress=False)[0]
    reg = run_finetune(reg_cfg, store, show_progress=False)[0]
    assert base.key != reg.key
    a, b = finetune_spec(base_cfg, dataset, store), finetune_spec(reg_cfg, dataset, store)
    assert {k: v for k, v in a.params.items() if k != "alpha"} == {k: v for k, v in b.params.items() if k != "alpha"}
    assert a.inputs == b.inputs and a.model == b.model
    assert reg.run.curves["train_proto_distance"][-1] < base.run.curves["train_proto_distance"][-1]


def test_key_covers_every_hyperparameter_but_not_speed_settings(experiment, store):
    from lmmclf.finetune import finetune_spec

    cfg, dataset = experiment
    key = finetune_spec(cfg, dataset, store).key
    for change in ({"lr": 1e-2}, {"epochs": 3}, {"batch_size": 4}, {"unlocked_blocks": 2}, {"optimizer": "sgd"},
                   {"weight_decay": 0.1}, {"schedule": "cosine"}, {"reg_reduction": "sum"}, {"seeds": [1]},
                   {"trunk_dtype": "float16"}, {"trunk_cache": False}, {"precision": "bf16"}):
        assert finetune_spec(cfg.override("finetune", **change), dataset, store).key != key, change
    for change in ({"device": "cuda"}, {"num_workers": 4}, {"grad_checkpointing": True}, {"momentum": 0.5}):
        assert finetune_spec(cfg.override("finetune", **change), dataset, store).key == key, change
    other_clip = dataclasses.replace(cfg, embed=dataclasses.replace(cfg.embed, clip_model="ViT-B-32", clip_pretrained="openai"))
    assert finetune_spec(other_clip, dataset, store).key != key


def test_prototypes_come_from_the_training_split_only(image_root, tiny_clip, tmp_path):
    from lmmclf.finetune import finetune_spec
    from lmmclf.prototypes import load_prototypes

    cfg = toy_finetune_config(image_root, tiny_clip)
    results = {}
    for variant in (None, "test", "train"):
        store = ArtifactStore(tmp_path / f"cache-{variant}")
        dataset = make_prototypes_for(cfg, store, change_description=variant)
        results[variant] = (finetune_spec(cfg, dataset, store).key, load_prototypes(cfg, dataset, store)[0])
    # another test description is other text embeddings (their key holds the descriptions' digest), so the
    # keys follow; the prototypes themselves are equal up to the text encoder's batch-dependent rounding
    assert results["test"][0] != results[None][0]
    np.testing.assert_allclose(results["test"][1], results[None][1], rtol=0, atol=1e-5)
    assert np.abs(results["train"][1] - results[None][1]).max() > 1e-3  # the check can fail


def test_interrupted_run_resumes_to_the_uninterrupted_result(experiment, store, tmp_path):
    from lmmclf.finetune import run_finetune
    from lmmclf.finetune.trainer import TrainingInterrupted

    cfg, _ = experiment
    cfg = cfg.override("finetune", epochs=3, batch_size=4, alpha=0.05)
    calls = {"n": 0}

    def stop_once():
        calls["n"] += 1
        return calls["n"] == 7  # 5 steps per epoch: inside epoch 2

    with pytest.raises(TrainingInterrupted, match="checkpoint saved"):
        run_finetune(cfg, store, show_progress=False, should_stop=stop_once)
    resumed = run_finetune(cfg, store, show_progress=False)[0]
    assert resumed.trained
    reference = run_finetune(cfg, store, show_progress=False, force=True, resume=False)[0].run  # uninterrupted
    assert resumed.run.test_acc.tolist() == reference.test_acc.tolist()
    for name, values in reference.curves.items():
        assert resumed.run.curves[name].tolist() == values.tolist(), name


def test_cli_trains_baseline_and_regularised_runs(experiment, runner, store):
    from lmmclf.cli.app import app

    cfg, _ = experiment
    config = store.root.parent / "exp.yaml"
    config.write_text(cfg.to_yaml())
    base = runner.invoke(app, ["-c", str(config), "finetune", "--alpha", "0", "--seeds", "0,1", "--json"])
    assert base.exit_code == 0, base.output
    rows = json.loads(base.stdout)
    assert [row["seed"] for row in rows] == [0, 1] and rows[0]["key"] != rows[1]["key"]
    assert len(rows[0]["curves"]["test_acc"]) == 2 and "proto_distance" in rows[0]["curves"]
    reg = runner.invoke(app, ["-c", str(config), "finetune", "--alpha", "0.01", "--no-trunk-cache", "--epochs", "1"])
    assert reg.exit_code == 0, reg.output
    assert "LMM-Reg.-CLIP" in reg.stderr


def test_cli_names_the_missing_prototypes(image_root, tiny_clip, runner, store):
    from lmmclf.cli.app import app

    config = store.root.parent / "exp.yaml"
    config.write_text(toy_finetune_config(image_root, tiny_clip).to_yaml())
    result = runner.invoke(app, ["-c", str(config), "finetune", "--unlocked-blocks", "1"])
    assert result.exit_code == 1
    assert f"`lmmclf -c {config} prototypes toy`" in " ".join(result.stderr.split())  # runnable, with the config in effect
    bad = runner.invoke(app, ["-c", str(config), "finetune", "--optimizer", "lion"])
    assert bad.exit_code == 2 and "Invalid value for --optimizer" in " ".join(bad.output.replace("│", " ").split())  # a usage error


def test_eval_shows_both_finetune_rows(experiment, runner, store, tmp_path):
    from lmmclf.cli.app import app
    from lmmclf.finetune import run_finetune

    cfg, _ = experiment
    config = tmp_path / "exp.yaml"
    config.write_text(cfg.to_yaml())
    base = run_finetune(cfg.override("finetune", alpha=0.0), store, show_progress=False)[0]
    partial = runner.invoke(app, ["-c", str(config), "eval", "--method", "all", "--no-plot", "--out-dir", str(tmp_path / "r0")])
    assert partial.exit_code == 0, partial.output
    assert "Finetuning w/o" in partial.stderr and "lmmclf -c" in partial.stderr  # the label may wrap in its cell  # lmm-reg: its command, with the config
    assert "--alpha 0.01" in partial.stderr
    reg = run_finetune(cfg, store, show_progress=False)[0]
    result = runner.invoke(app, ["-c", str(config), "eval", "--method", "finetune,lmm-reg", "--json", "--no-plot",
                                 "--out-dir", str(tmp_path / "r1")])
    assert result.exit_code == 0, result.output
    rows = {row["method"]: row for row in json.loads(result.stdout)["methods"]}
    assert rows["finetune"]["label"] == "Finetuning w/o Reg." and rows["finetune"]["keys"] == [base.key]
    assert rows["lmm-reg"]["label"] == "LMM-Reg.-CLIP" and rows["lmm-reg"]["keys"] == [reg.key]
    assert rows["lmm-reg"]["final_acc"] == [reg.run.final_acc] and rows["lmm-reg"]["alpha"] == cfg.finetune.alpha


def test_each_seed_starts_from_clip_whatever_ran_before(experiment, store, tmp_path):
    from lmmclf.finetune import run_finetune

    cfg, _ = experiment
    together = run_finetune(cfg.override("finetune", seeds=[0, 1]), store, show_progress=False)
    alone_store = ArtifactStore(tmp_path / "alone")
    make_prototypes_for(cfg, alone_store)
    alone = run_finetune(cfg.override("finetune", seeds=[1]), alone_store, show_progress=False)[0]
    assert together[1].key == alone.key
    assert together[1].run.curves["ce_loss"].tolist() == alone.run.curves["ce_loss"].tolist()
    assert together[0].run.curves["ce_loss"].tolist() != alone.run.curves["ce_loss"].tolist()


def test_augmentation_trains_without_the_trunk_cache(experiment, store):
    from lmmclf.finetune import finetune_spec, run_finetune

    cfg, dataset = experiment
    cfg = cfg.override("finetune", augment=True, epochs=1)
    assert finetune_spec(cfg, dataset, store).params["trunk_cache"] is False
    outcome = run_finetune(cfg, store, show_progress=False)[0]
    with store.open("finetune", outcome.key) as handle:
        assert handle.attrs["trunk_key"] == ""
    assert not any(info.stage == "trunk" for info in store.list())


def test_eval_compute_missing_makes_the_prototypes_finetuning_needs(image_root, tiny_clip, store):
    from lmmclf.datasets import load_dataset
    from lmmclf.describe import describe_spec
    from lmmclf.evaluation.report import evaluate
    from lmmclf.testing.paper1 import write_toy_descriptions

    cfg = toy_finetune_config(image_root, tiny_clip, epochs=1)
    dataset = load_dataset(cfg, store, show_progress=False)
    write_toy_descriptions(store, dataset, spec=describe_spec(cfg, dataset, store))  # describe only
    document, missing = evaluate(cfg, dataset, store, ["lmm-reg"], compute_missing=True)
    assert [m["method"] for m in document["methods"]] == ["lmm-reg"] and not missing


def test_load_finetuned_expands_a_home_relative_path(experiment, store, monkeypatch):
    from lmmclf.finetune import load_finetuned, run_finetune

    cfg, dataset = experiment
    outcome = run_finetune(cfg.override("finetune", epochs=1), store, show_progress=False)[0]
    monkeypatch.setenv("HOME", str(outcome.weights.parent))
    _, _, _, names = load_finetuned(f"~/{outcome.weights.name}")  # as docs/finetune.md shows it
    assert names == dataset.class_names
