"""Reading a YAML file that a person wrote (the experiment config, the dataset registry), bounded.

A file we parse is trusted with nothing: :func:`read_yaml_file` refuses, in one sentence naming
the file, what is too large, not UTF-8, not YAML, or would exhaust memory or the stack once
walked (alias bombs, deep nesting). Whoever reads the data checks its meaning (``lmmclf.config``,
``lmmclf.datasets.registry``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from lmmclf.errors import LmmclfError

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
        raise error(f"{what} {path} is not valid YAML ({yaml_problem(exc)}).") from None
    except (ValueError, OverflowError) as exc:  # e.g. a date 2021-13-45, an integer of 5000 digits
        reason = str(exc).split(":")[0]  # Python's own text goes on with advice meant for programmers
        raise error(f"{what} {path} holds a value YAML cannot read ({reason}).") from None


def yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's multi-line message as one clause: the problem and where it is."""
    problem = getattr(exc, "problem", None) or getattr(exc, "context", None)
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if problem and mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(str(exc).split())

