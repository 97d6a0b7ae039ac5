"""The house (issue 21, item 5): no import runs back up the layers and no two modules import each other.

Every module under ``lmmclf/`` is parsed with ``ast``; every import counts, at module level, inside
a function or under ``if TYPE_CHECKING:``, because a deferred import is still a dependency. The
layers are the table below, the same as docs/architecture.md ("Layers"): a module may import its
own layer and the layers before it. A table that names a module above it by a string resolved
at call time (``stages.STAGES``, ``evaluation.methods.EXTENSIONS``) is not an import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lmmclf"

# Lowest first. A name stands for the module and, if it is a package, everything in it;
# "lmmclf" is the package's own __init__ (the facade: lmmclf.__version__, lmmclf.load_classifier).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("lmmclf.errors", "lmmclf.hashing", "lmmclf.console", "lmmclf.library_logs", "lmmclf.version",
                    "lmmclf.image_read")),
    ("settings and records", ("lmmclf.config_yaml", "lmmclf.config_checks", "lmmclf.config", "lmmclf.config_sets",
                              "lmmclf.filehash", "lmmclf.devices", "lmmclf.journal", "lmmclf.results")),
    ("stage table and store", ("lmmclf.stages", "lmmclf.keyspec", "lmmclf.missing", "lmmclf.artifact_meta",
                               "lmmclf.store_files", "lmmclf.store_listing", "lmmclf.store", "lmmclf.missing_inputs",
                               "lmmclf.cache_gc", "lmmclf.disk_space")),
    ("models", ("lmmclf.models", "lmmclf.clip")),
    ("datasets", ("lmmclf.datasets", "lmmclf.per_image")),
    ("describe", ("lmmclf.describe",)),
    ("embed", ("lmmclf.embed",)),
    ("features", ("lmmclf.features", "lmmclf.zeroshot", "lmmclf.prototypes")),
    ("heads and evaluation", ("lmmclf.probe", "lmmclf.finetune", "lmmclf.evaluation")),
    ("prediction", ("lmmclf.predict",)),
    ("report", ("lmmclf.report",)),
    ("testing", ("lmmclf.testing",)),
    ("demo", ("lmmclf.demo",)),
    ("command line", ("lmmclf.cli", "lmmclf.__main__", "lmmclf")),
]
# what the library (every layer up to prediction) never imports
NOT_LIBRARY = ("lmmclf.testing", "lmmclf.demo", "lmmclf.cli", "lmmclf.__main__")


def _module_names(root: Path = PACKAGE) -> dict[str, Path]:
    names = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _imports(module: str, path: Path, known: dict[str, Path]) -> list[tuple[str, int]]:
    """The lmmclf modules that ``module`` imports anywhere in its source, with the line of each import."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            # ``from lmmclf import stages`` imports the module lmmclf.stages, not the package facade
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # lmmclf.datasets.base.Item -> lmmclf.datasets.base
                target = target.rpartition(".")[0]
            if target.startswith("lmmclf") and target != module and (target, node.lineno) not in found:
                found.append((target, node.lineno))
    return found


def _graph(root: Path = PACKAGE) -> dict[str, list[tuple[str, int]]]:
    known = _module_names(root)
    return {module: _imports(module, path, known) for module, path in known.items()}


def _layer(module: str) -> int | None:
    best, level = -1, None
    for index, (_, names) in enumerate(LAYERS):
        for name in names:
            matches = module == name or (name != "lmmclf" and module.startswith(name + "."))
            if matches and len(name) > best:
                best, level = len(name), index
    return level


def _cycle(graph: dict[str, list[tuple[str, int]]]) -> list[str] | None:
    """One cycle of the import graph (``[a, b, ..., a]``), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(graph):
        if state.get(start):
            continue
        path, stack = [start], [iter(sorted({t for t, _ in graph[start]}))]
        state[start] = 1
        while stack:
            step = next(stack[-1], None)
            if step is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(step) == 1:
                return path[path.index(step):] + [step]
            elif not state.get(step):
                state[step] = 1
                path.append(step)
                stack.append(iter(sorted({t for t, _ in graph.get(step, [])})))
    return None


@pytest.fixture(scope="module")
def graph():
    return _graph()


def test_every_module_has_a_layer(graph):
    unplaced = [module for module in graph if _layer(module) is None]
    assert not unplaced, f"{unplaced}: add them to LAYERS here and to docs/architecture.md (Layers)"
    stale = [name for _, names in LAYERS for name in names if name not in graph]
    assert not stale, f"{stale}: in LAYERS but not modules under lmmclf/"


def test_the_library_never_imports_the_command_line_or_testing(graph):
    library = [name for name, _ in LAYERS].index("testing")  # every layer below it is the library
    wrong = [f"{module}:{line} imports {target}" for module, edges in graph.items()
             if (_layer(module) or 0) < library for target, line in edges
             if any(target == name or target.startswith(name + ".") for name in NOT_LIBRARY)]
    assert not wrong, "\n".join(wrong)


def test_no_import_runs_up_the_layers(graph):
    upward = [f"{module}:{line} ({LAYERS[_layer(module)][0]}) imports {target} ({LAYERS[_layer(target)][0]})"
              for module, edges in graph.items() for target, line in edges
              if _layer(module) is not None and _layer(target) is not None and _layer(target) > _layer(module)]
    assert not upward, "\n".join(upward)


def test_no_two_modules_import_each_other(graph):
    cycle = _cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_checks_see_what_they_check(tmp_path):
    """The parser follows deferred, relative and TYPE_CHECKING imports, and finds a cycle and an upward import."""
    package = tmp_path / "lmmclf"
    (package / "cli").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "cli" / "__init__.py").write_text("")
    (package / "cli" / "common.py").write_text("X = 1\n")
    (package / "store.py").write_text("def f():\n    from lmmclf.missing import m\n")
    (package / "missing.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .store import f\n")
    (package / "predict.py").write_text("def g():\n    from lmmclf.cli import common\n")
    found = _graph(package)
    assert found["lmmclf.store"] == [("lmmclf.missing", 2)]
    assert found["lmmclf.missing"] == [("lmmclf.store", 3)]
    assert found["lmmclf.predict"] == [("lmmclf.cli.common", 2)]
    assert _cycle(found) in (["lmmclf.missing", "lmmclf.store", "lmmclf.missing"], ["lmmclf.store", "lmmclf.missing", "lmmclf.store"])
    assert _layer("lmmclf.cli.common") > _layer("lmmclf.predict") > _layer("lmmclf.store")
    assert _layer("lmmclf.datasets.frames") == _layer("lmmclf.datasets") and _layer("lmmclf") == len(LAYERS) - 1
