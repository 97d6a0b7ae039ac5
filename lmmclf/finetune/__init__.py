"""LMM-regularised CLIP fine-tuning (paper 2) and its alpha = 0 baseline.

``run_finetune(cfg, store)`` trains CLIP's last image-encoder block(s) plus a linear head with
CE + alpha * ||x_i - C_{l_i}||^2 for every seed of ``cfg.finetune`` and stores, per seed, the
metrics (HDF5, a TrainingRun) and the weights (safetensors). See docs/finetune.md.

Modules: ``tail`` (trunk/tail split of an open_clip ViT), ``trunk_cache`` (the frozen trunk's
output, computed once), ``sources`` (batches of trunk tokens, cached or streamed),
``trainer`` (the loop), ``checkpoint``, ``artifact`` (keys), ``run`` (orchestration).
Importing this package is cheap: torch is imported inside the functions that need it.
"""

from lmmclf.finetune.artifact import finetune_spec, finetune_specs
from lmmclf.finetune.run import FinetuneOutcome, load_finetune_runs, load_finetuned, run_finetune

__all__ = ["FinetuneOutcome", "finetune_spec", "finetune_specs", "load_finetune_runs", "load_finetuned", "run_finetune"]
