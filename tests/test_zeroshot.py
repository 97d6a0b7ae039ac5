"""Zero-shot baselines: prompt ensembles and prototype classifiers."""

from __future__ import annotations

import numpy as np
import pytest

from lmmclf.errors import ConfigError
from lmmclf.zeroshot import cosine_predict, prompt_classifier, prompt_name, templates_from


def test_class_names_become_words():
    assert prompt_name("ApplyEyeMakeup") == "apply eye makeup"
    assert prompt_name("Yo_Yo") == "yo yo" and prompt_name("traffic-collision") == "traffic collision"


def test_templates():
    assert len(templates_from("ensemble")) == 8
    assert templates_from("a {}|the {} ") == ("a {}", "the {}")
    with pytest.raises(ConfigError):
        templates_from("no placeholder")


def test_cosine_ignores_scale():
    classifier = np.array([[1, 0], [0, 1]], np.float32)
    images = np.array([[10, 1], [0.1, 0.2], [-1, -3]], np.float32)
    assert cosine_predict(images, classifier * [[5], [0.1]]).tolist() == [0, 1, 0]


def test_prompt_classifier_is_normalise_average_normalise(tmp_path):
    import torch

    from lmmclf.clip import load_clip
    from lmmclf.embed.images import EncodeSettings
    from lmmclf.testing.tiny_clip import make_tiny_clip

    loaded = load_clip(make_tiny_clip(tmp_path / "clip"), None, "cpu")
    templates = ("a photo of a {}.", "art of the {}.")
    weights = prompt_classifier(loaded, ["RedThing", "blue_thing"], templates, EncodeSettings(4, 0, "cpu", "fp32"))
    with torch.inference_mode():
        raw = loaded.model.encode_text(loaded.tokenizer(["a photo of a red thing.", "art of the red thing."]))
    expected = torch.nn.functional.normalize(torch.nn.functional.normalize(raw, dim=-1).mean(0), dim=0)
    np.testing.assert_allclose(weights[0], expected.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(weights, axis=1), 1.0, rtol=1e-5)


def test_a_template_that_cannot_be_formatted_is_a_config_error():
    from lmmclf.errors import ConfigError

    for spec in ("a {} of {size}", "a {} and {}", "a {} {"):
        with pytest.raises(ConfigError, match="zeroshot_templates"):
            templates_from(spec)
