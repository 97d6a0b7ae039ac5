"""The commands, parents first, that make what a run lacks (``eval`` and ``predict`` print them).

Walks the stage table upwards from the wanted artifacts to the first inputs the cache holds;
the message of one missing artifact is :mod:`lmmclf.missing`.
"""

from __future__ import annotations

from typing import Any

from lmmclf import stages
from lmmclf.keyspec import KeySpec
from lmmclf.store import ArtifactStore


def commands_to_make(cfg: Any, dataset: Any, specs: list[KeySpec], store: ArtifactStore) -> list[str]:
    """The commands, parents first, that make the missing inputs of ``specs`` (not ``specs`` themselves).

    Each missing input's own key spec is recomputed from ``cfg`` through the stage table (every
    parent's key function takes ``(cfg, dataset, store)``) and followed up to the first input that
    is cached, so ``eval`` can print a chain that works as written, e.g.
    ``lmmclf embed toy && lmmclf probe toy --features text``.

    Args:
        cfg: the experiment config the keys came from.
        dataset: the loaded dataset.
        specs: the wanted artifacts.
        store: the artifact store.
    """
    needed: set[str] = set()

    def visit(spec: KeySpec) -> None:
        for role, key in spec.inputs.items():
            if role in needed or role not in stages.ARTIFACTS or store.is_complete(role, key):
                continue
            needed.add(role)
            parent = stages.spec_function(role)(cfg, dataset, store)
            if parent.key == key:  # the same config: its own inputs may be missing too
                visit(parent)

    for spec in specs:
        visit(spec)
    commands: list[str] = []
    for artifact in (name for name in stages.ARTIFACTS if name in needed):  # table order: parents first
        extra = ["--images-only"] if artifact == "embed-image" and "embed-text" not in needed else []
        command = stages.command(stages.stage_of(artifact).name, dataset.name, extra)
        if command not in commands:
            commands.append(command)
    return commands
