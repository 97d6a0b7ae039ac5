"""Checking config values: each value against its field's type hint and each number against its range.

The one place a setting's type and allowed values are enforced, for a YAML file, a ``--set`` and
a command-line flag alike (through :func:`validate_section`), so that a bad value is one sentence
naming the key (``describe.batch_size: expected int, got 'big'``), not a late crash. The sections
themselves (fields, defaults, key declarations) are in ``lmmclf.config``.
"""

from __future__ import annotations

import math
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

from lmmclf.errors import ConfigError


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
    "probe.in_memory_max_bytes": Range(0, None),
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


def validate_section(name: str, section_type: type, values: dict[str, Any], source: str = "config"):
    """``section_type(**values)``, each value coerced to its field's type and checked against its range.

    Args:
        name: the section's name in the config (``describe``), for the messages.
        section_type: the section's dataclass.
        values: every field's value (defaults merged in by the caller); changed in place.
        source: what the sentence names first (the file, ``--set describe.model``).

    Raises:
        ConfigError: an unknown key, a value of the wrong type or out of range.
    """
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
            raise ConfigError(f"{source}: {label} must be {allowed.describe()}; got {shown(number)}.")


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
            raise ConfigError(f"{source}: {where} must be one of {', '.join(map(str, args))}; got {shown(value)}.")
        return value
    if origin is list:
        if isinstance(value, (int, str)) and not isinstance(value, bool):
            value = _split_list(value)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: {where} must be a list; got {shown(value)}.")
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
            raise ConfigError(f"{source}: {where} must be a number; got {shown(value)}.")
        if not math.isfinite(number):  # nan, inf, .inf, 1e999: every later comparison or step goes wrong
            raise ConfigError(f"{source}: {where} must be a finite number; got {shown(value)}.")
        return number
    if expected is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        # Floats (300.0) and numbers in exponent form ("1e20": YAML reads it as a string) are
        # refused rather than rounded: a count written that way is more likely a mistake.
        raise ConfigError(f"{source}: {where} must be an integer; got {shown(value)}.")
    if expected is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{source}: {where} must be true or false; got {shown(value)}.")
    if expected is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{source}: {where} must be a string; got {shown(value)}.")
    raise ConfigError(f"{source}: {where} has an unsupported type {expected!r}.")


def shown(value: Any) -> str:
    """``repr(value)``, cut short: a hostile value must not turn the one sentence into a page."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}... ({len(text)} characters)"


def _split_list(value: int | str) -> list:
    if isinstance(value, int):
        return [value]
    parts = [p.strip() for p in value.split(",") if p.strip()]
    return [int(p) if p.lstrip("-").isdigit() else p for p in parts]
