"""The experiment config: one YAML file with a section per stage, defaults, and validation.

Every stage reads its parameters from here; command-line flags override them. A stage finds
its input artifacts by computing its parents' keys from the same config, which is why
``lmmclf -c exp.yaml describe && lmmclf -c exp.yaml embed && ...`` composes.

Unknown keys and values of the wrong type are rejected with the offending key named
(``describe.batch_size: expected int, got 'big'``). Each section is a dataclass whose fields
carry the defaults, with a comment on every choice the papers leave open.

Every field also declares, next to its default, whether it enters a cache key (:func:`keyed`)
or only changes how the work runs (:func:`runtime`: device, batch size, workers, timeouts).
Key functions take their parameters from these declarations (``lmmclf.stages.key_params``)
and ``lmmclf config show --keys`` prints them; a field without a declaration fails a test.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import yaml

from lmmclf.errors import ConfigError, LmmclfError

PAPER_PROMPT = "Give 10 semantic descriptions of the image"


def keyed(default: Any = dataclasses.MISSING, *, factory: Any = dataclasses.MISSING, via: str | None = None,
          when: tuple[str, Any] | None = None, also: tuple[str, ...] | str = (), backend: bool = False) -> Any:
    """A config field that enters a cache key.

    Args:
        default: the default value (or ``factory`` for a mutable one).
        via: how it enters when not as itself under its own name (``model identity``, ``prompt``...);
            such fields are left to the key function, which derives the value.
        when: ``(field, value)``: it enters only while that field of the section has that value
            (``("optimizer", "sgd")`` for momentum): an unused setting must not split the cache.
        also: further artifacts whose keys it enters (store stage names; ``"*"``: every one).
        backend: a describe backend option: it enters the key only for backends that read it.
    """
    return field(default=default, default_factory=factory,
                 metadata={"key": True, "via": via, "when": when, "also": also, "backend": backend})


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
        checked = _validate_section(section, type(current), {**dataclasses.asdict(current), **given})
        return dataclasses.replace(self, **{section: checked})


def parse_set(text: str) -> tuple[str, str, Any]:
    """``SECTION.KEY=VALUE`` (a ``--set`` option) as ``(section, key, value)``, the value read as YAML.

    The value is a YAML scalar or flow list (``3``, ``1e-3``, ``true``, ``[0, 1]``, ``null``), so
    ``--set`` takes what the config file takes; it is checked against the field's type and range.

    Raises:
        ConfigError: not ``SECTION.KEY=VALUE``, an unknown section or key, or a bad value; the
            sentence names ``--set SECTION.KEY``.
    """
    target, equals, raw = text.partition("=")
    section, dot, key = target.strip().partition(".")
    if not equals or not dot or not section or not key or "." in key:
        raise ConfigError(f"--set {text!r}: not SECTION.KEY=VALUE (e.g. --set describe.model=/data/tiny-llava).")
    sections = [f.name for f in dataclasses.fields(ExperimentConfig)]
    if section not in sections:
        raise ConfigError(f"--set {target}: unknown section '{section}' (known: {', '.join(sections)}).")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {target}: the value {_shown(raw)} is not valid YAML ({_yaml_problem(exc)}).") from None
    if isinstance(value, (dict, set)):
        raise ConfigError(f"--set {target}: the value must be a scalar or a list; got {_shown(raw)}.")
    expected = typing.get_type_hints(_section_type(section)).get(key)
    if value is not None and not isinstance(value, (str, list)) and (expected is str or expected == Optional[str]):
        value = raw.strip()  # a text field keeps what was typed: --set describe.prompt=yes, a model named 2024-01-01
    # validated alone against the defaults: every check is per field, so the file cannot change the verdict
    _validate_section(section, _section_type(section), {**dataclasses.asdict(_section_type(section)()), key: value},
                      source=f"--set {target}")
    return section, key, value


def apply_sets(cfg: "ExperimentConfig", sets: "typing.Iterable[str]") -> "ExperimentConfig":
    """``cfg`` with every ``--set SECTION.KEY=VALUE`` applied in order (see :func:`parse_set`)."""
    for text in sets:
        section, key, value = parse_set(text)
        current = getattr(cfg, section)
        checked = _validate_section(section, type(current), {**dataclasses.asdict(current), key: value},
                                    source=f"--set {section}.{key}")
        cfg = dataclasses.replace(cfg, **{section: checked})
    return cfg


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


# A YAML file we parse (the config, the dataset registry) is trusted with nothing: these bounds
# refuse, in one sentence and in time linear in the file, what would otherwise exhaust memory
# (an alias bomb, "billion laughs", expands exponentially once anything walks the data) or the
# stack (deep nesting). Real configs are a few kilobytes with a few hundred nodes.
MAX_YAML_BYTES = 1 << 20
MAX_YAML_NODES = 100_000  # counted as if every alias were expanded
MAX_YAML_DEPTH = 64


class _YamlLimitError(yaml.YAMLError):
    """A YAML document beyond one of the bounds above (the message completes a sentence)."""


class _BoundedLoader(yaml.SafeLoader):
    """``SafeLoader`` that counts nodes with aliases expanded and limits nesting while composing.

    Each node's expanded size is its own plus its children's; an alias costs the size of the
    node it names. So the count is exact, yet composing stays linear: nothing is expanded.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._expanded: dict[int, int] = {}
        self._depth = 0

    def compose_node(self, parent, index):  # noqa: D102 (PyYAML's hook)
        if self.check_event(yaml.AliasEvent):
            node = super().compose_node(parent, index)
            size = self._expanded.get(id(node))
            if size is None:  # the anchored node is still open: it contains itself
                raise _YamlLimitError("has an alias inside the node it refers to (a structure that contains itself)")
            return self._count(node, size)
        self._depth += 1
        if self._depth > MAX_YAML_DEPTH:
            raise _YamlLimitError(f"nests deeper than {MAX_YAML_DEPTH} levels")
        node = super().compose_node(parent, index)
        self._depth -= 1
        if isinstance(node, yaml.MappingNode):
            size = 1 + sum(self._expanded[id(k)] + self._expanded[id(v)] for k, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            size = 1 + sum(self._expanded[id(item)] for item in node.value)
        else:
            size = 1
        self._expanded[id(node)] = size
        return self._count(node, size)

    @staticmethod
    def _count(node, size: int):
        if size > MAX_YAML_NODES:
            raise _YamlLimitError(
                f"expands to more than {MAX_YAML_NODES:,} values through its aliases (*name); write the values out instead"
            )
        return node


def read_yaml_file(path: Path, what: str, error: type[LmmclfError]) -> Any:
    """The data in the YAML file ``path``, or ``error`` with one sentence naming the file.

    Args:
        path: the file.
        what: how the sentence names it ("Config file", "Dataset registry").
        error: the exception to raise (ConfigError, DatasetError).
    """
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_YAML_BYTES + 1)
    except OSError as exc:
        raise error(f"{what} {path} cannot be read ({exc.strerror or exc}).") from exc
    if len(raw) > MAX_YAML_BYTES:
        raise error(f"{what} {path} is larger than {MAX_YAML_BYTES >> 20} MiB, which is not a config a person wrote.")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(f"{what} {path} is not UTF-8 text (byte {exc.start} cannot be decoded); save it as UTF-8.") from exc
    try:
        return yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 (a SafeLoader subclass)
    except _YamlLimitError as exc:
        raise error(f"{what} {path} {exc}.") from None
    except yaml.YAMLError as exc:
        raise error(f"{what} {path} is not valid YAML ({_yaml_problem(exc)}).") from None
    except (ValueError, OverflowError) as exc:  # e.g. a date 2021-13-45, an integer of 5000 digits
        reason = str(exc).split(":")[0]  # Python's own text goes on with advice meant for programmers
        raise error(f"{what} {path} holds a value YAML cannot read ({reason}).") from None


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's multi-line message as one clause: the problem and where it is."""
    problem = getattr(exc, "problem", None) or getattr(exc, "context", None)
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if problem and mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(str(exc).split())


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


