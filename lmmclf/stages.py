"""The stage table: which stage makes which artifacts from which parents, with which command.

One plain record per stage (:data:`STAGES`), one per artifact it writes (:data:`ARTIFACTS`),
and small functions that read them:

- :func:`command` renders the command line that makes a stage's artifacts, with the global
  options in effect (``-c FILE``, ``--set SECTION.KEY=VALUE``, ``--cache-dir DIR``). It is the only place in the library
  that spells a command line: missing-artifact hints, eval's "what is missing" and the demo
  call it. The CLI records the options in effect in :data:`invocation` once per run.
- :func:`key_params` reads the key fields a config section declares (``lmmclf.config``: each
  field says next to its default whether it enters a key) for one artifact; key functions
  start from it and add what is derived (the resolved prompt, the model identity...).
- :func:`field_entries` says, per config field, which artifacts' keys it enters and what a
  change recomputes (``lmmclf config show --keys``).

Nothing heavy is imported here: every module may import this one. Key functions are named
as ``"module:function"`` and imported only when asked for, as backends are.
"""

from __future__ import annotations

import dataclasses
import importlib
import shlex
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

from lmmclf.config import ExperimentConfig, field_declaration


@dataclass(frozen=True)
class Artifact:
    """One kind of artifact: a folder of the store.

    Args:
        name: the store's stage name (the folder), e.g. ``embed-text``.
        version: its code version (in the key); bump it when the content changes for the same key inputs.
        parents: artifacts whose keys enter this one's key (``inputs``).
        spec: ``"module:function"`` computing its :class:`~lmmclf.store.KeySpec`.
        params_from: the config section whose plain key fields enter its params (None: none do).
        shown: params that ``cache ls`` always shows; params that differ within a stage and dataset are shown too.
    """

    name: str
    version: int
    parents: tuple[str, ...]
    spec: str
    params_from: Optional[str]
    shown: tuple[str, ...] = ()


@dataclass(frozen=True)
class Stage:
    """One command of the pipeline.

    Args:
        name: the command (``lmmclf NAME DATASET``).
        section: its config section (None: it has none).
        parents: the stages whose artifacts it reads.
        artifacts: the store stages it writes, the first being its result.
    """

    name: str
    section: Optional[str]
    parents: tuple[str, ...]
    artifacts: tuple[str, ...]


ARTIFACTS: dict[str, Artifact] = {a.name: a for a in (
    Artifact("describe", 1, (), "lmmclf.describe.artifact:describe_spec", "describe", ("backend", "num_descriptions")),
    # image embeddings do not depend on the LMM: every describe variant shares them
    Artifact("embed-image", 1, (), "lmmclf.embed.specs:image_embed_spec", "embed", ("items",)),
    Artifact("embed-text", 1, ("describe",), "lmmclf.embed.specs:text_embed_spec", "embed"),
    Artifact("prototypes", 1, ("embed-text",), "lmmclf.prototypes:prototypes_spec", None),
    # which parents a probe reads depends on its features (image: embed-image only)
    Artifact("probe", 1, ("embed-image", "embed-text", "prototypes"), "lmmclf.probe.stage:probe_spec", "probe", ("features", "seeds")),
    Artifact("finetune", 1, ("prototypes",), "lmmclf.finetune.artifact:finetune_spec", "finetune", ("alpha", "seed")),
    # the frozen trunk's output, a cache finetune makes and reads; keyed by what the trunk computes
    Artifact("trunk", 1, (), "lmmclf.finetune.trunk_cache:trunk_spec", None, ("frozen_blocks", "dtype")),
)}

STAGES: dict[str, Stage] = {s.name: s for s in (
    Stage("describe", "describe", (), ("describe",)),
    Stage("embed", "embed", ("describe",), ("embed-image", "embed-text")),
    Stage("prototypes", None, ("embed",), ("prototypes",)),  # no section of its own
    Stage("probe", "probe", ("embed", "prototypes"), ("probe",)),
    Stage("finetune", "finetune", ("prototypes",), ("finetune", "trunk")),
    Stage("eval", "eval", ("probe", "finetune"), ()),
)}


def stage_of(artifact: str) -> Stage:
    """The stage (command) that writes ``artifact`` (a store stage name)."""
    for stage in STAGES.values():
        if artifact in stage.artifacts:
            return stage
    raise KeyError(f"no stage writes artifact '{artifact}'")


def version(artifact: str) -> int:
    """The code version of ``artifact``, as it enters its key."""
    return ARTIFACTS[artifact].version


def spec_function(artifact: str) -> Callable:
    """The key function of ``artifact`` (imported now)."""
    module, _, name = ARTIFACTS[artifact].spec.partition(":")
    return getattr(importlib.import_module(module), name)


def descendants(artifacts: Iterable[str]) -> list[str]:
    """``artifacts`` and every artifact made from them, in table order: what a change to them recomputes."""
    found = set(artifacts)
    grew = True
    while grew:
        grew = False
        for artifact in ARTIFACTS.values():
            if artifact.name not in found and found.intersection(artifact.parents):
                found.add(artifact.name)
                grew = True
    return [name for name in ARTIFACTS if name in found]


# -- commands -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Invocation:
    """The global options in effect, which every printed command must carry.

    Args:
        config_path: ``-c FILE`` (given on the command line; one from ``$LMMCLF_CONFIG`` is not repeated).
        cache_dir: ``--cache-dir DIR``.
        sets: each ``--set SECTION.KEY=VALUE``, in the order given.
    """

    config_path: Optional[Path] = None
    cache_dir: Optional[Path] = None
    sets: tuple[str, ...] = ()


