"""The stage table, declared key fields, backend options and the command lines hints print."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import pytest

from lmmclf import stages
from lmmclf.cli.app import app
from lmmclf.config import ExperimentConfig, field_declaration


@dataclass
class FakeDataset:
    """Just what key functions read: a fixed identity and split sizes."""

    name: str = "toy"
    n: int = 10

    def identity(self):
        return {"name": self.name, "fingerprint": "f" * 8, "options": {}}

    def split(self, which):
        return list(range(self.n if which == "all" else self.n // 2))


def _keys(cfg, store):
    from lmmclf.describe.artifact import describe_spec
    from lmmclf.embed.specs import image_embed_spec, text_embed_spec
    from lmmclf.finetune.artifact import finetune_spec
    from lmmclf.probe.stage import probe_spec
    from lmmclf.prototypes import prototypes_spec

    ds = FakeDataset()
    return {
        "describe": describe_spec(cfg, ds, store), "embed-image": image_embed_spec(cfg, ds, store),
        "embed-text": text_embed_spec(cfg, ds, store), "prototypes": prototypes_spec(cfg, ds, store),
        "probe-concat": probe_spec(cfg, ds, store, "concat"), "probe-zeroshot": probe_spec(cfg, ds, store, "zeroshot"),
        "finetune": finetune_spec(cfg, ds, store),
    }


# Keys computed before the key functions read the declarations (issue 16): existing caches keep them.
# Issue 9 item 9: the describe key is unchanged (its parser_version is frozen at 1); embed-text and what
# reads it changed on purpose, as their content does: they carry the parser version (now 2) descriptions are re-parsed with.
# Issue 22: embed-text holds the digest of the descriptions it reads instead (None here: no describe artifact exists),
# so embed-text and what reads it changed once more; describe and embed-image did not.
DEFAULT_KEYS = {
    "describe": "aa4f69ffdc38dab835bd2c2dae61706d74aa459cd09563ac7a6dd2cd4541e29c",
    "embed-image": "d6c83b7bbdfdd0bb3b694a9bba441f0bb4bfc17d99370107765ce5e15f9f3e80",
    "embed-text": "8e706612d264903b073060754d093cdf89a96215227169a4c18c3ee525467d8c",
    "prototypes": "a92d9d5e3363bf9baf3037a93a493aea7d9eb4e22afd5d4ecb3da9480557f44a",
    "probe-concat": "07dc75b6dc78a458e1517fecb8a495092809f0658d21e29afd9f6bd11d37fa15",
    "probe-zeroshot": "1b22486cf85665fddf4ac90574c5d21372651efef727494eeaf1c071eb1d1112",
    "finetune": "735ba290971e0fc4566274f6812b2c98449e8881681f4668c44a243ff705b04a",
}
VARIANT_KEYS = {
    "sample": ({"describe": {"sample": True, "temperature": 0.7}},
               {"describe": "749eccca6e83ad22d683c411da56a292d442c9d83fb9610216d0a386cfcfee61",
                "finetune": "58a65a26f62965ebd7e07849fedddf77cfcc58fb22673219b89263910588854d"}),
    "openai": ({"describe": {"backend": "openai", "model": "gpt-4o", "base_url": "http://x/v1", "image_max_side": 512, "concurrency": 3}},
               {"describe": "c1c245239add24a5cf5903a08f9e5fa4560cb8d6611ec1ea11a252eec0477171"}),
    "probe-adam": ({"probe": {"optimizer": "adam", "momentum": 0.5, "seeds": [1, 2], "normalize": True}},
                   {"probe-concat": "e9eedaa45622dc1a96439f2488e19912bd862d0d0746e7567528355f414aea4a"}),
    "ft-sgd": ({"finetune": {"optimizer": "sgd", "momentum": 0.8, "alpha": 0.0, "seeds": [3, 4]}},
               {"finetune": "bb8a64b20012ddb19d75b067feba7b20b07affb7ae863b6a2864ad9177d99068"}),
}


def _config(overrides):
    cfg = ExperimentConfig()
    for section, values in overrides.items():
        cfg = cfg.override(section, **values)
    return cfg


def test_keys_of_existing_caches_do_not_change(store):
    assert {name: spec.key for name, spec in _keys(ExperimentConfig(), store).items()} == DEFAULT_KEYS
    for overrides, expected in VARIANT_KEYS.values():
        keys = _keys(_config(overrides), store)
        assert {name: keys[name].key for name in expected} == expected


def test_key_params_come_from_the_declarations(store):
    keys = _keys(ExperimentConfig(), store)
    assert keys["describe"].params == {
        "backend": "hf", "dtype": "auto", "quantize": "auto", "limit": None, "max_new_tokens": 300, "num_descriptions": 10,
        "parser_version": 1, "prompt": "Give 10 semantic descriptions of the image", "repetition_penalty": 1.05,
        "sample": False, "split": "all",
    }
    assert stages.key_params(ExperimentConfig(), "probe") == {
        "epochs": 500, "lr": 1e-3, "optimizer": "sgd", "momentum": 0.9, "weight_decay": 0.0, "batch_size": 64,
        "normalize": False, "val_fraction": 0.0, "seeds": [0],
    }
    assert "momentum" not in stages.key_params(ExperimentConfig().override("probe", optimizer="adam"), "probe")
    assert stages.key_params(ExperimentConfig(), "embed-text") == {"storage_dtype": "float32"}
    finetune = keys["finetune"].params
    assert finetune == {
        "alpha": 0.01, "augment": False, "batch_size": 64, "epochs": 100, "head": "linear", "lr": 1e-4, "optimizer": "adam",
        "precision": "auto", "reg_reduction": "mean", "schedule": "constant", "seed": 0, "trunk_cache": True,
        "trunk_dtype": "float16", "unlocked_blocks": 1, "weight_decay": 0.0,
    }
    # the trainer's checkpoint identity and the key agree on the training settings
    from lmmclf.finetune.artifact import settings_from_config

    assert settings_from_config(ExperimentConfig()).identity().items() <= finetune.items()
    # sampling settings enter only when sampling; runtime settings never
    sampled = _keys(_config({"describe": {"sample": True, "device": "cpu", "batch_size": 3}}), store)["describe"].params
    assert (sampled["temperature"], sampled["top_p"], sampled["seed"]) == (1.0, 0.9, 0)
    assert "device" not in sampled and "batch_size" not in sampled


def test_every_config_field_is_declared():
    for section in dataclasses.fields(ExperimentConfig):
        for f in stages.section_fields(section.name):
            declaration = field_declaration(f)  # raises for a field declared with neither keyed() nor runtime()
            assert isinstance(declaration["key"], bool), f"{section.name}.{f.name}"
            when = declaration.get("when")
            if when:
                assert when[0] in {g.name for g in stages.section_fields(section.name)}
            also = declaration.get("also") or ()
            assert also == "*" or set(also) <= set(stages.ARTIFACTS), f"{section.name}.{f.name}: {also}"
    undeclared = dataclasses.field(default=1)
    undeclared.name = "new_setting"
    with pytest.raises(KeyError, match="new_setting"):
        field_declaration(undeclared)


def test_the_table_is_consistent():
    for artifact in stages.ARTIFACTS.values():
        assert set(artifact.parents) <= set(stages.ARTIFACTS)
        assert callable(stages.spec_function(artifact.name))
        stages.stage_of(artifact.name)  # every artifact is made by one stage
    for stage in stages.STAGES.values():
        assert set(stage.parents) <= set(stages.STAGES)
        assert set(stage.artifacts) <= set(stages.ARTIFACTS)
    from lmmclf.describe.artifact import STAGE_VERSION
    from lmmclf.embed.specs import IMAGE_VERSION, TEXT_VERSION

    assert (STAGE_VERSION, IMAGE_VERSION, TEXT_VERSION) == (1, 1, 1)
    assert stages.descendants(["describe"]) == ["describe", "embed-text", "prototypes", "probe", "finetune"]


def test_backends_declare_the_options_they_read(store, capsys):
    from lmmclf.describe.backends.base import backend_class, backend_options, unread_options

    options = set(backend_options())
    hf, openai = backend_class("hf"), backend_class("openai")
    assert set(hf.reads) <= options and set(openai.reads) <= options
    assert options == set(hf.reads) | set(openai.reads) | set(backend_class("minigpt4").reads)  # no option is read by no backend
    section = _config({"describe": {"backend": "openai", "device": "cuda", "dtype": "float16", "base_url": "http://x/v1"}}).describe
    assert unread_options(section, openai) == ["dtype", "device"]
    assert unread_options(section, hf) == ["base_url"]


def test_an_unread_option_is_warned_about_once_and_stays_out_of_the_key(store):
    from lmmclf.console import console
    from lmmclf.describe import artifact

    artifact._warned.clear()
    base = _config({"describe": {"backend": "openai", "model": "gpt-4o"}})
    odd = base.override("describe", dtype="float16", revision="abc")
    with console.capture() as captured:
        first = _keys(odd, store)["describe"]
        _keys(odd, store)
    text = captured.get()
    assert text.count("describe.dtype is set, but the openai backend does not read it") == 1
    assert "describe.revision" in text
    assert first.key == _keys(base, store)["describe"].key


def test_commands_carry_the_global_options(tmp_path):
    assert stages.command("embed", "toy") == "lmmclf embed toy"
    assert stages.command("probe", "toy", ["--features", "image"]) == "lmmclf probe toy --features image"
    options = stages.Invocation(config_path=tmp_path / "my exp.yaml", cache_dir=tmp_path / "c")
    token = stages.invocation.set(options)
    try:
        assert stages.command("finetune", "toy", ["--alpha", "0"]) == (
            f"lmmclf -c '{tmp_path}/my exp.yaml' --cache-dir {tmp_path}/c finetune toy --alpha 0")
        from lmmclf.evaluation.methods import METHODS, load_extensions

        load_extensions()
        assert METHODS["lmm-reg"].command(ExperimentConfig(), "bar").endswith("finetune bar --alpha 0.01")
        assert METHODS["lmm-reg"].command(ExperimentConfig(), "bar").startswith("lmmclf -c ")
    finally:
        stages.invocation.reset(token)
    assert stages.command("embed") == "lmmclf embed"


def test_a_missing_input_names_a_runnable_command_with_the_options_in_effect(runner, tmp_path):
    from lmmclf.testing.layouts import make_imagefolder

    root = make_imagefolder(tmp_path / "images", class_names=("a", "b"), n_train=2, n_test=2)
    config = tmp_path / "exp.yaml"
    config.write_text(json.dumps({"dataset": {"name": "toy", "type": "imagefolder", "root": str(root)}}))
    cache = tmp_path / "my cache"
    result = runner.invoke(app, ["-c", str(config), "--cache-dir", str(cache), "prototypes"])
    assert result.exit_code == 1
    assert f"lmmclf -c {config} --cache-dir '{cache}' embed toy" in " ".join(result.stderr.split())
    assert stages.invocation.get() == stages.Invocation()  # reset when the command ended


def test_config_show_keys(runner):
    result = runner.invoke(app, ["config", "show", "--keys"])
    assert result.exit_code == 0
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.startswith("  ")}
    assert "runtime" in lines["max_missing_descriptions"]
    assert "key of describe, embed-image" in lines["limit"]
    rows = json.loads(runner.invoke(app, ["config", "show", "--keys", "--json"]).stdout)
    by_name = {(row["section"], row["name"]): row for row in rows}
    assert by_name[("probe", "momentum")]["when"] == "optimizer = sgd"
    assert by_name[("describe", "image_max_side")]["read_by"] == ["openai"]
    assert by_name[("embed", "batch_size")]["key"] is False
    assert "probe" in by_name[("describe", "prompt")]["recomputes"]


def test_cache_ls_tells_artifacts_of_one_stage_apart(runner, store):
    import numpy as np

    from lmmclf.store import KeySpec

    for seed in (0, 1):
        spec = KeySpec(stage="probe", version=1, dataset={"name": "bar"},
                       params={"features": "concat", "seeds": [seed], "epochs": 500, "lr": 0.001})
        store.ensure(spec, lambda handle: handle.create_dataset("x", data=np.zeros(2)) and 2)
    rows = json.loads(runner.invoke(app, ["cache", "ls", "--json"]).stdout)
    assert sorted(row["label"] for row in rows) == ["features=concat seeds=0", "features=concat seeds=1"]
    human = runner.invoke(app, ["cache", "ls"]).stderr  # a narrow terminal wraps the cell
    assert "params" in human and "seeds=1" in human and "seeds=0" in human


def test_with_option_replaces_a_value_or_appends_the_option():
    from lmmclf.stages import with_option

    assert with_option("lmmclf describe pets --model m --json", "--model", "/models/x y") == "lmmclf describe pets --model '/models/x y' --json"
    assert with_option("lmmclf describe pets --model=m", "--model", "n") == "lmmclf describe pets --model=n"
    assert with_option("lmmclf describe pets", "--repetition-penalty", "1.0") == "lmmclf describe pets --repetition-penalty 1.0"
