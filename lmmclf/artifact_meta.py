"""What an artifact file holds besides its data: the key inputs, what made it, a manifest, the completion marker.

The store's one writer (``ArtifactStore.create``) calls :func:`write_metadata` last, so every
stage's artifact explains itself the same way: its key spec (``lmmclf_key_inputs``), stage and
key, creation time, item count, the versions of lmmclf, Python, torch, transformers and
open_clip it was made with (``lmmclf_made_with``, JSON; see ``lmmclf.version``), a manifest of
every dataset's shape and, written last, the completion marker. A file without the marker, or
whose datasets no longer match the manifest, is never trusted.
"""

from __future__ import annotations

import json
import time
from typing import Any

from lmmclf.keyspec import KeySpec
from lmmclf.version import NAMES, __version__, made_with

COMPLETE = "lmmclf_complete"
KEY_INPUTS = "lmmclf_key_inputs"
MANIFEST = "lmmclf_manifest"  # JSON {dataset path: shape} of everything written, checked by manifest_holds
MADE_WITH = "lmmclf_made_with"  # JSON {package: version}; artifacts written before it have only lmmclf_version
ITEMS = "lmmclf_items"
NOT_RECORDED = "not recorded"  # what an artifact older than MADE_WITH says about a version
NOT_INSTALLED = "not installed"  # the package was absent where the artifact was made


def write_metadata(handle: Any, spec: KeySpec, items: int | None = None) -> None:
    """Write the key inputs, what made the artifact, the manifest and (last) the completion marker into ``handle``."""
    handle.attrs[KEY_INPUTS] = spec.to_json()
    handle.attrs["lmmclf_stage"] = spec.stage
    handle.attrs["lmmclf_key"] = spec.key
    handle.attrs["lmmclf_version"] = __version__
    handle.attrs[MADE_WITH] = json.dumps(made_with(), sort_keys=True)
    handle.attrs["lmmclf_created"] = time.time()
    if items is not None:
        handle.attrs[ITEMS] = int(items)
    handle.attrs[MANIFEST] = json.dumps({name: list(handle[name].shape) for name in dataset_names(handle)}, sort_keys=True)
    handle.attrs[COMPLETE] = True


def versions(attributes: dict[str, Any]) -> dict[str, str]:
    """The versions an artifact was made with, from its decoded attributes (:func:`decoded_attributes`).

    Each of ``lmmclf.version.NAMES`` (and anything else recorded) maps to its version, ``not
    installed``, or ``not recorded`` for an artifact written before ``lmmclf_made_with`` existed
    (those still name their lmmclf version).
    """
    try:
        recorded = json.loads(attributes.get(MADE_WITH) or "{}")
    except (TypeError, ValueError):
        recorded = {}
    if not isinstance(recorded, dict):
        recorded = {}
    if "lmmclf" not in recorded and attributes.get("lmmclf_version") is not None:
        recorded["lmmclf"] = attributes["lmmclf_version"]
    out = {}
    for name in dict.fromkeys([*NAMES, *recorded]):
        if name not in recorded:
            out[name] = NOT_RECORDED
        else:
            out[name] = NOT_INSTALLED if recorded[name] is None else str(recorded[name])
    return out


def is_complete(handle: Any) -> bool:
    """Whether an open artifact carries the completion marker and still holds what its manifest lists."""
    return bool(handle.attrs.get(COMPLETE, False)) and manifest_holds(handle)


def manifest_holds(handle: Any) -> bool:
    """Whether every dataset the writer recorded is still there with its shape (no manifest: older file, trusted)."""
    raw = handle.attrs.get(MANIFEST)
    if raw is None:
        return True
    manifest = json.loads(raw)
    for name, shape in manifest.items():
        if name not in handle or list(handle[name].shape) != shape:
            return False
    return True


def decoded_attributes(handle: Any) -> dict[str, Any]:
    """Every attribute of an open artifact as plain Python values, and ``datasets``: each dataset's shape."""
    out = {}
    for name, value in handle.attrs.items():
        if hasattr(value, "tolist"):
            value = value.tolist()
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        out[name] = value
    out["datasets"] = {name: list(handle[name].shape) for name in dataset_names(handle)}
    return out


def dataset_names(group: Any, prefix: str = "") -> list[str]:
    """The path of every dataset under an HDF5 group, depth first (``texts/raw``)."""
    import h5py

    names = []
    for name, obj in group.items():
        full = f"{prefix}{name}"
        if isinstance(obj, h5py.Group):
            names.extend(dataset_names(obj, full + "/"))
        else:
            names.append(full)
    return names
