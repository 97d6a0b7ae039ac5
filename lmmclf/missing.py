"""The message of a missing input artifact: what the cache holds instead, and how it differs.

When a stage computes a parent's key and the cache has no such artifact, the usual cause is a
setting given to one command and not the next (``describe --model DIR``, then ``embed``). So
the message lists the artifacts of the same stage and dataset that the cache does hold, each
with the key inputs in which it differs from what was asked, and ends with the command that
makes the wanted one (rendered by the caller through :func:`lmmclf.stages.command`).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lmmclf.store import ArtifactStore, KeySpec

SHOWN = 5  # candidates listed; the rest are counted and left to `cache ls`
_CUT = 40  # longer values (a prompt) are cut: the message must stay readable


def missing_message(store: "ArtifactStore", stage: str, key: str, hint: str | None, wanted: "KeySpec | None" = None) -> str:
    """The text of the :class:`~lmmclf.errors.MissingArtifactError` for ``stage``/``key``.

    Args:
        store: the artifact store that lacks the artifact.
        stage: the artifact's stage (store folder).
        key: the key that was asked for.
        hint: the command that makes it, or None.
        wanted: the key spec that was asked for; without it, no comparison is made.
    """
    from lmmclf import stages

    dataset = ((wanted.dataset if wanted else None) or {}).get("name")
    where = f" of {dataset}" if dataset else ""
    text = f"No {stage} artifact {key[:12]}{where} in {store.root}"
    make = f"run `{hint}` to make it" if hint else ""
    if wanted is None:
        return f"{text}{'; ' + make if make else ''}."
    candidates = similar(store, wanted)
    if not candidates:
        return f"{text} (the cache holds no {stage} artifact{where}){'; ' + make if make else ''}."
    lines = [f"  {stage} {info.key[:8]}: {describe_difference(info.spec, wanted, store)}" for info in candidates[:SHOWN]]
    if len(candidates) > SHOWN:
        listing = stages.command("cache", None, ["ls", "--stage", stage, *(["--dataset", dataset] if dataset else [])])
        lines.append(f"  and {len(candidates) - SHOWN} more (`{listing}` lists them)")
    show = stages.command("cache", None, ["show", candidates[0].key[:8]])
    use = f"give this command the settings that made one of those (`{show}` prints them)"
    ending = f"{make[0].upper()}{make[1:]}, or {use}." if make else f"To use one, {use}."
    return "\n".join([f"{text}; the cache holds these {stage} artifacts{where}, made with other settings:", *lines, ending])


def similar(store: "ArtifactStore", wanted: "KeySpec") -> list:
    """The complete artifacts of ``wanted``'s stage and dataset name, newest first."""
    name = (wanted.dataset or {}).get("name")
    found = []
    for info in store.list():
        if info.stage != wanted.stage or not info.complete or not isinstance(info.spec, dict):
            continue
        if name is not None and ((info.spec.get("dataset") or {}).get("name")) != name:
            continue
        found.append(info)
    return found


def differences(have: dict[str, Any], wanted: "KeySpec", store: "ArtifactStore | None" = None) -> list[str]:
    """The key inputs in which the stored spec ``have`` differs from ``wanted``, as ``name value (you asked for value)``."""
    asked = json.loads(json.dumps(asdict(wanted), default=str))  # as stored: tuples become lists
    out = []
    if have.get("version") != asked["version"]:
        out.append(f"stage version {have.get('version')} (this lmmclf writes {asked['version']})")
    if (have.get("model") or None) != (asked["model"] or None):
        out.append(_pair("model", _model(have.get("model")), _model(asked["model"])))
    dataset, asked_dataset = have.get("dataset") or {}, asked["dataset"] or {}
    for name in sorted(set(dataset) | set(asked_dataset)):
        if name != "name" and dataset.get(name) != asked_dataset.get(name):
            label = "dataset contents (fingerprint)" if name == "fingerprint" else f"dataset {name}"
            out.append(_pair(label, dataset.get(name), asked_dataset.get(name)))
    params, asked_params = have.get("params") or {}, asked["params"] or {}
    for name in sorted(set(params) | set(asked_params)):
        if params.get(name) != asked_params.get(name):
            out.append(_pair(name, params.get(name, "unset"), asked_params.get(name, "unset")))
    inputs, asked_inputs = have.get("inputs") or {}, asked["inputs"] or {}
    for role in sorted(set(inputs) | set(asked_inputs)):
        if inputs.get(role) != asked_inputs.get(role):
            asked_key = asked_inputs.get(role)
            absent = asked_key and store is not None and not store.is_complete(role, asked_key)
            note = ", not cached either" if absent else ""
            out.append(f"made from {role} {(inputs.get(role) or 'none')[:8]} (you asked for {(asked_key or 'none')[:8]}{note})")
    return out


def describe_difference(have: dict[str, Any], wanted: "KeySpec", store: "ArtifactStore | None" = None) -> str:
    """``differences`` joined for one line (the same key inputs otherwise: another lmmclf wrote it)."""
    found = differences(have, wanted, store)
    return ", ".join(found) if found else "same settings (written by another version of lmmclf)"


def _pair(name: str, have: Any, asked: Any) -> str:
    return f"{name} {_value(have)} (you asked for {_value(asked)})"


def _model(model: dict[str, Any] | None) -> str:
    """A model identity in a few words: its name, and its revision or weights hash."""
    if not model:
        return "none"
    name = model.get("name") or model.get("clip") or model.get("model") or ""
    extra = model.get("revision") or model.get("pretrained") or str(model.get("local_sha256") or model.get("sha256") or "")[:8]
    if not name:
        return _value(model)
    return f"{name}@{extra}" if extra else str(name)


def _value(value: Any) -> str:
    if isinstance(value, (dict, list)):
        text = json.dumps(value, sort_keys=True, default=str)
    else:
        text = str(value)
    return text if len(text) <= _CUT else text[: _CUT - 3] + "..."


def commands_to_make(cfg: Any, dataset: Any, specs: list["KeySpec"], store: "ArtifactStore") -> list[str]:
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
    from lmmclf import stages

    needed: set[str] = set()

    def visit(spec: "KeySpec") -> None:
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
