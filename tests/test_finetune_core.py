"""Fine-tuning internals: trunk/tail split, trunk cache vs full forward, the loss, resume.

Everything runs a tiny 12-block open_clip ViT saved as a ``local-dir:`` model and loaded
through ``open_clip.create_model_and_transforms``, on a few 32 px images, on the CPU.
"""

from __future__ import annotations

from functools import partial

import pytest
import torch

from lmmclf.config import ExperimentConfig
from lmmclf.errors import LmmclfError


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

    values = dict(alpha=0.0, epochs=2, batch_size=8, lr=1e-3, optimizer="adam", weight_decay=0.0, momentum=0.9,
                  schedule="constant", reg_reduction="mean", precision="fp32")
    return TrainSettings(**{**values, **changes})


class Rig:
    """CLIP, its split, the model and a token source, built the way ``Session`` builds them."""

    def __init__(self, tiny_clip, dataset, store, unlocked=1, cached=True, dtype="float32", augment=False):
        from lmmclf.clip import clip_identity, load_clip
        from lmmclf.filehash import FileHashCache
        from lmmclf.finetune.sources import CachedTokens, StreamedImages
        from lmmclf.finetune.tail import FinetuneModel, split_tower
        from lmmclf.devices import autocast
        from lmmclf.finetune.trunk_cache import ensure_trunk_cache, load_trunk_cache, trunk_spec

        self.device = torch.device("cpu")
        clip = load_clip(tiny_clip, None, "cpu")
        clip.model.float()
        self.clip = clip
        self.trunk, tail, self.split = split_tower(clip.model, unlocked)
        self.model = FinetuneModel(tail, clip.embed_dim, len(dataset.class_names))
        train, test = dataset.split("train"), dataset.split("test")
        labels = lambda items: torch.tensor([i.label for i in items])  # noqa: E731
        if cached:
            spec = trunk_spec(clip_identity(tiny_clip, None, FileHashCache(store.file_hash_db())), dataset, self.split,
                              clip.preprocess, dtype, "fp32")
            key = ensure_trunk_cache(store, spec, dataset, self.trunk, clip.preprocess, self.device,
                                     partial(autocast, "fp32", self.device), batch_size=5, num_workers=0, show_progress=False)
            self.source = CachedTokens(*load_trunk_cache(store, key, dataset), device=self.device)
        else:
            # augment: a random brightness shift drawn from torch's RNG, as torchvision's random transforms draw
            jitter = lambda image: clip.preprocess(image) + 0.5 * torch.rand(())  # noqa: E731
            self.source = StreamedImages(self.trunk, [i.path for i in train], labels(train), [i.path for i in test],
                                         labels(test), jitter if augment else clip.preprocess, clip.preprocess,
                                         self.device, partial(autocast, "fp32", self.device), random_transform=augment)
        generator = torch.Generator().manual_seed(1)
        self.prototypes = torch.randn(len(dataset.class_names), clip.embed_dim, generator=generator)

    def trainer(self, path, seed=0, **changes):
        from lmmclf.finetune.trainer import Trainer

        return Trainer(self.model, self.source, self.prototypes, settings(**changes), seed, self.device, path)


def test_tail_of_trunk_is_the_tower_forward(tiny_clip):
    from lmmclf.clip import load_clip
    from lmmclf.finetune.tail import split_tower

    model = load_clip(tiny_clip, None, "cpu").model
    images = torch.randn(3, 3, 32, 32)
    expected = model.encode_image(images)
    for unlocked in (0, 1, 5, 12):
        trunk, tail, split = split_tower(model, unlocked)
        assert split.frozen_blocks == 12 - unlocked
        torch.testing.assert_close(tail(trunk(images)), expected, rtol=1e-5, atol=1e-5)
        trainable = {name for name, p in model.visual.named_parameters() if p.requires_grad}
        assert ("proj" in trainable) and ("ln_post.weight" in trainable)
        assert sum(name.startswith("transformer.resblocks.") and name.endswith("ln_1.weight") for name in trainable) == unlocked
        assert not any(p.requires_grad for p in model.transformer.parameters())  # the text tower stays frozen


def test_split_rejects_bad_block_counts_and_attention_poolers(tiny_clip):
    from open_clip.transformer import VisionTransformer

    from lmmclf.clip import load_clip
    from lmmclf.finetune.tail import split_tower

    model = load_clip(tiny_clip, None, "cpu").model
    with pytest.raises(LmmclfError, match="between 0 and 12"):
        split_tower(model, 13)
    pooled = VisionTransformer(image_size=32, patch_size=8, width=32, layers=2, heads=2, mlp_ratio=2.0,
                               attentional_pool=True, attn_pooler_heads=2, attn_pooler_queries=4, output_dim=16)
    with pytest.raises(LmmclfError, match="attentional pooler"):
        split_tower(pooled, 1)


