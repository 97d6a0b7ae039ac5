"""Take docs/report.png: the report of a small experiment, in headless system Chromium (not collected by pytest).

Builds the experiment of the report's tests (:mod:`lmmclf.testing.report_experiment`: generated
images, descriptions of which half name their class, the image and concat probes trained by
their own stages), runs ``lmmclf report`` through the real command line, opens the page from
``file://`` with Playwright (``executable_path=/usr/bin/chromium``) and screenshots the gallery
filtered to concat's wrong predictions, then the describe section above it.

    python tests/bench/report_screenshot.py [--out docs/report.png]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("LMMCLF_NO_PROGRESS", "1")

REPO = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "report.png")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="report-shot-"))
    os.environ["LMMCLF_CACHE"] = str(work / "cache")
    os.environ["LMMCLF_CONFIG_DIR"] = str(work / "user-config")

    from lmmclf.store import ArtifactStore
    from lmmclf.testing.report_experiment import make_report_experiment
    from lmmclf.testing.tiny_clip import make_tiny_clip

    store = ArtifactStore(work / "cache")
    experiment = make_report_experiment(work, make_tiny_clip(work / "clip", seed=0), store, failed=[1], n_train=4, n_test=3)
    result = subprocess.run([sys.executable, "-m", "lmmclf", "-q", "-c", str(experiment.config), "report", "--out", str(work / "site")],
                            capture_output=True, text=True, check=True)
    index = Path(result.stdout.strip().splitlines()[-1])

    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1100, "height": 720})
        page.goto(index.as_uri())
        page.wait_for_selector("body[data-ready='1']")
        page.select_option("#filter-method", label="concat")
        page.select_option("#filter-outcome", "wrong")
        page.evaluate("document.getElementById('gallery').scrollIntoView()")
        page.evaluate("window.scrollBy(0, -44)")  # under the sticky header
        args.out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(args.out), type="png")
        browser.close()
    print(f"{args.out}: {args.out.stat().st_size / 1000:.0f} KB")


if __name__ == "__main__":
    main()
