"""The registry of evaluable methods: a data table from CLI name to artifact keys and make commands.

A method names the artifact(s) holding its :class:`~lmmclf.results.TrainingRun` records, the
command that makes them, and a function that computes them (for ``--compute-missing``). The
paper-1 methods are registered here; the fine-tuning stage adds ``finetune`` and ``lmm-reg``
with :func:`register_method` from its own module (listed in :data:`EXTENSIONS`).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

from lmmclf.errors import LmmclfError
from lmmclf.stages import command
from lmmclf.store import KeySpec


@dataclass(frozen=True)
class Method:
    """One row of the results table.

    Args:
        name: the CLI name (``--method concat``).
        label: the row label, in the paper's wording.
        specs: ``(cfg, dataset, store) -> [KeySpec, ...]``: the artifacts holding its runs.
        command: ``(cfg, dataset_name) -> str``: the command that makes them (for error messages),
            rendered by :func:`lmmclf.stages.command` with the global options in effect.
        compute: ``(cfg, dataset, store) -> None``: makes them (for ``--compute-missing``).
    """

    name: str
    label: str
    specs: Callable[[Any, Any, Any], list[KeySpec]]
    command: Callable[[str], str]
    compute: Callable[[Any, Any, Any], None]


METHODS: dict[str, Method] = {}

# modules that register further methods when imported (the fine-tuning stage's)
EXTENSIONS = ("lmmclf.finetune.methods",)


def register_method(method: Method) -> Method:
    """Add (or replace) a method in the registry; the order of registration is the table's order."""
    METHODS[method.name] = method
    return method


def _probe(features: str, label: str) -> Method:
    def specs(cfg, dataset, store):
        from lmmclf.probe.stage import probe_spec

        return [probe_spec(cfg, dataset, store, features)]

    def compute(cfg, dataset, store):
        from lmmclf.probe.stage import run_probe

        from lmmclf.embed.run import embed_images

        embed_images(cfg, dataset, store)  # every probe method reads the image embeddings
        if features in ("text", "concat", "mean", "prototype-zeroshot"):
            from lmmclf.embed.run import embed_texts

            embed_texts(cfg, dataset, store)
        if features == "prototype-zeroshot":
            from lmmclf.prototypes import make_prototypes

            make_prototypes(cfg, dataset, store)
        run_probe(cfg, dataset, store, features)

    return Method(features, label, specs, lambda cfg, name: command("probe", name, ["--features", features]), compute)


for _features, _label in (
    ("image", "CLIP (image)"),
    ("text", "CLIP (LMM descriptions)"),
    ("concat", "CLIP (image & LMM descriptions - CONCAT)"),
    ("mean", "CLIP (image & LMM descriptions - MEAN)"),
    ("zeroshot", "CLIP zero-shot (prompt ensemble)"),
    ("prototype-zeroshot", "LMM prototypes zero-shot"),
):
    register_method(_probe(_features, _label))


def load_extensions() -> None:
    """Import the modules that register further methods."""
    for module in EXTENSIONS:
        importlib.import_module(module)


def resolve_methods(names: list[str]) -> list[Method]:
    """The methods named (``all`` = every registered one, in registry order), without duplicates.

    Raises:
        LmmclfError: an unknown method name.
    """
    load_extensions()
    chosen: list[Method] = []
    for name in names:
        for part in [p.strip() for p in name.split(",") if p.strip()]:
            if part == "all":
                chosen.extend(METHODS.values())
            elif part in METHODS:
                chosen.append(METHODS[part])
            else:
                raise LmmclfError(f"Unknown method '{part}' (known: {', '.join(METHODS)}, all).")
    unique = {method.name: method for method in chosen}
    return list(unique.values())
