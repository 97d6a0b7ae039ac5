"""lmmclf's version, and the versions of what an artifact is made with.

Every artifact records :func:`made_with` (lmmclf, Python, torch, transformers, open_clip) in its
metadata (``lmmclf.store``), so a result can be rebuilt in the environment that made it
(``lmmclf cache info KEY`` shows them). Nothing heavy is imported here: a library already
imported reports its own ``__version__`` (what actually ran); one not imported yet is read
from its installed metadata.
"""

from __future__ import annotations

import platform
import sys
from importlib import metadata

__version__ = "0.1.0"

# name shown -> (module, distribution): the packages whose releases change what a stage computes
RECORDED = {
    "torch": ("torch", "torch"),
    "transformers": ("transformers", "transformers"),
    "open_clip": ("open_clip", "open_clip_torch"),
}
NAMES = ("lmmclf", "python", *RECORDED)  # what made_with returns, in the order cache info shows them


def made_with() -> dict[str, str | None]:
    """Each of :data:`NAMES` -> its version here (None: not installed)."""
    found: dict[str, str | None] = {"lmmclf": __version__, "python": platform.python_version()}
    for name, (module, distribution) in RECORDED.items():
        loaded = sys.modules.get(module)
        version = getattr(loaded, "__version__", None) if loaded is not None else None
        if not isinstance(version, str):
            try:
                version = metadata.version(distribution)
            except metadata.PackageNotFoundError:
                version = None
        found[name] = version
    return found
