"""Changing a loaded config from the command line: each ``--set SECTION.KEY=VALUE``, and the positional DATASET.

``lmmclf.config`` holds the sections and reads the file; this module applies what a command line
adds on top, in the order :func:`lmmclf.cli.common.load` uses (file, each ``--set``, DATASET). The
library's :func:`lmmclf.predict.load_classifier` takes a dataset the same way.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Optional

import yaml

from lmmclf.config import ExperimentConfig, section_type
from lmmclf.config_checks import shown, validate_section
from lmmclf.config_yaml import yaml_problem
from lmmclf.errors import ConfigError


def parse_set(text: str) -> tuple[str, str, Any]:
    """``SECTION.KEY=VALUE`` (a ``--set`` option) as ``(section, key, value)``, the value read as YAML.

    The value is a YAML scalar or flow list (``3``, ``1e-3``, ``true``, ``[0, 1]``, ``null``), so
    ``--set`` takes what the config file takes; it is checked against the field's type and range.

    Raises:
        ConfigError: not ``SECTION.KEY=VALUE``, an unknown section or key, or a bad value; the
            sentence names ``--set SECTION.KEY``.
    """
    target, equals, raw = text.partition("=")
    section, dot, key = target.strip().partition(".")
    if not equals or not dot or not section or not key or "." in key:
        raise ConfigError(f"--set {text!r}: not SECTION.KEY=VALUE (e.g. --set describe.model=/data/tiny-llava).")
    sections = [f.name for f in dataclasses.fields(ExperimentConfig)]
    if section not in sections:
        raise ConfigError(f"--set {target}: unknown section '{section}' (known: {', '.join(sections)}).")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {target}: the value {shown(raw)} is not valid YAML ({yaml_problem(exc)}).") from None
    if isinstance(value, (dict, set)):
        raise ConfigError(f"--set {target}: the value must be a scalar or a list; got {shown(raw)}.")
    expected = typing.get_type_hints(section_type(section)).get(key)
    if value is not None and not isinstance(value, (str, list)) and (expected is str or expected == Optional[str]):
        value = raw.strip()  # a text field keeps what was typed: --set describe.prompt=yes, a model named 2024-01-01
    # validated alone against the defaults: every check is per field, so the file cannot change the verdict
    validate_section(section, section_type(section), {**dataclasses.asdict(section_type(section)()), key: value},
                     source=f"--set {target}")
    return section, key, value


def apply_sets(cfg: ExperimentConfig, sets: typing.Iterable[str]) -> ExperimentConfig:
    """``cfg`` with every ``--set SECTION.KEY=VALUE`` applied in order (see :func:`parse_set`)."""
    for text in sets:
        section, key, value = parse_set(text)
        current = getattr(cfg, section)
        checked = validate_section(section, type(current), {**dataclasses.asdict(current), key: value},
                                   source=f"--set {section}.{key}")
        cfg = dataclasses.replace(cfg, **{section: checked})
    return cfg


def for_dataset(cfg: ExperimentConfig, dataset: str, sets: tuple[str, ...] = ()) -> ExperimentConfig:
    """``cfg`` run on the positional ``dataset``.

    The config's ``dataset.root`` and ``dataset.type`` describe its ``dataset.name``: applied to
    another name they would read that dataset's images under the wrong name (and store them so).
    So when the names differ, ``dataset`` resolves through the registry alone; a root or type given
    by ``--set`` without ``--set dataset.name`` is kept, being meant for whatever dataset runs.
    """
    named = cfg.dataset.name
    if named is None or named == dataset or (cfg.dataset.root is None and cfg.dataset.type is None):
        return cfg.override("dataset", name=dataset)
    set_keys = {text.partition("=")[0].strip() for text in sets}
    keep_set = "dataset.name" not in set_keys
    root = cfg.dataset.root if keep_set and "dataset.root" in set_keys else None
    type_name = cfg.dataset.type if keep_set and "dataset.type" in set_keys else None
    return dataclasses.replace(cfg, dataset=dataclasses.replace(cfg.dataset, name=dataset, root=root, type=type_name))

