"""``lmmclf report``'s page in a real browser: headless Chromium from the system, driven by Playwright.

The page is opened from ``file://``: it must load with no console error and no request outside
its folder, show every image, and its filters must narrow the gallery to exactly the images
they name (the wrong-only filter of a method: exactly that method's wrong test predictions, as
its artifact stores them). Skipped only where the system Chromium or Playwright is absent.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None

pytestmark = [
    pytest.mark.skipif(sync_playwright is None, reason="Playwright for Python is not installed (python -m pip install playwright)"),
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no system Chromium at {CHROMIUM} (apt-get install chromium)"),
]


@pytest.fixture
def site(tmp_path, tiny_clip, store, runner):
    """A report of 20 images (one failed description) with the image and concat probes trained."""
    from lmmclf.cli.app import app
    from lmmclf.testing.report_experiment import make_report_experiment

    experiment = make_report_experiment(tmp_path, tiny_clip, store, failed=[1, 6])
    out = tmp_path / "site"
    result = runner.invoke(app, ["-c", str(experiment.config), "report", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return experiment, Path(result.stdout.strip().splitlines()[-1]), json.loads((out / "report.json").read_text())


@pytest.fixture
def browser():
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        yield launched
        launched.close()


def _open(browser, index: Path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    folder = index.parent.as_uri()
    page.on("request", lambda request: None if request.url.startswith((folder, "data:")) else problems.append(f"request {request.url}"))
    page.goto(index.as_uri())
    page.wait_for_selector("body[data-ready='1']")
    return page, problems


def _shown(page) -> tuple[int, set[str]]:
    count = int(page.text_content("#gallery-count"))
    return count, set(page.eval_on_selector_all(".card", "cards => cards.map(c => c.dataset.id)"))


def test_the_page_loads_from_disk_and_its_filters_narrow_the_gallery(site, browser, store):
    from lmmclf.evaluation.methods import resolve_methods
    from lmmclf.results import read_runs

    experiment, index, document = site
    page, problems = _open(browser, index)
    items = experiment.dataset.items
    assert _shown(page) == (20, {item.id for item in items})  # 20 fit on the first page
    assert page.text_content("#describe-failed").strip() == "2"

    page.select_option("#filter-class", label="Jumping_Jack")
    count, ids = _shown(page)
    assert count == 5 and ids == {item.id for item in items if experiment.dataset.class_names[item.label] == "Jumping_Jack"}
    page.select_option("#filter-split", "test")
    assert _shown(page)[0] == 2
    page.select_option("#filter-class", "")
    page.select_option("#filter-split", "")

    page.fill("#search", "jumping jacks")
    page.wait_for_function("document.getElementById('gallery-count').textContent !== '20'")
    expected = {item_id for item_id, texts in experiment.texts.items() if any("jumping jacks" in t for t in texts)}
    assert 0 < len(expected) < 20 and _shown(page) == (len(expected), expected)
    page.fill("#search", "")
    page.wait_for_function("document.getElementById('gallery-count').textContent === '20'")

    # the wrong-only filter of concat: exactly the wrong test predictions its artifact stores (the first seed)
    (concat,) = resolve_methods(["concat"])
    (spec,) = concat.specs(experiment.cfg, experiment.dataset, store)
    with store.open(spec.stage, spec.key) as handle:
        run = read_runs(handle)[0]
    wrong = {i for i, p, t in zip(run.test_ids, run.test_predictions, run.test_labels) if p != t}
    page.select_option("#filter-method", label="concat")
    page.select_option("#filter-outcome", "wrong")
    assert _shown(page) == (len(wrong), wrong)
    assert len(wrong) == round((1 - document["methods"]["concat"]["accuracy"]) * 8)
    page.select_option("#filter-outcome", "right")
    assert _shown(page)[1] == set(run.test_ids) - wrong
    page.select_option("#filter-outcome", "")

    page.check("#filter-failed")
    assert _shown(page) == (2, set(experiment.failed))
    assert problems == []


def test_a_raw_answer_is_read_on_demand(site, browser):
    experiment, index, _ = site
    page, problems = _open(browser, index)
    first = experiment.dataset.items[0]
    card = page.locator(f".card[data-id='{first.id}']")
    card.locator("button").click()
    page.wait_for_function("document.querySelector('.card pre') && !document.querySelector('.card pre').hidden")
    assert card.locator("pre").text_content() == "\n".join(f"{i + 1}. {t}" for i, t in enumerate(experiment.texts[first.id]))
    assert problems == []
