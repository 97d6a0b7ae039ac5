"""One resolver for model references, one home for devices and precision, one describe writer.

- A local model folder that moved since its artifacts were made is never taken for a hub id:
  keys reuse the identity last seen for it (with a note), loading it is one sentence naming it.
- Identities of models that stayed where they were are exactly what they were before the
  resolver (so existing artifacts keep their keys).
- Device and precision rules, with each stage's difference as an explicit argument.
- The testing describe writer is the describe stage's own writer.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil

import pytest
import torch

from lmmclf.cli.app import app
from lmmclf.config import ExperimentConfig
from lmmclf.datasets import register
from lmmclf.errors import LmmclfError
from lmmclf.filehash import FileHashCache
from lmmclf.hashing import hash_strings
from lmmclf.models import looks_like_path, resolve_model_ref
from lmmclf.testing.layouts import make_imagefolder

# -- identities stay what they were ---------------------------------------------------------------

def _identity_before_the_resolver(name_or_path, revision, hashes) -> dict:
    """hf_model_identity + HFBackend's chat-template part, as written before the resolver (the keys of existing artifacts)."""
    from pathlib import Path

    path = Path(name_or_path).expanduser()
    if not path.exists():
        return {"name": name_or_path, "revision": revision or "main"}
    suffixes = (".safetensors", ".bin", ".pt", ".pth", ".json", ".model", ".txt", ".gguf", ".ckpt")
    parts = []
    for file in sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in suffixes):
        parts += [file.relative_to(path).as_posix(), hashes.hash(file)]
    identity = {"name": path.name, "local_sha256": hash_strings(parts)}
    if (path / "chat_template.jinja").is_file():
        identity["chat_template_sha256"] = hashes.hash(path / "chat_template.jinja")
    return identity


def test_identities_of_models_that_did_not_move_are_unchanged(tmp_path):
    from lmmclf.clip import clip_identity
    from lmmclf.describe.backends.hf import HFBackend

    folder = tmp_path / "lmm"
    (folder / "sub").mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "sub" / "model.safetensors").write_bytes(b"weights")
    (folder / "chat_template.jinja").write_text("{{ messages }}")
    (folder / "notes.md").write_text("not hashed")
    hashes = FileHashCache(None)
    for model in (str(folder), "llava-hf/llava-1.5-7b-hf"):
        for revision in (None, "a" * 40):
            section = ExperimentConfig().override("describe", model=model, revision=revision).describe
            assert HFBackend.key_parts(section, hashes)[0] == _identity_before_the_resolver(model, revision, hashes)
    assert clip_identity("ViT-L-14-quickgelu", "openai", hashes) == {"clip": "ViT-L-14-quickgelu", "pretrained": "openai"}
    assert clip_identity("hf-hub:org/clip", None, hashes) == {"clip": "hf-hub:org/clip", "pretrained": None}
    checkpoint = tmp_path / "ckpt.pt"
    checkpoint.write_bytes(b"v1")
    assert clip_identity("ViT-B-32", str(checkpoint), hashes) == {"clip": "ViT-B-32", "pretrained_sha256": hashes.hash(checkpoint)}
    local = clip_identity(f"local-dir:{folder}", None, hashes)
    assert local == {"clip": "local-dir", "name": "lmm", "local_sha256": _identity_before_the_resolver(str(folder), None, hashes)["local_sha256"]}


def test_what_looks_like_a_path():
    for ref in ("/abs/model", "./model", "../model", "~/model", "models/a/b", "~"):
        assert looks_like_path(ref), ref
    for ref in ("llava-hf/llava-1.5-7b-hf", "gpt2", "openai"):
        assert not looks_like_path(ref), ref
    assert looks_like_path("ckpts/model.pt", hub_ids=False)  # a CLIP pretrained is a tag or a file, never a hub id


def test_a_hub_id_that_is_not_on_disk_stays_a_hub_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    hashes = FileHashCache(tmp_path / "memo.sqlite")
    ref = resolve_model_ref("org/name", "v1", hashes)
    assert (ref.kind, ref.identity, ref.load_name) == ("hub", {"name": "org/name", "revision": "v1"}, "org/name")
    with pytest.raises(LmmclfError, match="does not exist and this cache has no record"):
        resolve_model_ref("./org/name", None, hashes)  # written as a path: never the hub


