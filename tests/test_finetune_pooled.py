"""``finetune.unlocked_blocks: 0`` (issue 11): only ln_post, proj and the head train, and the
trunk cache holds the pooled token (width floats per image) instead of every token.

Real code paths: a tiny 12-block open_clip ViT loaded as a ``local-dir:`` model, real
``VisionTransformer`` towers for the other pooling variants, the real trainer and stages.
"""

from __future__ import annotations

from functools import partial

import pytest
import torch

from lmmclf.config import ExperimentConfig
from lmmclf.errors import ConfigError


@pytest.fixture(scope="module")
def image_root(tmp_path_factory):
    from lmmclf.testing.layouts import make_imagefolder

    return make_imagefolder(tmp_path_factory.mktemp("data") / "toy", n_train=8, n_test=4)


@pytest.fixture
def dataset(image_root, store):
    from lmmclf.datasets import load_dataset

    cfg = ExperimentConfig().override("dataset", name="toy", root=str(image_root), type="imagefolder")
    return load_dataset(cfg, store, show_progress=False)


def settings(**changes):
    from lmmclf.finetune.trainer import TrainSettings

    values = dict(alpha=0.05, epochs=3, batch_size=8, lr=1e-2, optimizer="adam", weight_decay=0.0, momentum=0.9,
                  schedule="constant", reg_reduction="mean", precision="fp32")
    return TrainSettings(**{**values, **changes})


def tower(pool_type: str, final_ln_after_pool: bool = False):
    from open_clip.transformer import VisionTransformer

    torch.manual_seed(0)
    visual = VisionTransformer(image_size=32, patch_size=8, width=32, layers=3, heads=2, mlp_ratio=2.0, output_dim=16,
                               pool_type=pool_type, final_ln_after_pool=final_ln_after_pool)
    with torch.no_grad():  # a non-trivial affine, so a mistake in where it is applied shows
        for param in visual.ln_post.parameters():
            param.normal_()
    return visual.eval()


@pytest.mark.parametrize("pool_type,after,output", [
    ("tok", False, "pooled"),               # CLIP's ViTs (OpenAI, LAION)
    ("avg", False, "normalized-mean"),      # mean of ln_post(tokens): the trunk keeps the normalisation only
    ("avg", True, "pooled"),                # ln_post after pooling
])
def test_the_pooled_trunk_feeds_a_tail_that_is_the_tower_forward(pool_type, after, output):
    from lmmclf.finetune.tail import FrozenTrunk, VisionTail, split_tower

    visual = tower(pool_type, after)
    images = torch.randn(5, 3, 32, 32)
    expected = visual(images)
    trunk, tail, split = split_tower(visual, 0)
    pooled = trunk(images)
    assert split.output == output and pooled.shape == (5, 32)  # width floats per image
    torch.testing.assert_close(tail(pooled), expected, rtol=1e-5, atol=1e-5)
    assert {name for name, p in visual.named_parameters() if p.requires_grad} == {"proj", "ln_post.weight", "ln_post.bias"}
    # gradients of the trainable parameters equal those through the whole token path
    tail(pooled).square().sum().backward()
    grads = {name: p.grad.clone() for name, p in visual.named_parameters() if p.grad is not None}
    visual.zero_grad()
    VisionTail(visual, 0, "tokens")(FrozenTrunk(visual, 3, "tokens")(images)).square().sum().backward()
    for name, p in visual.named_parameters():
        if p.grad is not None:
            torch.testing.assert_close(grads[name], p.grad, rtol=1e-4, atol=1e-5)


def test_only_zero_blocks_pools_and_token_keys_are_unchanged(tiny_clip):
    from lmmclf.clip import load_clip
    from lmmclf.finetune.tail import split_tower

    model = load_clip(tiny_clip, None, "cpu").model
    _, _, one = split_tower(model, 1)
    _, _, zero = split_tower(model, 0)
    assert one.identity() == {"layers": 12, "frozen_blocks": 11}  # as before: existing token caches keep their keys
    assert zero.identity() == {"layers": 12, "frozen_blocks": 12, "output": "pooled"}