def test_frozen_parameters_unchanged_and_trainable_ones_change(tiny_clip, dataset, store, tmp_path):
    rig = Rig(tiny_clip, dataset, store, unlocked=1, cached=False)
    before = {name: p.detach().clone() for name, p in rig.clip.model.named_parameters()}
    rig.trainer(tmp_path / "ckpt.pt", alpha=0.01).fit()
    changed = {name for name, p in rig.clip.model.named_parameters() if not torch.equal(before[name], p)}
    trainable = {name for name, p in rig.clip.model.named_parameters() if p.requires_grad}
    assert changed == trainable
    assert any(name.startswith("visual.transformer.resblocks.11.") for name in changed)
    assert "visual.proj" in changed and "visual.ln_post.weight" in changed
    assert not any(name.startswith("visual.transformer.resblocks.10.") for name in changed)


def test_trunk_cache_equals_full_forward(tiny_clip, dataset, store, tmp_path):
    cached = Rig(tiny_clip, dataset, store, cached=True, dtype="float32")
    full = Rig(tiny_clip, dataset, store, cached=False)
    a = cached.trainer(tmp_path / "a.pt", alpha=0.05).fit()
    b = full.trainer(tmp_path / "b.pt", alpha=0.05).fit()
    for name in ("train_loss", "ce_loss", "reg_loss", "test_loss", "test_acc", "proto_distance"):
        assert a.curves[name] == pytest.approx(b.curves[name], rel=1e-4, abs=1e-5), name
    assert a.test_predictions == b.test_predictions
    tokens, _ = next(cached.source.test_batches(4))
    images = torch.stack([full.clip.preprocess(__import__("PIL.Image").Image.open(i.path).convert("RGB"))
                          for i in dataset.split("test")[:4]])
    with torch.no_grad():
        _, logits_cached = cached.model(tokens)
        _, logits_full = full.model(full.trunk(images))
    torch.testing.assert_close(logits_cached, logits_full, rtol=1e-4, atol=1e-5)


def test_float16_trunk_cache_stays_close(tiny_clip, dataset, store, tmp_path):
    half = Rig(tiny_clip, dataset, store, cached=True, dtype="float16")
    full = Rig(tiny_clip, dataset, store, cached=False)
    assert half.source.train_tokens.dtype == torch.float16
    a = half.trainer(tmp_path / "a.pt", alpha=0.05, epochs=1).fit()
    b = full.trainer(tmp_path / "b.pt", alpha=0.05, epochs=1).fit()
    assert a.curves["ce_loss"] == pytest.approx(b.curves["ce_loss"], rel=1e-2)
    assert a.curves["reg_loss"] == pytest.approx(b.curves["reg_loss"], rel=1e-2)


def test_alpha_pulls_embeddings_towards_their_prototypes(tiny_clip, dataset, store, tmp_path):
    base = Rig(tiny_clip, dataset, store).trainer(tmp_path / "a.pt", alpha=0.0, epochs=6).fit()
    reg = Rig(tiny_clip, dataset, store).trainer(tmp_path / "b.pt", alpha=0.1, epochs=6).fit()
    assert reg.curves["train_proto_distance"][-1] < 0.8 * base.curves["train_proto_distance"][-1]
    assert reg.curves["proto_distance"][-1] < base.curves["proto_distance"][-1]


def test_sum_reduction_is_the_mean_with_alpha_times_batch_size(tiny_clip, dataset, store, tmp_path):
    # 24 training images in batches of 8: every batch is full, so sum == 8 * mean exactly.
    summed = Rig(tiny_clip, dataset, store).trainer(tmp_path / "s.pt", alpha=0.01, reg_reduction="sum").fit()
    scaled = Rig(tiny_clip, dataset, store).trainer(tmp_path / "m.pt", alpha=0.08, reg_reduction="mean").fit()
    plain = Rig(tiny_clip, dataset, store).trainer(tmp_path / "p.pt", alpha=0.01, reg_reduction="mean").fit()
    assert summed.curves["reg_loss"] == pytest.approx(scaled.curves["reg_loss"], rel=1e-5)
    assert summed.curves["reg_loss"][-1] != pytest.approx(plain.curves["reg_loss"][-1], rel=1e-3)


def test_resume_after_interruption_equals_uninterrupted(tiny_clip, dataset, store, tmp_path):
    from lmmclf.finetune.trainer import TrainingInterrupted

    full = Rig(tiny_clip, dataset, store).trainer(tmp_path / "full.pt", alpha=0.05, epochs=3, batch_size=5).fit()

    rig = Rig(tiny_clip, dataset, store)
    steps = {"n": 0}

    def stop_in_epoch_two():
        steps["n"] += 1
        return steps["n"] == 7  # 5 steps per epoch: stops at epoch 2, step 2

    first = rig.trainer(tmp_path / "resume.pt", alpha=0.05, epochs=3, batch_size=5)
    first.should_stop = stop_in_epoch_two
    with pytest.raises(TrainingInterrupted):
        first.fit()
    assert (tmp_path / "resume.pt").exists()

    fresh = Rig(tiny_clip, dataset, store)  # a new process: CLIP reloaded, head re-initialised
    second = fresh.trainer(tmp_path / "resume.pt", alpha=0.05, epochs=3, batch_size=5)
    assert second.restore()
    assert (second.epoch, second.step) == (1, 2)
    resumed = second.fit()
    assert resumed.curves == full.curves
    assert resumed.test_predictions == full.test_predictions
    for name, value in full.state_dict.items():
        torch.testing.assert_close(resumed.state_dict[name], value, rtol=0, atol=0)