def test_an_org_name_folder_seen_before_stays_local_after_it_moved(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "org" / "name").mkdir(parents=True)
    (tmp_path / "org" / "name" / "config.json").write_text("{}")
    hashes = FileHashCache(tmp_path / "memo.sqlite")
    before = resolve_model_ref("org/name", None, hashes)
    shutil.move(tmp_path / "org", tmp_path / "elsewhere")
    hashes = FileHashCache(tmp_path / "memo.sqlite")  # a later process: the note comes from the memo
    after = resolve_model_ref("org/name", None, hashes)
    assert after.kind == "local" and after.remembered and after.identity == before.identity
    with pytest.raises(LmmclfError, match="Cannot load model .*org/name: it does not exist"):
        resolve_model_ref("org/name", None, hashes, load=True)


def test_a_damaged_or_read_only_memo_never_fails_a_command(tmp_path):
    memo = tmp_path / "memo.sqlite"
    hashes = FileHashCache(memo)
    hashes.remember_model(tmp_path / "gone", "not json")
    with pytest.raises(LmmclfError, match="no record"):  # a damaged note counts as none
        resolve_model_ref(str(tmp_path / "gone"), None, hashes)
    hashes.close()
    hashes.remember_model(tmp_path / "gone", "{}")  # a closed (unusable) database: nothing raised
    assert hashes.model_identity(tmp_path / "gone") is None


# -- the moved-folder case through the real CLI ----------------------------------------------------

@pytest.fixture
def moved_llava(tmp_path, tiny_clip):
    """pets described by a tiny local LLaVA, then the LLaVA folder moved away."""
    from lmmclf.testing.tiny_lmm import make_tiny_llava

    register("pets", make_imagefolder(tmp_path / "pets", n_train=2, n_test=1), "imagefolder")
    from lmmclf.testing.teach import teach_numbered_lists

    model = teach_numbered_lists(make_tiny_llava(tmp_path / "models" / "tiny-llava"))
    cfg = ExperimentConfig().override("describe", model=str(model), split="train", limit=2, max_new_tokens=40,
                                      quantize="none", device="cpu", batch_size=2)
    cfg = cfg.override("embed", clip_model=tiny_clip, clip_pretrained=None, device="cpu", num_workers=0)
    config = tmp_path / "exp.yaml"
    config.write_text(cfg.to_yaml())
    return config, model, cfg


