"""The embed stage: image and description embeddings through a tiny open_clip model."""

from __future__ import annotations


import numpy as np
import pytest

from lmmclf.errors import MissingArtifactError


@pytest.fixture(scope="module")
def clip_name(tmp_path_factory):
    from lmmclf.testing.tiny_clip import make_tiny_clip

    return make_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny")


@pytest.fixture(scope="module")
def loaded(clip_name):
    from lmmclf.clip import load_clip

    return load_clip(clip_name, None, "cpu")


@pytest.fixture
def toy(tmp_path, clip_name, store):
    from lmmclf.datasets import load_dataset
    from lmmclf.testing.layouts import make_imagefolder
    from lmmclf.testing.paper1 import toy_config

    root = make_imagefolder(tmp_path / "images", class_names=("a", "b", "c"), n_train=3, n_test=2)
    cfg = toy_config(root, clip_name)
    return cfg, load_dataset(cfg, store, show_progress=False)


def test_trimmed_text_encoding_equals_full_context(loaded):
    import torch

    from lmmclf.embed.texts import encode_tokens

    tokens = loaded.tokenizer(["a", "a much longer description of a red square on a table", "two words"])
    with torch.inference_mode():
        full = loaded.model.encode_text(tokens)
        trimmed = encode_tokens(loaded.model, tokens)
    torch.testing.assert_close(trimmed, full, rtol=1e-5, atol=1e-6)


def test_image_embeddings_shapes_labels_and_cache(toy, store, loaded):
    import h5py
    import torch
    from PIL import Image

    from lmmclf.embed.read import read_image_embeddings
    from lmmclf.embed.run import EmbedReport, embed_images

    cfg, dataset = toy
    report = EmbedReport()
    path = embed_images(cfg, dataset, store, clip=loaded, report=report)
    assert report.computed == ["embed-image"]
    with h5py.File(path) as handle:
        got = read_image_embeddings(handle)
    assert got.ids == [item.id for item in dataset.items]
    assert got.labels.tolist() == [item.label for item in dataset.items]
    assert got.splits.tolist() == [item.split for item in dataset.items]
    assert got.embeddings.shape == (15, loaded.embed_dim) and got.ok.all()
    with torch.inference_mode():
        first = loaded.model.encode_image(loaded.preprocess(Image.open(dataset.items[0].path).convert("RGB"))[None])
    np.testing.assert_allclose(got.embeddings[0], first[0].numpy(), rtol=1e-4, atol=1e-5)
    again = EmbedReport()
    embed_images(cfg, dataset, store, clip=loaded, report=again)
    assert again.computed == []  # cached


def test_image_key_ignores_the_lmm_but_not_the_clip(toy, store, tmp_path):
    from lmmclf.embed.specs import image_embed_spec
    from lmmclf.testing.tiny_clip import make_tiny_clip

    cfg, dataset = toy
    key = image_embed_spec(cfg, dataset, store).key
    other_lmm = cfg.override("describe", model="someone/else", prompt="Describe it.")
    assert image_embed_spec(other_lmm, dataset, store).key == key
    other_clip = cfg.override("embed", clip_model=make_tiny_clip(tmp_path / "other", seed=5))
    assert image_embed_spec(other_clip, dataset, store).key != key
    assert image_embed_spec(cfg.override("embed", storage_dtype="float16"), dataset, store).key != key
    assert image_embed_spec(cfg.override("embed", batch_size=3, device="cpu"), dataset, store).key == key


def test_unreadable_image_is_recorded_not_fatal(toy, store, loaded):
    import h5py

    from lmmclf.embed.read import read_image_embeddings
    from lmmclf.embed.run import EmbedReport, embed_images

    cfg, dataset = toy
    dataset.items[1].path.write_bytes(b"not a png")
    report = EmbedReport()
    with h5py.File(embed_images(cfg, dataset, store, clip=loaded, report=report)) as handle:
        got = read_image_embeddings(handle)
        errors = handle["errors"][()]
    assert report.image_errors == 1 and got.ok.tolist().count(False) == 1 and not got.ok[1]
    assert not got.embeddings[1].any() and got.embeddings[0].any() and errors[1]


def test_text_embeddings_pool_valid_descriptions_by_id(toy, store, loaded):
    import h5py
    import torch

    from lmmclf.embed.read import read_text_embeddings
    from lmmclf.embed.run import embed_texts
    from lmmclf.testing.paper1 import class_descriptions, write_toy_descriptions

    cfg, dataset = toy
    failed = dataset.items[2].id
    describe = write_toy_descriptions(store, dataset, k=3, skip=[failed])
    path = embed_texts(dataset=dataset, cfg=cfg.override("embed", storage_dtype="float16"), store=store, describe=describe, clip=loaded)
    with h5py.File(path) as handle:
        got = read_text_embeddings(handle, table=True)
        assert handle["pooled"].dtype == np.float16 and handle.attrs["items_without_text"] == 1
    assert got.ids == [item.id for item in dataset.items]
    assert got.table.shape == (15, 3, loaded.embed_dim) and got.mask.sum() == 14 * 3
    assert not got.mask[2].any() and not got.pooled[2].any()
    texts = class_descriptions(dataset.class_names, dataset.items[4].label, 4, 3)
    with torch.inference_mode():
        expected = loaded.model.encode_text(loaded.tokenizer(texts)).mean(0).numpy()
    np.testing.assert_allclose(got.pooled[4], expected, rtol=2e-3, atol=2e-3)  # float16 storage
    np.testing.assert_allclose(got.table[4].mean(0), got.pooled[4], rtol=2e-3, atol=2e-3)


def test_fewer_descriptions_than_requested_are_masked():
    from lmmclf.embed.texts import Descriptions, pool, scatter

    descriptions = Descriptions(ids=["x", "y"], texts=[["p", "q"], ["r"]], capacity=4)
    flat = np.arange(3 * 2, dtype=np.float32).reshape(3, 2)
    table, mask = scatter(descriptions, flat, 2)
    assert table.shape == (2, 4, 2) and mask.tolist() == [[True, True, False, False], [True, False, False, False]]
    np.testing.assert_array_equal(pool(table, mask), [[1.0, 2.0], [4.0, 5.0]])


def test_missing_describe_artifact_names_the_command(toy, store, loaded):
    from lmmclf.embed.run import embed_texts
    from lmmclf.testing.paper1 import toy_describe_spec

    cfg, dataset = toy
    with pytest.raises(MissingArtifactError, match="lmmclf describe toy"):
        embed_texts(cfg, dataset, store, describe=toy_describe_spec(dataset).key, clip=loaded)


def test_workers_give_the_same_embeddings(toy, store, loaded):
    import h5py

    from lmmclf.embed.run import embed_images

    cfg, dataset = toy
    with h5py.File(embed_images(cfg, dataset, store, clip=loaded)) as handle:
        serial = handle["embeddings"][()]
    parallel_cfg = cfg.override("embed", num_workers=2, batch_size=4)
    with h5py.File(embed_images(parallel_cfg, dataset, store, clip=loaded, force=True)) as handle:
        parallel = handle["embeddings"][()]
    np.testing.assert_allclose(parallel, serial, rtol=1e-5, atol=1e-6)
