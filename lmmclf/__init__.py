"""lmmclf: image classification with CLIP, enriched by descriptions from a large multimodal model.

The library stands alone; the command line (``lmmclf.cli``) is a thin layer over it.
Heavy dependencies (torch, transformers, open_clip) are imported only inside the functions
that need them, so that ``import lmmclf`` and ``lmmclf --help`` stay fast.
"""

from lmmclf import library_logs
from lmmclf.version import __version__

library_logs.install()


def __getattr__(name: str):
    """``lmmclf.load_classifier``, imported on first use (``import lmmclf`` stays light)."""
    if name == "load_classifier":
        from lmmclf.predict import load_classifier

        return load_classifier
    raise AttributeError(f"module 'lmmclf' has no attribute {name!r}")


__all__ = ["__version__", "load_classifier"]
