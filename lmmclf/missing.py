"""The message of a missing input artifact: what the cache holds instead, and how it differs.

When a stage computes a parent's key and the cache has no such artifact, the usual cause is a
setting given to one command and not the next (``describe --model DIR``, then ``embed``). So
the message lists the artifacts of the same stage and dataset that the cache does hold, each
with the key inputs in which it differs from what was asked, and ends with the command that
makes the wanted one (rendered by the caller through :func:`lmmclf.stages.command`).

The store calls it with what it holds (its listing and its ``is_complete``): this module sits
below the store and imports none of it.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Iterable

from lmmclf import stages
from lmmclf.keyspec import ArtifactInfo, KeySpec

Cached = Callable[[str, str], bool]  # (stage, key) -> whether the store holds that artifact complete

SHOWN = 5  # candidates listed; the rest are counted and left to `cache ls`
_CUT = 40  # longer values (a prompt) are cut: the message must stay readable


def missing_message(root: Path, stage: str, key: str, hint: str | None, wanted: KeySpec | None = None,
                    held: Iterable[ArtifactInfo] = (), cached: Cached | None = None) -> str:
    """The text of the :class:`~lmmclf.errors.MissingArtifactError` for ``stage``/``key``.

    Args:
        root: the cache root that lacks the artifact.
        stage: the artifact's stage (store folder).
        key: the key that was asked for.
        hint: the command that makes it, or None.
        wanted: the key spec that was asked for; without it, no comparison is made.
        held: the artifacts the cache holds (``ArtifactStore.list()``), compared with ``wanted``.
        cached: tells whether an input key is cached, to say "not cached either".
    """
    dataset = ((wanted.dataset if wanted else None) or {}).get("name")
    where = f" of {dataset}" if dataset else ""
    text = f"No {stage} artifact {key[:12]}{where} in {root}"
    make = f"run `{hint}` to make it" if hint else ""
    if wanted is None:
        return f"{text}{'; ' + make if make else ''}."
    candidates = similar(held, wanted)
    if not candidates:
        return f"{text} (the cache holds no {stage} artifact{where}){'; ' + make if make else ''}."
    lines = [f"  {stage} {info.key[:8]}: {describe_difference(info.spec, wanted, cached)}" for info in candidates[:SHOWN]]
    if len(candidates) > SHOWN:
        listing = stages.command("cache", None, ["ls", "--stage", stage, *(["--dataset", dataset] if dataset else [])])
        lines.append(f"  and {len(candidates) - SHOWN} more (`{listing}` lists them)")
    show = stages.command("cache", None, ["show", candidates[0].key[:8]])
    use = f"give this command the settings that made one of those (`{show}` prints them)"
    ending = f"{make[0].upper()}{make[1:]}, or {use}." if make else f"To use one, {use}."
    return "\n".join([f"{text}; the cache holds these {stage} artifacts{where}, made with other settings:", *lines, ending])


def similar(held: Iterable[ArtifactInfo], wanted: KeySpec) -> list[ArtifactInfo]:
    """The complete artifacts among ``held`` of ``wanted``'s stage and dataset name, in ``held``'s order."""
    name = (wanted.dataset or {}).get("name")
    found = []
    for info in held:
        if info.stage != wanted.stage or not info.complete or not isinstance(info.spec, dict):
            continue
        if name is not None and ((info.spec.get("dataset") or {}).get("name")) != name:
            continue
        found.append(info)
    return found


def differences(have: dict[str, Any], wanted: KeySpec, cached: Cached | None = None) -> list[str]:
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
            absent = asked_key and cached is not None and not cached(role, asked_key)
            note = ", not cached either" if absent else ""
            out.append(f"made from {role} {(inputs.get(role) or 'none')[:8]} (you asked for {(asked_key or 'none')[:8]}{note})")
    return out


def describe_difference(have: dict[str, Any], wanted: KeySpec, cached: Cached | None = None) -> str:
    """``differences`` joined for one line (the same key inputs otherwise: another lmmclf wrote it)."""
    found = differences(have, wanted, cached)
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
