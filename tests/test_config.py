"""The experiment config: defaults, YAML, overrides, and the errors that name the key."""

from __future__ import annotations

import pytest

from lmmclf.config import ExperimentConfig, config_from_dict, load_config
from lmmclf.errors import ConfigError


def test_defaults_follow_the_papers():
    cfg = ExperimentConfig()
    assert cfg.describe.num_descriptions == 10 and cfg.describe.max_new_tokens == 300
    assert (cfg.probe.epochs, cfg.probe.lr) == (500, 1e-3)
    assert (cfg.finetune.epochs, cfg.finetune.batch_size, cfg.finetune.lr, cfg.finetune.alpha) == (100, 64, 1e-4, 1e-2)
    assert cfg.embed.clip_model == "ViT-L-14-quickgelu" and cfg.embed.clip_pretrained == "openai"


def test_yaml_round_trip(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("dataset:\n  name: bar\nprobe:\n  lr: 1e-2\n  seeds: [0, 1]\n")
    cfg = load_config(path)
    assert cfg.dataset.name == "bar" and cfg.probe.lr == 0.01 and cfg.probe.seeds == [0, 1]
    again = tmp_path / "again.yaml"
    again.write_text(cfg.to_yaml())
    assert load_config(again) == cfg


@pytest.mark.parametrize(
    "data, message",
    [
        ({"probe": {"epochz": 3}}, "probe.epochz"),
        ({"probes": {}}, "unknown section 'probes'"),
        ({"describe": {"batch_size": "big"}}, "describe.batch_size"),
        ({"describe": {"quantize": "3bit"}}, "describe.quantize"),
        ({"probe": {"normalize": "yes"}}, "probe.normalize"),
        ({"probe": {"seeds": ["a"]}}, r"probe.seeds\[0\]"),
        ({"probe": {"epochs": 0}}, "probe.epochs must be at least 1"),
        ({"finetune": {"lr": -1e-4}}, "finetune.lr must be positive"),
        ({"describe": {"batch_size": -2}}, "describe.batch_size must be at least 0"),
        ({"probe": {"val_fraction": 1.0}}, "probe.val_fraction must be between 0 and 0.99"),
    ],
)
def test_bad_values_name_the_key(data, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(data, source="exp.yaml")


def test_flags_override_and_are_validated():
    cfg = ExperimentConfig().override("probe", lr=0.5, epochs=None, seeds="3,4")
    assert cfg.probe.lr == 0.5 and cfg.probe.epochs == 500 and cfg.probe.seeds == [3, 4]
    with pytest.raises(ConfigError, match="probe.epochs"):
        ExperimentConfig().override("probe", epochs="many")


def test_missing_or_broken_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("probe: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
