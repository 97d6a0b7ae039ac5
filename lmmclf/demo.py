"""The offline demo: a generated image dataset, tiny random models, and a config that uses them.

Everything the real pipeline needs, built locally with no network: class-coloured images in an
image-folder layout, a tiny LLaVA-architecture LMM (random weights, tokenizer trained on the
spot) and a tiny open_clip CLIP. The models go through the same loaders a real model takes, so
the demo exercises every real code path. Its accuracies mean nothing: random models describe
images with gibberish. It is a plumbing demo.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

DEMO_CLASSES = ("apple", "banana", "cherry", "grape")


@dataclass(frozen=True)
class DemoAssets:
    """Where the demo's pieces were written."""

    config: Path
    data: Path
    lmm: Path
    clip: str


def prepare_demo(out_dir: str | Path, n_train: int = 12, n_test: int = 6, epochs: int = 20, teach: bool = True) -> DemoAssets:
    """Write the demo dataset, tiny models and ``demo.yaml`` under ``out_dir`` (idempotent).

    Args:
        out_dir: the demo's folder.
        n_train: training images per class.
        n_test: test images per class.
        epochs: epochs for probe and finetune (the papers' 500 and 100 would only waste time here).
        teach: train the random LMM for a few seconds to answer in short numbered lists naming the
            image's colours, so the demo's descriptions say something; untaught, it writes token soup
            (kept as cut text, which describe accepts too).
    """
    from lmmclf.testing.layouts import make_imagefolder
    from lmmclf.testing.teach import teach_numbered_lists
    from lmmclf.testing.tiny_clip import make_tiny_clip
    from lmmclf.testing.tiny_lmm import make_tiny_llava

    out = Path(out_dir).expanduser().resolve()
    data = out / "data"
    if not (data / "train").exists():
        make_imagefolder(data, DEMO_CLASSES, n_train=n_train, n_test=n_test, size=(64, 64), seed=0)
    lmm = out / "models" / ("tiny-llava" if teach else "tiny-llava-untaught")
    if not (lmm / "config.json").exists():
        make_tiny_llava(lmm, hidden=64, layers=2, image_size=32, patch=8, seed=0)
        if teach:  # a random LMM writes token soup: a few seconds of training make it list the image's colours
            teach_numbered_lists(lmm)
    clip = make_tiny_clip(out / "models" / "tiny-clip", seed=0)
    config = {
        "dataset": {"name": "demo", "type": "imagefolder", "root": str(data)},
        "describe": {"backend": "hf", "model": str(lmm), "quantize": "none", "device": "cpu", "batch_size": 8,
                     "max_new_tokens": 40, "num_descriptions": 10},
        "embed": {"clip_model": clip, "clip_pretrained": None, "device": "cpu", "batch_size": 32, "num_workers": 0},
        "probe": {"epochs": epochs, "lr": 0.01, "seeds": [0, 1], "device": "cpu"},
        "finetune": {"epochs": max(2, epochs // 4), "batch_size": 16, "lr": 1e-3, "seeds": [0], "device": "cpu", "num_workers": 0},
        "eval": {"methods": ["all"], "out_dir": str(out / "results")},
    }
    path = out / "demo.yaml"
    path.write_text("# The offline plumbing demo (tiny random models): numbers mean nothing.\n" + yaml.safe_dump(config, sort_keys=False))
    return DemoAssets(config=path, data=data, lmm=lmm, clip=clip)