class Rig:
    """CLIP, its split, the model and a token source, built the way ``Session`` builds them.

    ``mode``: ``pooled`` (the pooled trunk cache), ``streamed`` (images through the pooling
    trunk every epoch, ``--no-trunk-cache``) or ``tokens`` (the tower's own forward: every
    token through all 12 blocks, then ln_post, pooling and proj, as before this change).
    """

    def __init__(self, tiny_clip, dataset, store, mode, dtype="float32"):
        from lmmclf.clip import clip_identity, load_clip
        from lmmclf.devices import autocast
        from lmmclf.filehash import FileHashCache
        from lmmclf.finetune.sources import CachedTokens, StreamedImages
        from lmmclf.finetune.tail import FinetuneModel, FrozenTrunk, VisionTail, split_tower
        from lmmclf.finetune.trunk_cache import ensure_trunk_cache, load_trunk_cache, trunk_spec

        self.device = torch.device("cpu")
        clip = load_clip(tiny_clip, None, "cpu")
        clip.model.float()
        trunk, tail, self.split = split_tower(clip.model, 0)
        if mode == "tokens":
            trunk, tail = FrozenTrunk(clip.model.visual, 12, "tokens"), VisionTail(clip.model.visual, 0, "tokens")
        self.model = FinetuneModel(tail, clip.embed_dim, len(dataset.class_names))
        run_in = partial(autocast, "fp32", self.device)
        if mode == "pooled":
            self.spec = trunk_spec(clip_identity(tiny_clip, None, FileHashCache(store.file_hash_db())), dataset,
                                   self.split, clip.preprocess, dtype, "fp32")
            self.key = ensure_trunk_cache(store, self.spec, dataset, trunk, clip.preprocess, self.device, run_in,
                                          batch_size=5, num_workers=0, show_progress=False)
            self.source = CachedTokens(*load_trunk_cache(store, self.key, dataset), device=self.device)
        else:
            train, test = dataset.split("train"), dataset.split("test")
            labels = lambda items: torch.tensor([i.label for i in items])  # noqa: E731
            self.source = StreamedImages(trunk, [i.path for i in train], labels(train), [i.path for i in test],
                                         labels(test), clip.preprocess, clip.preprocess, self.device, run_in)
        self.prototypes = torch.randn(len(dataset.class_names), clip.embed_dim, generator=torch.Generator().manual_seed(1))

    def fit(self, path, **changes):
        from lmmclf.finetune.trainer import Trainer

        return Trainer(self.model, self.source, self.prototypes, settings(**changes), 0, self.device, path).fit()


def test_training_from_the_pooled_cache_equals_the_full_forward(tiny_clip, dataset, store, tmp_path):
    pooled = Rig(tiny_clip, dataset, store, "pooled")
    assert pooled.source.train_tokens.shape == (24, 64)  # 24 training images x width 64, not x 17 tokens
    runs = {mode: (pooled if mode == "pooled" else Rig(tiny_clip, dataset, store, mode)).fit(tmp_path / f"{mode}.pt")
            for mode in ("pooled", "streamed", "tokens")}
    for mode in ("streamed", "tokens"):
        for name in ("train_loss", "ce_loss", "reg_loss", "test_loss", "test_acc", "proto_distance"):
            assert runs["pooled"].curves[name] == pytest.approx(runs[mode].curves[name], rel=1e-4, abs=1e-5), (mode, name)
        assert runs["pooled"].test_predictions == runs[mode].test_predictions
        for name, value in runs["pooled"].state_dict.items():
            torch.testing.assert_close(value, runs[mode].state_dict[name], rtol=1e-4, atol=1e-5)
    assert runs["pooled"].curves["train_loss"][-1] < runs["pooled"].curves["train_loss"][0]  # it trains


def test_the_pooled_cache_stores_width_floats_per_image_under_its_own_key(tiny_clip, dataset, store):
    import h5py

    from lmmclf.clip import clip_identity, load_clip
    from lmmclf.filehash import FileHashCache
    from lmmclf.finetune.tail import split_tower
    from lmmclf.finetune.trunk_cache import trunk_spec

    rig = Rig(tiny_clip, dataset, store, "pooled", dtype="float16")
    with h5py.File(store.path("trunk", rig.key), "r") as handle:
        assert handle["tokens"].shape == (36, 64) and handle["tokens"].dtype == "float16"
        assert list(handle.attrs["tokens_shape"]) == [36, 64]
    clip = load_clip(tiny_clip, None, "cpu")
    identity = clip_identity(tiny_clip, None, FileHashCache(store.file_hash_db()))
    one = trunk_spec(identity, dataset, split_tower(clip.model, 1)[2], clip.preprocess, "float16", "fp32")
    tokens_of_all_blocks = dict(rig.spec.params)
    del tokens_of_all_blocks["output"]  # what a 0-block cache of every token was keyed by before
    assert len({rig.key, one.key, trunk_spec(identity, dataset, split_tower(clip.model, 0)[2], clip.preprocess,
                                             "float32", "fp32").key}) == 3
    assert rig.spec.params != tokens_of_all_blocks and rig.spec.params["output"] == "pooled"


