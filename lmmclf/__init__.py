"""lmmclf: image classification with CLIP, enriched by descriptions from a large multimodal model.

The library stands alone; the command line (``lmmclf.cli``) is a thin layer over it.
Heavy dependencies (torch, transformers, open_clip) are imported only inside the functions
that need them, so that ``import lmmclf`` and ``lmmclf --help`` stay fast.
"""

__version__ = "0.1.0"
