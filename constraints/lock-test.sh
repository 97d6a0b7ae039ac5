#!/usr/bin/env bash
# Writes constraints/test.txt: every package `.[dev]` needs, pinned at the newest release pyproject's
# ranges allow today, as pip resolves them on this Python and platform (nothing is installed).
# Run it from anywhere, then run the README's test command and commit the file with the result.
set -euo pipefail
cd "$(dirname "$0")/.."
report=$(mktemp)
trap 'rm -f "$report"' EXIT
python -m pip install --dry-run --ignore-installed --quiet --report "$report" -e '.[dev]'
python - "$report" > constraints/test.txt.tmp <<'PY'
import json
import platform
import sys

report = json.load(open(sys.argv[1]))
pins = sorted((item["metadata"]["name"].lower(), item["metadata"]["version"])
              for item in report["install"] if not item.get("is_direct"))  # the project itself is the one direct item
print("# The test environment: every package of .[dev] pinned, for `pip install -c constraints/test.txt -e '.[dev]'`.")
print(f"# Resolved for CPython {platform.python_version()} on {platform.system()} {platform.machine()} by constraints/lock-test.sh;")
print("# another Python may need other pins: run that script there. pyproject.toml keeps the ranges for users.")
print("# torch==X also admits PyTorch's CPU build X+cpu (PEP 440), so the CPU index works with this file too.")
for name, version in pins:
    print(f"{name}=={version}")
PY
mv constraints/test.txt.tmp constraints/test.txt
echo "wrote constraints/test.txt ($(grep -vc '^#' constraints/test.txt) pins)" >&2