def test_the_config_accepts_zero_blocks_and_refuses_negative_ones(tmp_path):
    from lmmclf.config import load_config

    assert ExperimentConfig().override("finetune", unlocked_blocks=0).finetune.unlocked_blocks == 0
    path = tmp_path / "zero.yaml"
    path.write_text("finetune:\n  unlocked_blocks: 0\n")
    assert load_config(path).finetune.unlocked_blocks == 0
    path.write_text("finetune:\n  unlocked_blocks: -1\n")
    with pytest.raises(ConfigError, match="unlocked_blocks") as error:
        load_config(path)
    assert str(error.value).count(". ") == 0  # one sentence


def test_lmmclf_finetune_trains_with_zero_unlocked_blocks(image_root, tiny_clip, store, runner, tmp_path):
    import h5py

    from lmmclf.cli.app import app
    from lmmclf.datasets import load_dataset
    from lmmclf.describe import describe_spec
    from lmmclf.embed.run import embed_texts
    from lmmclf.prototypes import make_prototypes
    from lmmclf.testing.describe_artifact import write_describe_artifact
    from lmmclf.testing.paper1 import class_descriptions, toy_config

    cfg = toy_config(image_root, tiny_clip).override("finetune", epochs=2, batch_size=8, lr=1e-3, device="cpu",
                                                     num_workers=0, trunk_dtype="float32")
    data = load_dataset(cfg, store, show_progress=False)  # describe (hand-written) -> embed-text -> prototypes
    texts = [class_descriptions(data.class_names, item.label, i) for i, item in enumerate(data.items)]
    write_describe_artifact(store, describe_spec(cfg, data, store), [i.id for i in data.items], texts, k=3)
    embed_texts(cfg, data, store)
    make_prototypes(cfg, data, store)
    config = tmp_path / "exp.yaml"
    config.write_text(cfg.to_yaml())
    result = runner.invoke(app, ["-c", str(config), "finetune", "--unlocked-blocks", "0"])
    assert result.exit_code == 0, result.output
    (trunk,) = (store.root / "trunk").glob("*.h5")
    with h5py.File(trunk, "r") as handle:
        assert handle["tokens"].shape == (len(data.items), 64)  # the pooled token only
    from PIL import Image

    from lmmclf.finetune import load_finetuned

    (weights,) = (store.root / "finetune").glob("*.safetensors")
    trunk, model, preprocess, names = load_finetuned(weights)  # rebuilt with the same pooling trunk
    with torch.no_grad():
        embedding, logits = model(trunk(preprocess(Image.open(data.items[0].path).convert("RGB")).unsqueeze(0)))
    assert embedding.shape == (1, 32) and logits.shape == (1, len(names))


def test_every_example_config_loads_and_the_paper2_ones_use_its_prompt_and_narrow_reading():
    from pathlib import Path

    from lmmclf.config import load_config
    from lmmclf.describe.prompts import resolve_prompt

    examples = Path(__file__).resolve().parents[1] / "examples"
    for path in examples.glob("*.yaml"):
        load_config(path)
    for name in ("ucf101", "era", "bar"):
        paper2, shared = load_config(examples / f"{name}-paper2.yaml"), load_config(examples / f"{name}.yaml")
        assert resolve_prompt(None, paper2.describe.prompt_preset, 10) == "Give 10 semantic descriptions for the image"
        assert resolve_prompt(None, shared.describe.prompt_preset, 10) == "Give 10 semantic descriptions of the image"
        assert (paper2.finetune.unlocked_blocks, shared.finetune.unlocked_blocks) == (0, 1)
        assert paper2.dataset.name == shared.dataset.name == name
