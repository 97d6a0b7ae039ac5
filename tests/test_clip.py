"""The CLIP loader and the tiny open_clip model, loaded through the real factory."""

from __future__ import annotations

import pytest

from lmmclf.clip import clip_identity, load_clip
from lmmclf.errors import LmmclfError
from lmmclf.filehash import FileHashCache


def test_tiny_clip_loads_through_open_clip_factory(tiny_clip):
    import open_clip
    import torch
    from PIL import Image

    model, _, preprocess = open_clip.create_model_and_transforms(tiny_clip)
    assert len(model.visual.transformer.resblocks) == 12
    loaded = load_clip(tiny_clip, None, "cpu")
    pixels = loaded.preprocess(Image.new("RGB", (48, 40), (200, 30, 30)))
    assert pixels.shape == (3, 32, 32)
    with torch.inference_mode():
        image = loaded.model.encode_image(pixels[None])
        text = loaded.model.encode_text(loaded.tokenizer(["a photo of a red square", "x"]))
        reference = model.eval().encode_image(preprocess(Image.new("RGB", (48, 40), (200, 30, 30)))[None])
    assert image.shape == (1, loaded.embed_dim) and text.shape == (2, loaded.embed_dim)
    assert torch.allclose(image, reference)  # the same weights were loaded, not a fresh init


def test_same_seed_same_weights_same_identity(tmp_path):
    from lmmclf.testing.tiny_clip import make_tiny_clip

    hashes = FileHashCache(None)
    a = clip_identity(make_tiny_clip(tmp_path / "a", seed=1), None, hashes)
    b = clip_identity(make_tiny_clip(tmp_path / "b", seed=1), None, hashes)
    c = clip_identity(make_tiny_clip(tmp_path / "c", seed=2), None, hashes)
    assert a["local_sha256"] == b["local_sha256"] != c["local_sha256"]


def test_identity_of_tags_and_checkpoint_files(tmp_path):
    hashes = FileHashCache(None)
    assert clip_identity("ViT-L-14-quickgelu", "openai", hashes) == {"clip": "ViT-L-14-quickgelu", "pretrained": "openai"}
    checkpoint = tmp_path / "weights.pt"
    checkpoint.write_bytes(b"v1")
    first = clip_identity("ViT-B-32", str(checkpoint), hashes)
    checkpoint.write_bytes(b"v2-different")
    assert clip_identity("ViT-B-32", str(checkpoint), hashes) != first
    with pytest.raises(LmmclfError, match="does not exist"):
        clip_identity(f"local-dir:{tmp_path / 'missing'}", None, hashes)


def test_load_errors_are_user_errors(tmp_path):
    with pytest.raises(LmmclfError, match="open_clip_config.json"):
        load_clip(f"local-dir:{tmp_path}", None, "cpu")
    with pytest.raises(LmmclfError, match="Could not load CLIP"):
        load_clip("No-Such-Model", "openai", "cpu")


def test_checkpoint_file_given_home_relative_loads_the_file_its_identity_hashed(tmp_path, monkeypatch):
    import json

    import open_clip
    import torch

    from lmmclf.testing.tiny_clip import make_tiny_clip

    folder = tmp_path / "tiny"
    make_tiny_clip(folder, seed=3, layers=2)
    (tmp_path / "lmmclf-test-tiny-arch.json").write_text(json.dumps(json.loads((folder / "open_clip_config.json").read_text())["model_cfg"]))
    open_clip.add_model_config(tmp_path / "lmmclf-test-tiny-arch.json")  # a built-in architecture name
    monkeypatch.setenv("HOME", str(tmp_path))
    hashes = FileHashCache(None)
    identity = clip_identity("lmmclf-test-tiny-arch", "~/tiny/open_clip_model.safetensors", hashes)
    assert "pretrained_sha256" in identity  # the identity reads the file behind ~ ...
    loaded = load_clip("lmmclf-test-tiny-arch", "~/tiny/open_clip_model.safetensors", "cpu")  # ... so must the loader
    reference = load_clip(f"local-dir:{folder}", None, "cpu")
    assert torch.equal(loaded.model.visual.proj, reference.model.visual.proj)