def test_resume_with_augmentation_equals_uninterrupted(tiny_clip, dataset, store, tmp_path):
    from lmmclf.finetune.trainer import TrainingInterrupted

    torch.manual_seed(0)  # as Session.train_seed does
    full = Rig(tiny_clip, dataset, store, cached=False, augment=True).trainer(tmp_path / "f.pt", epochs=2, batch_size=5).fit()

    torch.manual_seed(0)
    first = Rig(tiny_clip, dataset, store, cached=False, augment=True).trainer(tmp_path / "r.pt", epochs=2, batch_size=5)
    steps = {"n": 0}
    first.should_stop = lambda: (steps.__setitem__("n", steps["n"] + 1), steps["n"] == 7)[1]  # epoch 2, step 2
    with pytest.raises(TrainingInterrupted):
        first.fit()
    torch.manual_seed(0)
    second = Rig(tiny_clip, dataset, store, cached=False, augment=True).trainer(tmp_path / "r.pt", epochs=2, batch_size=5)
    assert second.restore()
    assert (second.epoch, second.step) == (1, 0)  # random crops cannot be replayed mid-epoch: the epoch restarts
    resumed = second.fit()
    assert resumed.curves == full.curves
    for name, value in full.state_dict.items():
        torch.testing.assert_close(resumed.state_dict[name], value, rtol=0, atol=0)


def test_checkpoint_of_other_settings_is_not_used(tiny_clip, dataset, store, tmp_path):
    rig = Rig(tiny_clip, dataset, store)
    rig.trainer(tmp_path / "c.pt", alpha=0.05, epochs=1).fit()
    other = rig.trainer(tmp_path / "c.pt", alpha=0.5, epochs=1)
    assert not other.restore()
    assert rig.trainer(tmp_path / "c.pt", alpha=0.05, epochs=1).restore()


def test_epoch_order_depends_on_seed_and_epoch_only():
    from lmmclf.finetune.trainer import epoch_order

    assert torch.equal(epoch_order(50, 3, 4), epoch_order(50, 3, 4))
    assert not torch.equal(epoch_order(50, 3, 4), epoch_order(50, 3, 5))
    assert not torch.equal(epoch_order(50, 3, 4), epoch_order(50, 4, 4))
    assert sorted(epoch_order(50, 0, 0).tolist()) == list(range(50))


def test_gradient_checkpointing_changes_memory_not_results(tiny_clip, dataset, store, tmp_path):
    plain = Rig(tiny_clip, dataset, store, unlocked=3).trainer(tmp_path / "a.pt", alpha=0.05).fit()
    rig = Rig(tiny_clip, dataset, store, unlocked=3)
    rig.model.tail.grad_checkpointing = True
    checkpointed = rig.trainer(tmp_path / "b.pt", alpha=0.05).fit()
    assert checkpointed.curves["train_loss"] == pytest.approx(plain.curves["train_loss"], rel=1e-5)
    assert checkpointed.test_predictions == plain.test_predictions


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_close_to_fp32(tiny_clip, dataset, store, tmp_path, precision):
    full = Rig(tiny_clip, dataset, store).trainer(tmp_path / "a.pt", alpha=0.05, epochs=1).fit()
    mixed_trainer = Rig(tiny_clip, dataset, store).trainer(tmp_path / "b.pt", alpha=0.05, epochs=1, precision=precision)
    assert mixed_trainer.scaler.is_enabled() == (precision == "fp16")  # a grad scaler for fp16 only
    mixed = mixed_trainer.fit()
    assert mixed.curves["ce_loss"] == pytest.approx(full.curves["ce_loss"], rel=5e-2)
    assert mixed.curves["reg_loss"] == pytest.approx(full.curves["reg_loss"], rel=5e-2)


def test_first_ctrl_c_requests_a_stop_and_the_second_interrupts():
    import signal

    from lmmclf.finetune.run import _stop_on_ctrl_c

    with _stop_on_ctrl_c(None) as stop:
        assert not stop()
        signal.raise_signal(signal.SIGINT)
        assert stop()
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_trunk_mode_and_parameters_never_reach_the_tail(tiny_clip):
    from lmmclf.clip import load_clip
    from lmmclf.finetune.tail import split_tower

    model = load_clip(tiny_clip, None, "cpu").model
    trunk, tail, _ = split_tower(model, 2)
    tail.train()
    trunk.eval()
    trunk.train()
    assert all(module.training for module in tail.modules())
    assert not any(module.training for module in trunk.modules())
    tail_ids = {id(p) for p in tail.parameters()}
    assert not any(id(p) in tail_ids for p in trunk.parameters())
