"""Which adapter reads which dataset, and where users' datasets live.

``ADAPTERS`` is the table of dataset types. The user registry is a small YAML file,
``$LMMCLF_CONFIG_DIR/datasets.yaml`` (default: the platform's user config folder for
lmmclf), mapping a name to its type and root, written by ``lmmclf datasets add``::

    ucf101: {type: ucf101, root: /data/UCF101}
    pets: {type: imagefolder, root: /data/pets}
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from lmmclf.config import DatasetSection, read_yaml_file
from lmmclf.datasets.adapter import Adapter
from lmmclf.datasets.bar import BarAdapter
from lmmclf.datasets.coop import COOP_ADAPTERS
from lmmclf.datasets.csvmanifest import CsvAdapter
from lmmclf.datasets.era import EraAdapter
from lmmclf.datasets.imagefolder import ImageFolderAdapter
from lmmclf.datasets.ucf101 import Ucf101Adapter
from lmmclf.errors import DatasetError
from lmmclf.stages import command

CONFIG_DIR_ENV = "LMMCLF_CONFIG_DIR"
REGISTRY_FILE = "datasets.yaml"

ADAPTERS: dict[str, type[Adapter]] = {
    adapter.type_name: adapter
    for adapter in (Ucf101Adapter, EraAdapter, BarAdapter, ImageFolderAdapter, CsvAdapter, *COOP_ADAPTERS)
}


@dataclass(frozen=True)
class DatasetEntry:
    """A dataset name resolved to its adapter type and root."""

    name: str
    type: str
    root: Path


def user_config_dir() -> Path:
    """``$LMMCLF_CONFIG_DIR`` if set, else the platform's user config folder for lmmclf."""
    env = os.environ.get(CONFIG_DIR_ENV)
    if env:
        return Path(env).expanduser()
    from platformdirs import user_config_dir as platform_dir

    return Path(platform_dir("lmmclf", appauthor=False))


def registry_path() -> Path:
    return user_config_dir() / REGISTRY_FILE


def read_registry() -> dict[str, dict[str, str]]:
    """The registered datasets: name -> {"type": ..., "root": ...}.

    Raises:
        DatasetError: the file cannot be read, is not UTF-8 YAML within the limits of
            :func:`lmmclf.config.read_yaml_file`, or an entry is not ``{type: TEXT, root: PATH}``.
    """
    path = registry_path()
    if not path.is_file():
        return {}
    data = read_yaml_file(path, "Dataset registry", DatasetError)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise DatasetError(f"Dataset registry {path} must map each name to {{type, root}}; fix or delete the file.")
    # Checked here, once, so that a hand-edited `root: 123` is one sentence naming the file and
    # entry rather than a TypeError wherever the root is used.
    registry = {}
    for name, entry in data.items():
        if not isinstance(entry, dict):
            raise DatasetError(f"Dataset registry {path}: '{name}' must map to {{type, root}}; fix or delete the file.")
        for key in ("type", "root"):
            value = entry.get(key)
            if value is not None and not (isinstance(value, str) and value.strip()):
                raise DatasetError(
                    f"Dataset registry {path}: '{name}.{key}' must be {'a folder path' if key == 'root' else 'a dataset type'}"
                    f" written as text; got {value!r:.60}."
                )
        registry[str(name)] = entry
    return registry


def register(name: str, root: str | Path, type_name: str | None = None) -> DatasetEntry:
    """Record (or replace) a dataset's root and type in the user registry.

    Args:
        name: the name later commands use.
        root: the dataset root; stored as an absolute path.
        type_name: the adapter; defaults to ``name`` when that is a built-in type.

    Raises:
        DatasetError: unknown type, or no type given for a name that is not a type.
    """
    type_name = type_name or (name if name in ADAPTERS else None)
    if type_name is None:
        raise DatasetError(
            f"'{name}' is not a built-in dataset type: add --type ({', '.join(ADAPTERS)})."
        )
    check_type(type_name)
    root_path = Path(root).expanduser().resolve()
    if not root_path.exists():
        raise DatasetError(f"Dataset root {root_path} does not exist.")
    data = read_registry()
    data[name] = {"type": type_name, "root": str(root_path)}
    path = registry_path()
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp.write_text(yaml.safe_dump(data, sort_keys=True), encoding="utf-8")
        os.replace(temp, path)
    except OSError as exc:  # e.g. $LMMCLF_CONFIG_DIR below a regular file, a read-only folder, a full disk
        with contextlib.suppress(OSError):
            temp.unlink(missing_ok=True)
        raise DatasetError(
            f"Cannot write the dataset registry {path} ({exc.strerror or exc}): "
            f"set ${CONFIG_DIR_ENV} to a writable folder."
        ) from exc
    return DatasetEntry(name, type_name, root_path)


def check_type(type_name: str) -> None:
    if type_name not in ADAPTERS:
        raise DatasetError(f"Unknown dataset type '{type_name}' (known: {', '.join(ADAPTERS)}).")


def resolve(section: DatasetSection) -> DatasetEntry:
    """The type and root of ``section.name``: the config's root/type win over the registry.

    Raises:
        DatasetError: no name, or a name with no root anywhere (the message says how to add it).
    """
    name = section.name
    if not name:
        raise DatasetError("No dataset given: pass DATASET (e.g. `lmmclf datasets info ucf101`) or set dataset.name in the config.")
    entry = read_registry().get(name, {})
    type_name = section.type or entry.get("type") or (name if name in ADAPTERS else None)
    root = section.root or entry.get("root")
    if root is None or type_name is None:
        raise DatasetError(
            f"Dataset '{name}' is not registered: run "
            f"`{command('datasets', None, ['add', name, '--root', 'PATH', *([] if name in ADAPTERS else ['--type', 'TYPE'])])}` "
            "(or set dataset.root in the config)."
        )
    check_type(type_name)
    return DatasetEntry(name, type_name, Path(root).expanduser().resolve())
