"""The experiment config: one YAML file with a section per stage, its defaults, and reading it.

Every stage reads its parameters from here; command-line flags override them. A stage finds
its input artifacts by computing its parents' keys from the same config, which is why
``lmmclf -c exp.yaml describe && lmmclf -c exp.yaml embed && ...`` composes.

Unknown keys and values of the wrong type are rejected with the offending key named
(``describe.batch_size: expected int, got 'big'``; the checks and ranges are in
``lmmclf.config_checks``, the bounded YAML reader in ``lmmclf.config_yaml``, ``--set`` and the
positional DATASET in ``lmmclf.config_sets``). Each section is a dataclass whose fields carry
the defaults, with a comment on every choice the papers leave open.

Every field also declares, next to its default, whether it enters a cache key (:func:`keyed`)
or only changes how the work runs (:func:`runtime`: device, batch size, workers, timeouts).
Key functions take their parameters from these declarations (``lmmclf.stages.key_params``)
and ``lmmclf config show --keys`` prints them; a field without a declaration fails a test.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import yaml

from lmmclf.config_checks import RANGES, Range, validate_section
from lmmclf.config_yaml import read_yaml_file
from lmmclf.errors import ConfigError

__all__ = [  # RANGES, Range and read_yaml_file live in config_checks and config_yaml; importable from here too
    "PAPER_PROMPT", "keyed", "runtime", "field_declaration", "DatasetSection", "DescribeSection", "EmbedSection",
    "ProbeSection", "FinetuneSection", "EvalSection", "ExperimentConfig", "load_config", "config_from_dict",
    "section_type", "RANGES", "Range", "read_yaml_file",
]

PAPER_PROMPT = "Give 10 semantic descriptions of the image"


def keyed(default: Any = dataclasses.MISSING, *, factory: Any = dataclasses.MISSING, via: str | None = None,
          when: tuple[str, Any] | None = None, also: tuple[str, ...] | str = (), backend: bool = False, own: bool = True) -> Any:
    """A config field that enters a cache key.

    Args:
        default: the default value (or ``factory`` for a mutable one).
        via: how it enters when not as itself under its own name (``model identity``, ``prompt``...);
            such fields are left to the key function, which derives the value.
        when: ``(field, value)``: it enters only while that field of the section has that value
            (``("optimizer", "sgd")`` for momentum): an unused setting must not split the cache.
        also: further artifacts whose keys it enters (store stage names; ``"*"``: every one).
        backend: a describe backend option: it enters the key only for backends that read it.
        own: it enters the keys of its own section's artifacts (False: only those in ``also``).
    """
    return field(default=default, default_factory=factory,
                 metadata={"key": True, "via": via, "when": when, "also": also, "backend": backend, "own": own})


def runtime(default: Any = dataclasses.MISSING, *, factory: Any = dataclasses.MISSING, backend: bool = False) -> Any:
    """A config field that changes how the work runs, not its result: it enters no key."""
    return field(default=default, default_factory=factory, metadata={"key": False, "backend": backend})


def field_declaration(f: dataclasses.Field) -> dict[str, Any]:
    """What ``f`` declares about keys (see :func:`keyed`).

    Raises:
        KeyError: ``f`` was declared with neither :func:`keyed` nor :func:`runtime`.
    """
    if "key" not in f.metadata:
        raise KeyError(f"config field '{f.name}' declares neither keyed(...) nor runtime(...)")
    return dict(f.metadata)



@dataclass
class DatasetSection:
    name: Optional[str] = keyed(None, via="dataset identity", also="*")  # a registered dataset (ucf101, era, bar, or one added with `datasets add`)
    root: Optional[str] = keyed(None, via="dataset identity (the fingerprint of what it holds)", also="*")  # overrides the registered root for this experiment
    type: Optional[str] = keyed(None, via="dataset identity", also="*")  # adapter (ucf101, era, bar, imagefolder, csv) when name is neither registered nor a built-in type
    split: int = keyed(1, via="dataset identity", also="*")  # UCF-101's official split (1, 2 or 3); other datasets ignore it
    frame_format: Literal["png", "jpg"] = keyed("png", via="dataset identity", also="*")  # how middle frames of videos are stored (png: lossless)
    decode_workers: int = runtime(0)  # processes for video decoding; 0 = one per CPU core
    allow_outside_root: bool = keyed(False, via="dataset identity (which files are read)", also="*")  # read listed files (CSV rows, split-file lines) whose resolved path leaves the dataset root


@dataclass
class DescribeSection:
    backend: str = keyed("hf")  # a name in lmmclf.describe.BACKENDS (hf, openai); a table, so plugins can add backends
    model: str = keyed("llava-hf/llava-1.5-13b-hf", via="model identity")  # LLaVA-1.5 on Vicuna-13B v1.5
    revision: Optional[str] = keyed(None, via="model identity", backend=True)  # hub revision; pin a commit for exact reproducibility
    dtype: Literal["auto", "float16", "bfloat16", "float32"] = keyed("auto", backend=True)  # auto: float16 on GPU, float32 on CPU
    # auto: from the GPU's free memory, torchao's int8/int4 when installed, else bitsandbytes 8bit/4bit (describe/backends/quantization.py)
    quantize: Literal["none", "int8-torchao", "int4-torchao", "8bit", "4bit", "auto"] = keyed("auto", backend=True)
    device: str = runtime("auto", backend=True)  # auto: cuda (all visible GPUs) if present, else cpu
    batch_size: int = runtime(0, backend=True)  # 0 = pick from free memory
    prompt: Optional[str] = keyed(None, via="prompt (the resolved text)")  # free text; overrides prompt_preset
    prompt_preset: str = keyed("paper", via="prompt (the resolved text)")  # a named prompt (see `lmmclf describe --help`)
    num_descriptions: int = keyed(10)  # K
    max_new_tokens: int = keyed(300)  # MiniGPT-4's default
    repetition_penalty: float = keyed(1.05)  # MiniGPT-4 Chat.answer default since 2023-10-13 (1.0 before); the papers do not say which they ran
    sample: bool = keyed(False)  # greedy by default: reproducible and cacheable
    temperature: float = keyed(1.0, when=("sample", True))  # with sample only: MiniGPT-4's value
    top_p: float = keyed(0.9, when=("sample", True))  # with sample only: MiniGPT-4's value
    seed: int = keyed(0, when=("sample", True))  # with sample only; re-seeded per batch
    # only list answers count (prose and captions become failures): the papers' rule. Not in the describe key (the
    # same answers serve both policies); it enters embed-text's key through the digest of the descriptions it reads
    require_list: bool = keyed(False, via="the digest of the descriptions embed-text reads", also=("embed-text",), own=False)
    split: Literal["train", "test", "all"] = keyed("all", also=("embed-image",))
    limit: Optional[int] = keyed(None, via="limit (none when it keeps every image)", also=("embed-image",))  # describe only the first N images (for trying things out)
    base_url: Optional[str] = runtime(None, backend=True)  # openai backend: the server's /v1 URL
    api_key_env: str = runtime("OPENAI_API_KEY", backend=True)  # the environment variable holding the API key (never stored)
    concurrency: int = runtime(8, backend=True)  # openai backend: requests in flight
    timeout: float = runtime(300.0, backend=True)  # openai backend: seconds per request
    max_retries: int = runtime(6, backend=True)  # openai backend: retries per image on 429, 5xx, timeouts
    retry_backoff: float = runtime(1.0, backend=True)  # openai backend: seconds before the first retry; doubles per retry (jittered, cap 60 s)
    image_max_side: int = keyed(0, backend=True)  # openai backend: downscale longer side before upload; 0 = send as is
    compile: bool = runtime(False, backend=True)  # hf backend, CUDA only: static KV cache + torch.compile (CUDA graphs) for decoding; eager decoding is launch-bound
    minigpt4_vision: str = keyed("Salesforce/blip2-flan-t5-xxl", via="model identity", backend=True)  # minigpt4 backend: the BLIP-2 checkpoint whose ViT, Q-Former and query tokens MiniGPT-4 uses (hub id or folder)
    minigpt4_projection: Optional[str] = keyed(None, via="model identity", backend=True)  # minigpt4 backend: MiniGPT-4's pretrained_minigpt4.pth (llama_proj): a file or hf://org/repo/file


@dataclass
class EmbedSection:
    clip_model: str = keyed("ViT-L-14-quickgelu", via="model identity", also=("probe", "finetune", "trunk"))  # the papers' ViT-L/14; QuickGELU matches OpenAI's weights
    clip_pretrained: Optional[str] = keyed("openai", via="model identity", also=("probe", "finetune", "trunk"))
    batch_size: int = runtime(64)
    num_workers: int = runtime(2)  # DataLoader workers for decoding and preprocessing
    device: str = runtime("auto")
    precision: Literal["auto", "fp32", "fp16", "bf16"] = runtime("auto")  # auto: fp16 autocast on GPU, fp32 on CPU
    storage_dtype: Literal["float32", "float16"] = keyed("float32")
    max_missing_descriptions: float = runtime(0.05)  # largest share of train or test images without descriptions that stages using text features accept (not in any key: a gate, not a parameter)


@dataclass
class ProbeSection:
    features: Literal["image", "text", "concat", "mean", "zeroshot", "prototype-zeroshot"] = keyed("concat", via="features (one artifact per method)")
    epochs: int = keyed(500)  # paper 1
    lr: float = keyed(1e-3)  # paper 1
    optimizer: Literal["sgd", "adam", "adamw"] = keyed("sgd")  # paper silent; the authors' public code trains such heads with SGD (see docs/paper1.md)
    momentum: float = keyed(0.9, when=("optimizer", "sgd"))  # sgd only; the authors' public code
    weight_decay: float = keyed(0.0)  # paper mentions none
    batch_size: int = keyed(64)  # paper silent; the authors' public code
    normalize: bool = keyed(False)  # L2-normalise each embedding before pooling/concatenation; the papers use raw embeddings
    val_fraction: float = keyed(0.0)  # hold out part of the training split for model selection (0: the paper's protocol)
    seeds: list[int] = keyed(factory=lambda: [0])
    device: str = runtime("auto")
    in_memory_max_bytes: int = runtime(4 << 30)  # features up to this size are held on the device (fast); larger ones go to a memory-mapped file, read per batch (same result)
    zeroshot_templates: str = keyed("ensemble", via="templates (the zeroshot method only)")  # zero-shot prompts: a preset (ensemble, single) or templates with {} joined by |


@dataclass
class FinetuneSection:
    alpha: float = keyed(0.01)  # paper 2; 0 = the "finetuning w/o Reg." baseline
    epochs: int = keyed(100)  # paper 2
    batch_size: int = keyed(64)  # paper 2
    lr: float = keyed(1e-4)  # paper 2
    optimizer: Literal["adam", "adamw", "sgd"] = keyed("adam")  # paper silent; lr 1e-4 is an Adam-scale rate (SGD would barely move)
    weight_decay: float = keyed(0.0)  # paper mentions none
    momentum: float = keyed(0.9, when=("optimizer", "sgd"))  # sgd only (not in the key otherwise)
    schedule: Literal["constant", "cosine"] = keyed("constant")  # paper mentions no schedule
    reg_reduction: Literal["mean", "sum"] = keyed("mean")  # mean over the batch: alpha's weight does not change with batch size (docs/finetune.md)
    unlocked_blocks: int = keyed(1, also=("trunk",))  # paper: "the output of the image encoder"; the last block plus ln_post and proj
    trunk_cache: bool = keyed(True, via="trunk_cache (true only without augment)")  # the frozen blocks' output is computed once; epochs run only the tail (same result)
    trunk_dtype: Literal["float16", "float32"] = keyed("float16", via="trunk_dtype (only with the trunk cache)", also=("trunk",))  # half the disk and memory; rounding far below training noise
    precision: Literal["auto", "fp32", "fp16", "bf16"] = keyed("auto", also=("trunk",))  # auto: bf16 on GPUs that have it, else fp16 + grad scaler; fp32 on CPU
    grad_checkpointing: bool = runtime(False)  # recompute tail activations in backward: for many unlocked blocks on small GPUs
    augment: bool = keyed(False)  # no augmentation in the paper; augmentation disables the trunk cache
    seeds: list[int] = keyed(factory=lambda: [0], via="seed (one artifact per seed)")  # one run (and artifact) per seed; eval reports mean and std
    device: str = runtime("auto")
    num_workers: int = runtime(2)  # DataLoader workers decoding images (trunk cache build, --no-trunk-cache)


@dataclass
class EvalSection:
    methods: list[str] = runtime(factory=lambda: ["all"])
    out_dir: str = runtime("results/{dataset}")  # {dataset}: the dataset's name, so datasets do not overwrite each other
    bootstrap: int = runtime(2000)  # resamples for the paired confidence interval
    compare: Optional[list[str]] = runtime(None)  # two methods to compare pairwise
    confidence: float = runtime(0.95)  # level of the bootstrap confidence interval


@dataclass
class ExperimentConfig:
    dataset: DatasetSection = field(default_factory=DatasetSection)
    describe: DescribeSection = field(default_factory=DescribeSection)
    embed: EmbedSection = field(default_factory=EmbedSection)
    probe: ProbeSection = field(default_factory=ProbeSection)
    finetune: FinetuneSection = field(default_factory=FinetuneSection)
    eval: EvalSection = field(default_factory=EvalSection)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def override(self, section: str, **values: Any) -> "ExperimentConfig":
        """A copy with ``values`` set in ``section``; ``None`` values (unset flags) are ignored."""
        given = {k: v for k, v in values.items() if v is not None}
        if not given:
            return self
        current = getattr(self, section)
        checked = validate_section(section, type(current), {**dataclasses.asdict(current), **given})
        return dataclasses.replace(self, **{section: checked})


def load_config(path: str | Path | None = None) -> ExperimentConfig:
    """The built-in defaults, updated from the YAML file at ``path`` if given.

    Raises:
        ConfigError: the file is missing, unreadable, not UTF-8 or not YAML, or has an unknown
            key, a wrong type or a value out of range.
    """
    if path is None:
        return ExperimentConfig()
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"Config file {path} is a folder, not a YAML file.")
    if not path.is_file():
        raise ConfigError(f"Config file {path} does not exist.")
    data = read_yaml_file(path, "Config file", ConfigError)
    return config_from_dict({} if data is None else data, source=str(path))


def config_from_dict(data: dict[str, Any], source: str = "config") -> ExperimentConfig:
    """Build and validate a config from plain data (e.g. parsed YAML)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections.")
    sections = {f.name: f for f in dataclasses.fields(ExperimentConfig)}
    built = {}
    for name, value in data.items():
        if name not in sections:
            raise ConfigError(f"{source}: unknown section '{name}' (known: {', '.join(sections)}).")
        if value is None:
            continue
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: section '{name}' must be a mapping.")
        kind = section_type(name)
        built[name] = validate_section(name, kind, {**dataclasses.asdict(kind()), **value}, source)
    return ExperimentConfig(**built)


def section_type(name: str) -> type:
    """The dataclass of the config section called ``name`` (``describe`` -> :class:`DescribeSection`)."""
    hints = typing.get_type_hints(ExperimentConfig)
    return hints[name]