@dataclass(frozen=True)
class Range:
    """The allowed values of a numeric setting: ``low``/``high`` (None: unbounded), each included unless open."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    cap: bool = False  # ``high`` only stops absurd values (it is not part of the setting's meaning)

    def allows(self, value: float) -> bool:
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return self.high is None or not (value > self.high or (self.high_open and value == self.high))

    def describe(self) -> str:
        if self.low == 0 and self.low_open and self.high is None:
            return "positive"
        lower = None if self.low is None else f"{'greater than' if self.low_open else 'at least'} {_number(self.low)}"
        upper = None if self.high is None else f"{'below' if self.high_open else 'at most'} {_number(self.high)}"
        if lower and upper and not (self.low_open or self.high_open or self.cap):
            return f"between {_number(self.low)} and {_number(self.high)}"
        return " and ".join(part for part in (lower, upper) if part)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


# Every numeric setting has a range, checked with the types at load time (file, --set-free flags
# alike), so that a bad value is one sentence naming the key, not a late crash, a hang, or a run
# that "succeeds" with every item failed. Upper bounds are far beyond any sensible use; they stop
# values that would overflow (torch, sockets) or never finish. Non-finite floats are refused by
# the float coercion itself, for every float setting.
POSITIVE = Range(0, None, low_open=True)
SEED = Range(0, 2**32 - 1, cap=True)  # numpy's and torch's common seed range
WORKERS = Range(0, 1024, cap=True)
EPOCHS = Range(1, 1_000_000, cap=True)
MOMENTUM = Range(0, 1, high_open=True)  # torch refuses negative momentum; 1 or more never decays
RANGES: dict[str, Range] = {
    "dataset.decode_workers": WORKERS,
    "describe.batch_size": Range(0, 4096, cap=True),
    "describe.num_descriptions": Range(1, 1000, cap=True),
    "describe.max_new_tokens": Range(1, 32768, cap=True),  # beyond any model's context: a hang, not an answer
    "describe.repetition_penalty": POSITIVE,  # HF divides logits by it
    "describe.temperature": POSITIVE,  # HF refuses 0 and below when sampling
    "describe.top_p": Range(0, 1, low_open=True),
    "describe.seed": SEED,
    "describe.limit": Range(1, None),
    "describe.concurrency": Range(1, 1024, cap=True),
    "describe.timeout": Range(0, 86_400, low_open=True, cap=True),  # a day; larger overflows socket timeouts
    "describe.max_retries": Range(0, 100, cap=True),
    "describe.retry_backoff": Range(0, 60),  # the backoff is capped at 60 s anyway
    "describe.image_max_side": Range(0, 65_536, cap=True),  # 0 = send as is
    "embed.batch_size": Range(1, 65_536, cap=True),
    "embed.num_workers": WORKERS,
    "embed.max_missing_descriptions": Range(0.0, 1.0),
    "probe.epochs": EPOCHS,
    "probe.lr": POSITIVE,
    "probe.momentum": MOMENTUM,
    "probe.weight_decay": Range(0, None),
    "probe.batch_size": Range(1, 1 << 24, cap=True),
    "probe.val_fraction": Range(0.0, 0.99),
    "probe.seeds": SEED,  # each seed
    "finetune.alpha": Range(0.0, None),
    "finetune.epochs": EPOCHS,
    "finetune.batch_size": Range(1, 65_536, cap=True),
    "finetune.lr": POSITIVE,
    "finetune.weight_decay": Range(0, None),
    "finetune.momentum": MOMENTUM,
    "finetune.unlocked_blocks": Range(0, 1000, cap=True),  # 0: only ln_post, proj and the head (paper 2, narrowly read)
    "finetune.seeds": SEED,
    "finetune.num_workers": WORKERS,
    "eval.bootstrap": Range(0, 1_000_000, cap=True),
    "eval.confidence": Range(0.5, 0.9999),
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
    """Raise if ``value`` (each element, for a list) is outside the range of setting ``where``."""
    allowed = RANGES.get(where)
    if allowed is None or value is None:
        return
    for label, number in ([(f"{where}[{i}]", v) for i, v in enumerate(value)] if isinstance(value, list) else [(where, value)]):
        if not allowed.allows(number):
            raise ConfigError(f"{source}: {label} must be {allowed.describe()}; got {_shown(number)}.")


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
            raise ConfigError(f"{source}: {where} must be one of {', '.join(map(str, args))}; got {_shown(value)}.")
        return value
    if origin is list:
        if isinstance(value, (int, str)) and not isinstance(value, bool):
            value = _split_list(value)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: {where} must be a list; got {_shown(value)}.")
        return [_coerce(f"{where}[{i}]", args[0], v, source) for i, v in enumerate(value)]
    if expected is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:  # an int beyond any float
                number = math.inf
        elif isinstance(value, str):
            try:
                number = float(value)  # YAML reads "1e-3" (no dot) as a string
            except ValueError:
                pass
        if number is None:
            raise ConfigError(f"{source}: {where} must be a number; got {_shown(value)}.")
        if not math.isfinite(number):  # nan, inf, .inf, 1e999: every later comparison or step goes wrong
            raise ConfigError(f"{source}: {where} must be a finite number; got {_shown(value)}.")
        return number
    if expected is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        # Floats (300.0) and numbers in exponent form ("1e20": YAML reads it as a string) are
        # refused rather than rounded: a count written that way is more likely a mistake.
        raise ConfigError(f"{source}: {where} must be an integer; got {_shown(value)}.")
    if expected is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{source}: {where} must be true or false; got {_shown(value)}.")
    if expected is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{source}: {where} must be a string; got {_shown(value)}.")
    raise ConfigError(f"{source}: {where} has an unsupported type {expected!r}.")


def _shown(value: Any) -> str:
    """``repr(value)``, cut short: a hostile value must not turn the one sentence into a page."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}... ({len(text)} characters)"


def _split_list(value: int | str) -> list:
    if isinstance(value, int):
        return [value]
    parts = [p.strip() for p in value.split(",") if p.strip()]
    return [int(p) if p.lstrip("-").isdigit() else p for p in parts]