def test_a_moved_lmm_folder_is_remembered_or_named_never_the_hub(runner, moved_llava, tmp_path, monkeypatch):
    import huggingface_hub

    config, model, cfg = moved_llava
    first = runner.invoke(app, ["-c", str(config), "describe", "pets", "--json"])
    assert first.exit_code == 0, first.output
    key = json.loads(first.stdout)["key"]
    shutil.move(model, tmp_path / "moved-llava")

    def no_hub(*args, **kwargs):
        raise AssertionError("the hub was asked for a local model")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_hub)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", no_hub)

    # nothing to load: the same key, the cached artifact, and a note naming the missing folder
    again = runner.invoke(app, ["-c", str(config), "describe", "pets", "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["key"] == key
    embed = runner.invoke(app, ["-c", str(config), "embed", "pets"])
    assert embed.exit_code == 0, embed.output
    assert f"describe.model {model} is gone" in " ".join(again.stderr.split())  # once per process (CliRunner: one)
    assert re.search(r"Embedded \d+ descriptions of 2 images", embed.stderr)  # read from the artifact the moved model made

    # something to load (a third image): one sentence naming the folder, no traceback, no hub
    more = runner.invoke(app, ["-c", str(config), "describe", "pets", "--limit", "3"])
    assert more.exit_code == 1
    text = " ".join(more.stderr.split())
    assert f"Cannot load describe.model {model}: it does not exist" in text and "Traceback" not in more.output

    # a fresh cache has no record of the folder: one sentence, not a download
    fresh = runner.invoke(app, ["--cache-dir", str(tmp_path / "fresh"), "-c", str(config), "embed", "pets"])
    assert fresh.exit_code == 1
    assert f"describe.model {model} does not exist and this cache has no record of it" in " ".join(fresh.stderr.split())


def test_a_moved_clip_folder_keeps_its_keys_and_cannot_be_loaded(tmp_path, store):
    from lmmclf.clip import clip_identity, load_clip
    from lmmclf.testing.tiny_clip import make_tiny_clip

    name = make_tiny_clip(tmp_path / "clip" / "tiny", seed=4)
    hashes = FileHashCache(store.file_hash_db())
    before = clip_identity(name, None, hashes)
    shutil.move(tmp_path / "clip", tmp_path / "clip-moved")
    assert clip_identity(name, None, FileHashCache(store.file_hash_db())) == before
    with pytest.raises(LmmclfError, match=r"Cannot load embed.clip_model folder .*tiny: it does not exist"):
        load_clip(name, None, "cpu")
    checkpoint = tmp_path / "w" / "weights.pt"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"v1")
    seen = clip_identity("ViT-B-32", str(checkpoint), hashes)
    checkpoint.unlink()
    assert clip_identity("ViT-B-32", str(checkpoint), hashes) == seen  # not the tag "…/weights.pt"
    with pytest.raises(LmmclfError, match="Cannot load embed.clip_pretrained"):
        load_clip("ViT-B-32", str(checkpoint), "cpu")


# -- devices and precision -------------------------------------------------------------------------

@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_device_rules(no_cuda, monkeypatch):
    from lmmclf.devices import resolve_device

    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("auto") == resolve_device(None) == "mps"  # embed, probe, finetune
    assert resolve_device("auto", mps=False) == "cpu"  # the describe hf backend: CUDA or CPU only
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(LmmclfError, match="no CUDA GPU"):
        resolve_device("cuda:1")


def test_precision_rules(monkeypatch):
    from lmmclf.devices import resolve_precision, torch_dtype

    assert resolve_precision("auto", "cpu") == resolve_precision("auto", torch.device("cpu"), prefer_bf16=True) == "fp32"
    assert resolve_precision("auto", "cuda:0") == "fp16"  # embed: fp16 inference
    for supported, expected in ((True, "bf16"), (False, "fp16")):  # finetune: bf16 where the GPU has it
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda supported=supported: supported)
        assert resolve_precision("auto", torch.device("cuda", 0), prefer_bf16=True) == expected
    assert resolve_precision("bf16", "cpu") == "bf16"
    assert torch_dtype("auto", "cpu") == torch.float32 and torch_dtype("auto", "cuda") == torch.float16
    assert torch_dtype("bfloat16", "cpu") == torch.bfloat16


def test_autocast_contexts():
    from functools import partial

    from lmmclf.devices import autocast

    assert isinstance(autocast("fp32", "cpu"), contextlib.nullcontext)
    with autocast("bf16", torch.device("cpu")):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    factory = partial(autocast, "bf16", "cpu")  # what the fine-tuning loop enters every step
    with factory():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16


# -- one writer per format -------------------------------------------------------------------------

def test_the_testing_describe_writer_is_the_stage_writer(store, monkeypatch):
    from lmmclf.describe import artifact
    from lmmclf.store import KeySpec
    from lmmclf.testing.describe_artifact import write_describe_artifact

    calls = []
    real = artifact.write_artifact
    monkeypatch.setattr(artifact, "write_artifact", lambda *a, **k: calls.append(a) or real(*a, **k))
    spec = KeySpec(stage="describe", version=1, dataset={"name": "d"}, params={"source": "test"})
    ids = ["a", "b", "c"]
    write_describe_artifact(store, spec, ids, [["x one", "x two"], [], ["z"] * 5], ok=[True, False, True],
                            errors=["", "RuntimeError: boom", ""], k=3)
    assert calls, "the testing writer must go through lmmclf.describe.artifact.write_artifact"
    rows = artifact.read_rows(store.path("describe", spec.key))  # what embed reads
    assert [(r["id"], r["ok"], r.get("descriptions")) for r in rows] == [
        ("a", True, ["x one", "x two"]), ("b", False, None), ("c", True, ["z", "z", "z"])]
    assert rows[1]["error"] == "RuntimeError: boom"
