"""Dataset adapters (UCF-101, ERA, BAR, image folders, CSV manifests) and ``load_dataset``.

``load_dataset(cfg, store)`` is the one entry point stages use; see docs/datasets.md for the
layouts each adapter accepts, class orders, middle frames and fingerprints.
"""

from lmmclf.datasets.base import SPLITS, DatasetIndex, Item, SkippedItem
from lmmclf.datasets.loader import load_dataset
from lmmclf.datasets.registry import ADAPTERS, read_registry, register, resolve
from lmmclf.errors import DatasetError

__all__ = [
    "ADAPTERS",
    "SPLITS",
    "DatasetError",
    "DatasetIndex",
    "Item",
    "SkippedItem",
    "load_dataset",
    "read_registry",
    "register",
    "resolve",
]
