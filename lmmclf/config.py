"""The experiment config: one YAML file with a section per stage, defaults, and validation.

Every stage reads its parameters from here; command-line flags override them. A stage finds
its input artifacts by computing its parents' keys from the same config, which is why
``lmmclf -c exp.yaml describe && lmmclf -c exp.yaml embed && ...`` composes.

Unknown keys and values of the wrong type are rejected with the offending key named
(``describe.batch_size: expected int, got 'big'``). Each section is a dataclass whose fields
carry the defaults, with a comment on every choice the papers leave open.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import yaml

from lmmclf.errors import ConfigError

PAPER_PROMPT = "Give 10 semantic descriptions of the image"


@dataclass
class DatasetSection:
    name: Optional[str] = None  # a registered dataset (ucf101, era, bar, or one added with `datasets add`)
    root: Optional[str] = None  # overrides the registered root for this experiment
    type: Optional[str] = None  # adapter (ucf101, era, bar, imagefolder, csv) when name is neither registered nor a built-in type
    split: int = 1  # UCF-101's official split (1, 2 or 3); other datasets ignore it
    frame_format: Literal["png", "jpg"] = "png"  # how middle frames of videos are stored (png: lossless)
    decode_workers: int = 0  # processes for video decoding; 0 = one per CPU core
    allow_outside_root: bool = False  # read listed files (CSV rows, split-file lines) whose resolved path leaves the dataset root


@dataclass
class DescribeSection:
    backend: str = "hf"  # a name in lmmclf.describe.BACKENDS (hf, openai); a table, so plugins can add backends
    model: str = "llava-hf/llava-1.5-13b-hf"  # LLaVA-1.5 on Vicuna-13B v1.5
    revision: Optional[str] = None  # hub revision; pin a commit for exact reproducibility
    dtype: Literal["auto", "float16", "bfloat16", "float32"] = "auto"  # auto: float16 on GPU, float32 on CPU
    quantize: Literal["none", "8bit", "4bit", "auto"] = "auto"  # auto: from the GPU's free memory
    device: str = "auto"  # auto: cuda (all visible GPUs) if present, else cpu
    batch_size: int = 0  # 0 = pick from free memory
    prompt: Optional[str] = None  # free text; overrides prompt_preset
    prompt_preset: str = "paper"  # a named prompt (see `lmmclf describe --help`)
    num_descriptions: int = 10  # K
    max_new_tokens: int = 300  # MiniGPT-4's default
    repetition_penalty: float = 1.05  # MiniGPT-4's default
    sample: bool = False  # greedy by default: reproducible and cacheable
    temperature: float = 1.0  # with sample only: MiniGPT-4's value
    top_p: float = 0.9  # with sample only: MiniGPT-4's value
    seed: int = 0  # with sample only; re-seeded per batch
    split: Literal["train", "test", "all"] = "all"
    limit: Optional[int] = None  # describe only the first N images (for trying things out)
    base_url: Optional[str] = None  # openai backend: the server's /v1 URL
    api_key_env: str = "OPENAI_API_KEY"  # the environment variable holding the API key (never stored)
    concurrency: int = 8  # openai backend: requests in flight
    timeout: float = 300.0  # openai backend: seconds per request
    max_retries: int = 6  # openai backend: retries per image on 429, 5xx, timeouts
    retry_backoff: float = 1.0  # openai backend: seconds before the first retry; doubles per retry (jittered, cap 60 s)
    image_max_side: int = 0  # openai backend: downscale longer side before upload; 0 = send as is
    compile: bool = False  # hf backend, CUDA only: static KV cache + torch.compile (CUDA graphs) for decoding; eager decoding is launch-bound


@dataclass
class EmbedSection:
    clip_model: str = "ViT-L-14-quickgelu"  # the papers' ViT-L/14; QuickGELU matches OpenAI's weights
    clip_pretrained: Optional[str] = "openai"
    batch_size: int = 64
    num_workers: int = 2  # DataLoader workers for decoding and preprocessing
    device: str = "auto"
    precision: Literal["auto", "fp32", "fp16", "bf16"] = "auto"  # auto: fp16 autocast on GPU, fp32 on CPU
    storage_dtype: Literal["float32", "float16"] = "float32"
    max_missing_descriptions: float = 0.05  # largest share of train or test images without descriptions that stages using text features accept (not in any key: a gate, not a parameter)


@dataclass
class ProbeSection:
    features: Literal["image", "text", "concat", "mean", "zeroshot", "prototype-zeroshot"] = "concat"
    epochs: int = 500  # paper 1
    lr: float = 1e-3  # paper 1
    optimizer: Literal["sgd", "adam", "adamw"] = "sgd"  # paper silent; the authors' public code trains such heads with SGD (see docs/paper1.md)
    momentum: float = 0.9  # sgd only; the authors' public code
    weight_decay: float = 0.0  # paper mentions none
    batch_size: int = 64  # paper silent; the authors' public code
    normalize: bool = False  # L2-normalise each embedding before pooling/concatenation; the papers use raw embeddings
    val_fraction: float = 0.0  # hold out part of the training split for model selection (0: the paper's protocol)
    seeds: list[int] = field(default_factory=lambda: [0])
    device: str = "auto"
    zeroshot_templates: str = "ensemble"  # zero-shot prompts: a preset (ensemble, single) or templates with {} joined by |


@dataclass
class FinetuneSection:
    alpha: float = 0.01  # paper 2; 0 = the "finetuning w/o Reg." baseline
    epochs: int = 100  # paper 2
    batch_size: int = 64  # paper 2
    lr: float = 1e-4  # paper 2
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"  # paper silent; lr 1e-4 is an Adam-scale rate (SGD would barely move)
    weight_decay: float = 0.0  # paper mentions none
    momentum: float = 0.9  # sgd only (not in the key otherwise)
    schedule: Literal["constant", "cosine"] = "constant"  # paper mentions no schedule
    reg_reduction: Literal["mean", "sum"] = "mean"  # mean over the batch: alpha's weight does not change with batch size (docs/finetune.md)
    unlocked_blocks: int = 1  # paper: "the output of the image encoder"; the last block plus ln_post and proj
    trunk_cache: bool = True  # the frozen blocks' output is computed once; epochs run only the tail (same result)
    trunk_dtype: Literal["float16", "float32"] = "float16"  # half the disk and memory; rounding far below training noise
    precision: Literal["auto", "fp32", "fp16", "bf16"] = "auto"  # auto: bf16 on GPUs that have it, else fp16 + grad scaler; fp32 on CPU
    grad_checkpointing: bool = False  # recompute tail activations in backward: for many unlocked blocks on small GPUs
    augment: bool = False  # no augmentation in the paper; augmentation disables the trunk cache
    seeds: list[int] = field(default_factory=lambda: [0])  # one run (and artifact) per seed; eval reports mean and std
    device: str = "auto"
    num_workers: int = 2  # DataLoader workers decoding images (trunk cache build, --no-trunk-cache)


@dataclass
class EvalSection:
    methods: list[str] = field(default_factory=lambda: ["all"])
    out_dir: str = "results"
    bootstrap: int = 2000  # resamples for the paired confidence interval
    compare: Optional[list[str]] = None  # two methods to compare pairwise
    confidence: float = 0.95  # level of the bootstrap confidence interval


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
        checked = _validate_section(section, type(current), {**dataclasses.asdict(current), **given})
        return dataclasses.replace(self, **{section: checked})


def load_config(path: str | Path | None = None) -> ExperimentConfig:
    """The built-in defaults, updated from the YAML file at ``path`` if given.

    Raises:
        ConfigError: the file is missing or not YAML, or has an unknown key or wrong type.
    """
    if path is None:
        return ExperimentConfig()
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Config file {path} does not exist.")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"Config file {path} is not valid YAML: {exc}") from exc
    return config_from_dict(data, source=str(path))


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
        section_type = _section_type(name)
        defaults = dataclasses.asdict(section_type())
        built[name] = _validate_section(name, section_type, {**defaults, **value}, source)
    return ExperimentConfig(**built)


def _section_type(name: str) -> type:
    hints = typing.get_type_hints(ExperimentConfig)
    return hints[name]


# Ranges of numeric settings: (lowest allowed, highest allowed or None), or POSITIVE (> 0).
# Checked with the types, so that `--epochs 0` or `lr: -1` is one clear sentence, not a late crash.
POSITIVE = "positive"
RANGES: dict[str, tuple[float, float | None] | str] = {
    "describe.batch_size": (0, None),
    "describe.num_descriptions": (1, None),
    "describe.max_new_tokens": (1, None),
    "describe.concurrency": (1, None),
    "describe.max_retries": (0, None),
    "describe.timeout": POSITIVE,
    "embed.batch_size": (1, None),
    "embed.num_workers": (0, None),
    "embed.max_missing_descriptions": (0.0, 1.0),
    "probe.epochs": (1, None),
    "probe.lr": POSITIVE,
    "probe.batch_size": (1, None),
    "probe.val_fraction": (0.0, 0.99),
    "finetune.alpha": (0.0, None),
    "finetune.epochs": (1, None),
    "finetune.batch_size": (1, None),
    "finetune.lr": POSITIVE,
    "finetune.unlocked_blocks": (1, None),
    "finetune.num_workers": (0, None),
    "eval.bootstrap": (0, None),
    "eval.confidence": (0.5, 0.9999),
}


def _validate_section(name: str, section_type: type, values: dict[str, Any], source: str = "config"):
    hints = typing.get_type_hints(section_type)
    for key, value in values.items():
        if key not in hints:
            raise ConfigError(f"{source}: unknown key '{name}.{key}' (known: {', '.join(hints)}).")
        values[key] = _coerce(f"{name}.{key}", hints[key], value, source)
        _check_range(f"{name}.{key}", values[key], source)
    return section_type(**values)


def _check_range(where: str, value: Any, source: str) -> None:
    if where not in RANGES or value is None:
        return
    allowed = RANGES[where]
    if allowed == POSITIVE:
        if value <= 0:
            raise ConfigError(f"{source}: {where} must be positive; got {value!r}.")
        return
    low, high = allowed
    if value < low or (high is not None and value > high):
        bounds = f"at least {low:g}" if high is None else f"between {low:g} and {high:g}"
        raise ConfigError(f"{source}: {where} must be {bounds}; got {value!r}.")


def _coerce(where: str, expected: Any, value: Any, source: str) -> Any:
    """Check ``value`` against a type hint; allow int where float is expected."""
    origin = typing.get_origin(expected)
    args = typing.get_args(expected)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(where, option, value, source)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0]
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{source}: {where} must be one of {', '.join(map(str, args))}; got {value!r}.")
        return value
    if origin is list:
        if isinstance(value, (int, str)) and not isinstance(value, bool):
            value = _split_list(value)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: {where} must be a list; got {value!r}.")
        return [_coerce(f"{where}[{i}]", args[0], v, source) for i, v in enumerate(value)]
    if expected is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)  # YAML reads "1e-3" (no dot) as a string
            except ValueError:
                pass
        raise ConfigError(f"{source}: {where} must be a number; got {value!r}.")
    if expected is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{source}: {where} must be an integer; got {value!r}.")
    if expected is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{source}: {where} must be true or false; got {value!r}.")
    if expected is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{source}: {where} must be a string; got {value!r}.")
    raise ConfigError(f"{source}: {where} has an unsupported type {expected!r}.")


def _split_list(value: int | str) -> list:
    if isinstance(value, int):
        return [value]
    parts = [p.strip() for p in value.split(",") if p.strip()]
    return [int(p) if p.lstrip("-").isdigit() else p for p in parts]
