#!/usr/bin/env bash
# Writes constraints/test.txt: every package `.[dev]` needs, pinned at the newest release pyproject's
# ranges allow today, as pip resolves them on this Python and platform (nothing is installed).
# With --lowest it writes constraints/lowest.txt instead: every direct dependency of `.[dev]` pinned at
# its floor in pyproject.toml (the highest `>=` where several lines name it), the packages under them
# at the newest releases those floors allow, wheels only (a floor is a release with a wheel for this Python).
# Run it from anywhere, then run the README's test command (with -c constraints/lowest.txt for
# --lowest, in a fresh venv) and commit the file with the result.
set -euo pipefail
cd "$(dirname "$0")/.."
lock=test
if [[ "${1:-}" == "--lowest" ]]; then
    lock=lowest
elif [[ $# -gt 0 ]]; then
    echo "usage: $0 [--lowest]" >&2
    exit 2
fi
report=$(mktemp)
floors=$(mktemp)
trap 'rm -f "$report" "$floors"' EXIT
if [[ $lock == lowest ]]; then
    python - "$floors" <<'PY'
import re
import sys
import tomllib

project = tomllib.load(open("pyproject.toml", "rb"))["project"]
floors = {}
for requirement in project["dependencies"] + project["optional-dependencies"]["dev"]:
    name = re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")
    floor = re.search(r">=\s*([\w.]+)", requirement)
    if not floor:
        sys.exit(f"pyproject.toml: '{requirement}' has no floor (>=): constraints/lowest.txt cannot pin it")
    version = tuple(int(part) for part in floor.group(1).split("."))
    floors[name] = max(floors.get(name, version), version)
with open(sys.argv[1], "w") as out:
    out.writelines(f"{name}=={'.'.join(map(str, version))}\n" for name, version in sorted(floors.items()))
PY
    python -m pip install --dry-run --ignore-installed --quiet --only-binary :all: --report "$report" -c "$floors" -e '.[dev]'
else
    python -m pip install --dry-run --ignore-installed --quiet --report "$report" -e '.[dev]'
fi
python - "$report" "$lock" > "constraints/$lock.txt.tmp" <<'PY'
import json
import platform
import sys

report, lock = json.load(open(sys.argv[1])), sys.argv[2]
pins = sorted((item["metadata"]["name"].lower(), item["metadata"]["version"])
              for item in report["install"] if not item.get("is_direct"))  # the project itself is the one direct item
if lock == "lowest":
    print("# The oldest supported environment: every direct dependency of .[dev] pinned at its floor in pyproject.toml,")
    print("# the packages under them at the newest releases those floors allow, for `pip install -c constraints/lowest.txt -e '.[dev]'`.")
else:
    print("# The test environment: every package of .[dev] pinned, for `pip install -c constraints/test.txt -e '.[dev]'`.")
print(f"# Resolved for CPython {platform.python_version()} on {platform.system()} {platform.machine()} by constraints/lock-test.sh"
      f"{' --lowest' if lock == 'lowest' else ''};")
print("# another Python may need other pins: run that script there. pyproject.toml keeps the ranges for users.")
print("# torch==X also admits PyTorch's CPU build X+cpu (PEP 440), so the CPU index works with this file too.")
for name, version in pins:
    print(f"{name}=={version}")
PY
mv "constraints/$lock.txt.tmp" "constraints/$lock.txt"
echo "wrote constraints/$lock.txt ($(grep -vc '^#' "constraints/$lock.txt") pins)" >&2
