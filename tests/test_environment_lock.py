"""The test environment is locked: CI runs the README's test command, and the lock pins every dependency of .[dev]."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pins(path: Path) -> dict[str, str]:
    lines = [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    return {_name(line): line.split("==", 1)[1] for line in lines}


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    command = re.search(r"^(python -m pip install -c constraints/test\.txt .*pytest.*)$", readme, re.M)
    assert command, "the README's test command installs with constraints/test.txt"
    assert command.group(1) in (ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize("lock", ["test.txt", "lowest.txt"])
def test_every_dependency_of_dev_is_pinned_exactly(lock):
    path = ROOT / "constraints" / lock
    if not path.exists():
        pytest.skip(f"constraints/{lock} is not there")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    pins = _pins(path)
    assert not wanted - set(pins), f"constraints/{lock} lacks pins for {sorted(wanted - set(pins))}: regenerate it"
    assert all(re.fullmatch(r"[\w.+!-]+", version) for version in pins.values())


def _release(version: str) -> tuple[int, ...]:
    """``2.6`` and ``2.6.0`` are one release: trailing zeros dropped."""
    parts = [int(part) for part in version.split("+")[0].split(".")]
    while parts and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def test_lowest_pins_each_direct_dependency_at_its_floor():
    """lowest.txt checks the floors pyproject declares: a floor raised or lowered without it is caught here."""
    path = ROOT / "constraints" / "lowest.txt"
    if not path.exists():
        pytest.skip("constraints/lowest.txt is not there")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    floors: dict[str, tuple[int, ...]] = {}
    for requirement in project["dependencies"] + project["optional-dependencies"]["dev"]:
        floor = re.search(r">=\s*([\w.]+)", requirement)
        assert floor, f"pyproject.toml: '{requirement}' has no floor (>=)"
        name = _name(requirement)
        floors[name] = max(floors.get(name, ()), _release(floor.group(1)))  # the highest where several lines name it
    pins = _pins(path)
    wrong = {name: pins.get(name) for name, floor in floors.items() if _release(pins.get(name, "0")) != floor}
    assert not wrong, f"constraints/lowest.txt does not pin these at pyproject's floors: {wrong}; run constraints/lock-test.sh --lowest"
