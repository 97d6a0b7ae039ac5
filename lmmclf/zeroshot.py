"""Zero-shot baselines: CLIP with class-name prompts, and the LMM class prototypes as classifier.

CLIP zero-shot follows the CLIP paper: each class name is put into every prompt template, the
prompt embeddings are L2-normalised, averaged and normalised again (normalise-average-normalise),
and an image goes to the class of highest cosine similarity. The prototype baseline uses the
class prototypes C_l of eq. 1 (mean description embedding of the class's training images) in
place of the prompts: no training, no class names, only what the LMM said about the training
images.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

import numpy as np

from lmmclf.errors import ConfigError

# The 7 templates CLIP's authors selected for ImageNet (their Prompt_Engineering notebook) plus
# the plain "a photo of a {}.": generic enough for actions, aerial events and scenes alike.
TEMPLATE_PRESETS: dict[str, tuple[str, ...]] = {
    "single": ("a photo of a {}.",),
    "ensemble": (
        "a photo of a {}.",
        "itap of a {}.",
        "a bad photo of the {}.",
        "a origami {}.",
        "a photo of the large {}.",
        "a {} in a video game.",
        "art of the {}.",
        "a photo of the small {}.",
    ),
}


def templates_from(spec: str) -> tuple[str, ...]:
    """The templates of a preset name, or of ``"template one {}|template two {}"``.

    Args:
        spec: a key of :data:`TEMPLATE_PRESETS` or templates joined by ``|``, each with ``{}``.

    Raises:
        ConfigError: a custom template without ``{}``.
    """
    if spec in TEMPLATE_PRESETS:
        return TEMPLATE_PRESETS[spec]
    templates = tuple(t.strip() for t in spec.split("|") if t.strip())
    bad = [t for t in templates if "{}" not in t or not _formats(t)]
    if not templates or bad:
        raise ConfigError(
            f"probe.zeroshot_templates must be a preset ({', '.join(TEMPLATE_PRESETS)}) or templates containing '{{}}' "
            f"joined by '|'; got {spec!r}."
        )
    return templates


def _formats(template: str) -> bool:
    """Whether ``template.format(name)`` works (one ``{}``, no other fields, balanced braces)."""
    try:
        template.format("x")
    except (IndexError, KeyError, ValueError):
        return False
    return True


def prompt_name(class_name: str) -> str:
    """A class name as words: ``ApplyEyeMakeup`` -> ``apply eye makeup``, ``Yo_Yo`` -> ``yo yo``."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|[_\-]+", " ", class_name)
    return re.sub(r"\s+", " ", spaced).strip().lower()


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def prompt_classifier(loaded: Any, class_names: Sequence[str], templates: Sequence[str], settings: Any) -> np.ndarray:
    """The (C, D) zero-shot weights: normalise-average-normalise over ``templates`` per class.

    Args:
        loaded: a :class:`~lmmclf.clip.LoadedClip`.
        class_names: the dataset's classes.
        templates: prompt templates with ``{}``.
        settings: an :class:`~lmmclf.embed.images.EncodeSettings` (device, precision, batch size).
    """
    from lmmclf.embed.texts import encode_texts

    prompts = [template.format(prompt_name(name)) for name in class_names for template in templates]
    vectors = encode_texts(loaded.model, loaded.tokenizer, prompts, settings)
    per_class = l2_normalize(vectors).reshape(len(class_names), len(templates), -1).mean(axis=1)
    return l2_normalize(per_class).astype(np.float32)


PREDICT_ROWS = 16384  # image rows scored at once: memory is a chunk's rows and its C scores


def cosine_predict(images: np.ndarray, classifier: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """The class of highest cosine similarity for each image embedding, scored in row chunks.

    Args:
        images: (N, D) image embeddings (raw; normalised here): an array or a memory-mapped file.
        classifier: (C, D) class vectors (prompt ensembles or prototypes; normalised here).
        rows: the rows of ``images`` to classify, in order (None: all of them).
    """
    rows = np.arange(len(images)) if rows is None else np.asarray(rows, dtype=np.int64)
    classes = l2_normalize(classifier).T
    out = np.zeros(len(rows), dtype=np.int64)
    for start in range(0, len(rows), PREDICT_ROWS):
        chunk = rows[start : start + PREDICT_ROWS]
        out[start : start + len(chunk)] = (l2_normalize(np.asarray(images[chunk])) @ classes).argmax(axis=1)
    return out
