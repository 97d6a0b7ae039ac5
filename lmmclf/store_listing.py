"""What the cache holds: listing, finding by key prefix, reading attributes, removing artifacts.

:class:`StoreListing` is the half of :class:`lmmclf.store.ArtifactStore` that looks at many
artifacts (``cache ls``, ``show``, ``info``, ``rm``, ``gc`` and the missing-input message); the
store itself reads and writes one.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from lmmclf import artifact_meta, stages
from lmmclf.errors import CorruptArtifactError, LmmclfError
from lmmclf.keyspec import ArtifactInfo
from lmmclf.store_files import remove_path

_NOT_A_SIDECAR = re.compile(r"\.partial\.|\.tmp-|\.bad-|\.corrupt-|\.active-")  # in-progress, temp or set-aside files


class StoreListing:
    """Listing and removal over the artifacts under ``root`` (mixed into ``ArtifactStore``)."""

    root: Path

    def list(self) -> list[ArtifactInfo]:
        """Every finished artifact under the root (newest first)."""
        import h5py

        infos = []
        if not self.root.exists():
            return infos
        for path in sorted(self.root.glob("*/*.h5")):
            stage, key = path.parent.name, path.stem
            spec, items, complete = None, None, False
            try:
                with h5py.File(path, "r") as handle:
                    complete = artifact_meta.is_complete(handle)
                    raw = handle.attrs.get(artifact_meta.KEY_INPUTS)
                    spec = json.loads(raw) if raw is not None else None
                    if not isinstance(spec, dict):
                        spec = None
                    items = int(handle.attrs[artifact_meta.ITEMS]) if artifact_meta.ITEMS in handle.attrs else None
            except (OSError, ValueError, KeyError, RuntimeError, TypeError):
                complete = False
            try:  # another process may remove an artifact while we list
                stat = path.stat()
                size = stat.st_size + sum(side.stat().st_size for side in self.sidecars(path))
            except FileNotFoundError:
                continue
            infos.append(ArtifactInfo(stage, key, path, size, stat.st_mtime, spec, items, complete))
        infos.sort(key=lambda info: info.mtime, reverse=True)
        return infos

    def find(self, key_prefix: str) -> ArtifactInfo:
        """The one artifact whose key starts with ``key_prefix``."""
        matches = [info for info in self.list() if info.key.startswith(key_prefix)]
        if not matches:
            raise LmmclfError(f"No artifact with key starting '{key_prefix}' in {self.root}.")
        if len(matches) > 1:
            raise LmmclfError(f"Key prefix '{key_prefix}' matches {len(matches)} artifacts; give more characters.")
        return matches[0]

    def attributes(self, info: ArtifactInfo) -> dict[str, Any]:
        """All attributes of an artifact, decoded for display."""
        import h5py

        try:
            handle = h5py.File(info.path, "r")
        except OSError as exc:
            raise CorruptArtifactError(
                f"{info.path} is not a readable HDF5 file (truncated or damaged); remove it with `{stages.command('cache', None, ['rm', info.key[:12]])}`."
            ) from exc
        with handle:
            return artifact_meta.decoded_attributes(handle)

    def sidecars(self, path: Path) -> list[Path]:
        """Finished files that belong to an artifact, beside its HDF5 (e.g. ``<key>.safetensors`` weights)."""
        key = path.stem
        return [
            other
            for other in path.parent.glob(f"{key}.*")
            if other != path and not _NOT_A_SIDECAR.search(other.name) and other.suffix != ".lock"
        ]

    def remove(self, info: ArtifactInfo) -> None:
        """Delete one artifact, its sidecar files and any in-progress files of the same key."""
        for path in [info.path, *self.sidecars(info.path), *info.path.parent.glob(f"{info.key}.partial.*")]:
            remove_path(path)

    def leftovers(self) -> list[Path]:
        """Temp files, in-progress files and lock files (what ``cache gc`` may delete)."""
        if not self.root.exists():
            return []
        patterns = ("*.h5.tmp-*", "*.partial.*", "*.lock")  # at any depth: frames live in frames/v<N>/
        return sorted({p for pattern in patterns for p in self.root.rglob(pattern)})
