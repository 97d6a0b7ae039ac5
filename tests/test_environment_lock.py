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
