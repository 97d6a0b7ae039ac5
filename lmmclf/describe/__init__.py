"""The describe stage: K descriptions of every image from an LMM, batched, resumable, cached.

``describe_spec(cfg, dataset, store)`` gives the artifact's key (what ``embed`` reads);
``run_describe(cfg, dataset, store)`` makes it. Nothing heavy is imported here: backends
import torch / transformers / httpx when they are built.
"""

from lmmclf.describe.artifact import STAGE, describe_spec, select_items
from lmmclf.describe.backends.base import BACKENDS, Answer, Backend, Job, register_backend
from lmmclf.describe.parse import PARSER_VERSION, parse_descriptions
from lmmclf.describe.prompts import PRESETS, resolve_prompt
from lmmclf.describe.runner import DescribeSummary, parse_shard, run_describe

__all__ = [
    "BACKENDS",
    "PARSER_VERSION",
    "PRESETS",
    "STAGE",
    "Answer",
    "Backend",
    "DescribeSummary",
    "Job",
    "describe_spec",
    "parse_descriptions",
    "parse_shard",
    "register_backend",
    "resolve_prompt",
    "run_describe",
    "select_items",
]