# Set by the CLI when a command starts (reset when it ends); library code only reads it, so a
# hint printed deep inside a stage names the same config and cache as the command that ran.
invocation: ContextVar[Invocation] = ContextVar("lmmclf_invocation", default=Invocation())


def prefix(options: Invocation | None = None) -> list[str]:
    """``lmmclf`` and the global options in effect, as words (unquoted)."""
    options = options or invocation.get()
    words = ["lmmclf"]
    if options.config_path is not None:
        words += ["-c", str(options.config_path)]
    for assignment in options.sets:
        words += ["--set", assignment]
    if options.cache_dir is not None:
        words += ["--cache-dir", str(options.cache_dir)]
    return words


def command(stage: str, dataset: str | None = None, extra: Sequence[str] = (), options: Invocation | None = None) -> str:
    """The command line that runs ``stage`` on ``dataset``, quoted for a shell.

    Args:
        stage: a name in :data:`STAGES` (or another ``lmmclf`` command, e.g. ``cache``).
        dataset: the dataset name; None leaves it to the config's ``dataset.name``.
        extra: further words (options and their values), quoted here.
        options: the global options; default those in effect (:data:`invocation`).
    """
    words = [*prefix(options), stage]
    if dataset:
        words.append(dataset)
    return shlex.join([*words, *map(str, extra)])


def with_option(command_line: str, flag: str, value: str) -> str:
    """``command_line`` with ``flag`` set to ``value``: its existing value replaced, else appended.

    A hint that changes one setting shows one ``--model`` (not the old one followed by the new).

    Args:
        command_line: a shell-quoted command (:func:`command`, or the one the user ran).
        flag: the option, e.g. ``--model``.
        value: its new value.
    """
    words = shlex.split(command_line)
    for index, word in enumerate(words):
        if word == flag and index + 1 < len(words):
            words[index + 1] = value
            return shlex.join(words)
        if word.startswith(flag + "="):
            words[index] = f"{flag}={value}"
            return shlex.join(words)
    return shlex.join([*words, flag, value])


# -- key fields -----------------------------------------------------------------------------


def section_fields(section: str) -> list[dataclasses.Field]:
    """The fields of config section ``section``, in declaration order."""
    return list(dataclasses.fields(type(getattr(ExperimentConfig(), section))))


def _applies(declaration: dict[str, Any], values: Any) -> bool:
    when = declaration.get("when")
    return when is None or getattr(values, when[0]) == when[1]


def key_params(cfg: ExperimentConfig, artifact: str, reads: Iterable[str] | None = None) -> dict[str, Any]:
    """The plain key parameters of ``artifact`` under ``cfg``: declared key fields, by name, as set.

    Fields that enter a key in another form (the prompt text, the model identity, one artifact
    per seed) are left to the key function, as are fields whose ``when`` condition is not met.

    Args:
        cfg: the experiment config.
        artifact: a name in :data:`ARTIFACTS`.
        reads: for ``describe``: the backend options the backend reads (others stay out of the key).
    """
    section = ARTIFACTS[artifact].params_from
    if section is None:
        return {}
    values = getattr(cfg, section)
    reads = set(reads or ())
    params: dict[str, Any] = {}
    for f in section_fields(section):
        declaration = field_declaration(f)
        if not declaration["key"] or declaration.get("via") or not _applies(declaration, values):
            continue
        if declaration.get("backend") and f.name not in reads:
            continue
        value = getattr(values, f.name)
        params[f.name] = list(value) if isinstance(value, list) else value
    return params


@dataclass(frozen=True)
class FieldEntry:
    """Where one config field goes: the rows of ``lmmclf config show --keys``."""

    section: Optional[str]
    name: str
    key: bool
    enters: tuple[str, ...]  # artifacts whose key it enters directly
    recomputes: tuple[str, ...]  # those and every artifact made from them
    via: str = ""  # how it enters, when not as itself
    when: str = ""  # the condition under which it enters
    backend: bool = False  # a describe backend option (only backends that read it use it)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def field_entries() -> list[FieldEntry]:
    """One entry per config field, sections in config order."""
    entries = []
    for section_field in dataclasses.fields(ExperimentConfig):
        section = section_field.name
        own = tuple(a.name for a in ARTIFACTS.values() if a.params_from == section)
        for f in section_fields(section):
            declaration = field_declaration(f)
            enters: tuple[str, ...] = ()
            if declaration["key"]:
                also = declaration.get("also", ())
                mine = own if declaration.get("own", True) else ()
                enters = tuple(ARTIFACTS) if also == "*" else tuple(dict.fromkeys((*mine, *also)))
            when = declaration.get("when")
            entries.append(FieldEntry(
                section=section, name=f.name, key=declaration["key"], enters=enters,
                recomputes=tuple(descendants(enters)), via=declaration.get("via") or "",
                when=f"{when[0]} = {when[1]}" if when else "", backend=bool(declaration.get("backend")),
            ))
    return entries


def params_label(params: dict[str, Any], names: Iterable[str]) -> str:
    """``name=value`` pairs of ``params`` for ``names`` (lists comma-joined, long values cut): a ``cache ls`` cell."""
    parts = []
    for name in names:
        if name not in params:
            continue
        value = params[name]
        if isinstance(value, list):
            text = ",".join(str(v) for v in value)
        elif isinstance(value, dict):
            text = ",".join(f"{k}:{v}" for k, v in value.items())
        else:
            text = str(value)
        if len(text) > 24:
            text = text[:21] + "..."
        parts.append(f"{name}={text}")
    return " ".join(parts)
