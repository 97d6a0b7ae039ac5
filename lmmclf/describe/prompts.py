"""The prompt presets: named prompts and the text each one sends to the LMM.

A preset's text may hold ``{k}``, replaced by ``--num-descriptions`` (so ``paper`` with K=5
asks for 5 descriptions). A free ``--prompt`` text is sent as given, except that a ``{k}`` in
it is substituted too. The resolved text, not the preset name, goes into the cache key, so
editing a preset here cannot serve stale descriptions.
"""

from __future__ import annotations

from dataclasses import dataclass

from lmmclf.errors import ConfigError


@dataclass(frozen=True)
class PromptPreset:
    """A named prompt.

    Args:
        text: the prompt, with ``{k}`` where the number of descriptions goes.
        source: where it comes from (shown by ``lmmclf describe --help`` and in the docs).
    """

    text: str
    source: str


PRESETS: dict[str, PromptPreset] = {
    "paper": PromptPreset(
        "Give {k} semantic descriptions of the image",
        "Tzelepi & Mezaris 2024, 'Exploiting LMM-based knowledge for image classification tasks' (the default)",
    ),
    "paper-reg": PromptPreset(
        "Give {k} semantic descriptions for the image",
        "Tzelepi & Mezaris 2024, 'LMM-regularized CLIP embeddings for image classification' (its wording)",
    ),
    "emotions": PromptPreset(
        "Give {k} emotions that the image elicits",
        "Tzelepi & Mezaris 2024, 'Disturbing image detection using LMM-elicited emotion embeddings' (arXiv 2406.12668)",
    ),
}


def resolve_prompt(prompt: str | None, preset: str, k: int) -> str:
    """The prompt text to send.

    Args:
        prompt: a free prompt (wins over the preset when given).
        preset: a name in :data:`PRESETS`.
        k: the number of descriptions asked for.

    Raises:
        ConfigError: unknown preset name.
    """
    if prompt:
        return prompt.replace("{k}", str(k))
    if preset not in PRESETS:
        raise ConfigError(f"Unknown describe.prompt_preset '{preset}' (known: {', '.join(PRESETS)}).")
    return PRESETS[preset].text.replace("{k}", str(k))
