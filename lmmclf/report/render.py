"""The report's page, ``index.html``: the describe, methods and leakage sections drawn here, the gallery by its script.

Every number on the page comes from the report document (``report.json``,
:func:`lmmclf.report.summary.report_document`), so the page and the data cannot disagree. All
text from the cache (class names, descriptions, raw answers, error messages) is HTML-escaped.
The page loads only files in its own folder (``report.css``, ``report.js``, ``data/``,
``thumbs/``), so it works from ``file://`` with no network.
"""

from __future__ import annotations

from html import escape
from typing import Any, Callable

FAILURES_SHOWN = 200  # failures listed in full on the page; the gallery's filter shows every one


def _e(value: Any) -> str:
    return escape("" if value is None else str(value))


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f}"


def _bars(counts: dict[str, int], label: str) -> str:
    top = max(counts.values(), default=0) or 1
    cells = "".join(f"<span>{_e(name)}</span><div class='bar' style='width:{100 * count / top:.1f}%'></div>"
                    f"<span class='num'>{count}</span>" for name, count in counts.items())
    return f"<div class='bars' aria-label='{_e(label)}'>{cells}</div>"


def _missing(entries: list[dict[str, Any]]) -> str:
    out = []
    for entry in entries:
        commands = "".join(f"<code>{_e(c)}</code>" for c in entry["commands"])
        out.append(f"<div class='missing' data-section='{_e(entry['section'])}'><b>{_e(entry['section'])}</b>: "
                   f"{_e(entry['reason'])}{' Make it with:' if commands else ''}{commands}</div>")
    return "".join(out)


def _raw(text: str) -> str:
    """A raw answer, folded (it can be long)."""
    return f"<details><summary>raw answer</summary><pre>{_e(text)}</pre></details>" if text else "(no answer)"


def describe_section(describe: dict[str, Any] | None, missing: list[dict[str, Any]]) -> str:
    """The describe section: model, prompt, key, counts, shapes, distributions and failures."""
    if describe is None:
        return "<section id='describe'><h2>Describe</h2>" + _missing([m for m in missing if m["section"] == "describe"]) + "</section>"
    lengths = describe["description_length"]
    failures = describe["failures"]
    listed = "".join(f"<tr><td>{_e(f['id'])}</td><td>{_e(f['error'])}</td><td>{_raw(f['raw'])}</td></tr>" for f in failures[:FAILURES_SHOWN])
    more = (f"<p class='note'>{len(failures) - FAILURES_SHOWN} more failures: the gallery's "
            "<i>failed descriptions only</i> filter shows every one.</p>") if len(failures) > FAILURES_SHOWN else ""
    reasons = "".join(f"<tr><td>{_e(reason)}</td><td class='num'>{count}</td></tr>" for reason, count in describe["failure_reasons"].items())
    return f"""<section id='describe'><h2>Describe</h2>
<table>
<tr><th>model</th><td>{_e(describe['model'])}</td></tr>
<tr><th>backend</th><td>{_e(describe['backend'])}</td></tr>
<tr><th>prompt</th><td><pre>{_e(describe['prompt'])}</pre></td></tr>
<tr><th>key</th><td><code>{_e(describe['key'])}</code></td></tr>
<tr><th>images</th><td class='num' id='describe-images'>{describe['images']}</td></tr>
<tr><th>ok</th><td class='num' id='describe-ok'>{describe['ok']}</td></tr>
<tr><th>failed</th><td class='num' id='describe-failed'>{describe['failed']}</td></tr>
</table>
<h3>Answer shapes</h3>{_bars(describe['shapes'], 'answer shapes')}
<p class='note'>list: a numbered or bulleted list; prose: sentences split into descriptions; single: one caption; cut: text cut at the token limit.</p>
<h3>Descriptions per image</h3>{_bars(describe['descriptions_per_image'], 'descriptions per image')}
<h3>Description length (characters)</h3>
<p class='note'>{lengths['count']} descriptions{'' if lengths['mean'] is None else f", mean {lengths['mean']:.1f}, median {lengths['median']:.0f} characters"}.</p>
{_bars(lengths['histogram'], 'description length')}
<h3>Failures ({describe['failed']})</h3>
{f'<table><tr><th>reason</th><th>images</th></tr>{reasons}</table>' if reasons else '<p>None.</p>'}
{f'<table id="failures"><tr><th>image</th><th>reason</th><th>raw answer</th></tr>{listed}</table>' if listed else ''}{more}
</section>"""


def gallery_section() -> str:
    """The gallery's frame: the filters and an empty grid, filled by ``report.js``."""
    return """<section id='gallery'><h2>Gallery</h2>
<div class='filters'>
<label>class <select id='filter-class'></select></label>
<label>split <select id='filter-split'></select></label>
<label>method <select id='filter-method'></select></label>
<label>predictions <select id='filter-outcome'><option value=''>all</option><option value='right'>right only</option><option value='wrong'>wrong only</option></select></label>
<label><input type='checkbox' id='filter-failed'> failed descriptions only</label>
<label>search <input type='search' id='search' placeholder='words in the descriptions'></label>
</div>
<div class='pager'><b><span id='gallery-count'>…</span> images</b>
<button id='page-prev'>previous</button><span id='page-info'></span><button id='page-next'>next</button></div>
<div id='gallery-grid'></div>
</section>"""


def _heatmap(entry: dict[str, Any], shown: list[int]) -> str:
    labels, matrix = entry["confusion"]["labels"], entry["confusion"]["matrix"]
    head = "".join(f"<th class='col'>{_e(labels[j])}</th>" for j in shown)
    # errors are small shares of a row: their colour is scaled to the largest error share shown, to be seen
    shares = {(i, j): matrix[i][j] / (sum(matrix[i]) or 1) for i in shown for j in shown}
    top_error = max((v for (i, j), v in shares.items() if i != j), default=0) or 1
    rows = []
    for i in shown:
        cells = []
        for j in shown:
            count = matrix[i][j]
            alpha = shares[i, j] if i == j else shares[i, j] / top_error
            colour = f"rgba(26,127,55,{alpha:.3f})" if i == j else f"rgba(198,40,40,{alpha:.3f})"
            cells.append(f"<td style='background:{colour}' title='true {_e(labels[i])}, predicted {_e(labels[j])}: {count}'></td>")
        rows.append(f"<tr><th class='row'>{_e(labels[i])}</th>{''.join(cells)}</tr>")
    return f"<table class='heat'><tr><th>true \\ predicted</th>{head}</tr>{''.join(rows)}</table>"


def methods_section(document: dict[str, Any], shown_classes: Callable[[str], list[int]], example: Callable[[str], str]) -> str:
    """The methods section: eval's accuracy table, per-class accuracy, heatmaps and confused pairs.

    Args:
        document: the report document.
        shown_classes: method name -> the classes its heatmap shows.
        example: item id -> the HTML of one example (thumbnail and descriptions).
    """
    methods = document["methods"]
    missing = [m for m in document["missing"] if m["section"] not in ("describe", "leakage")]
    if not methods:
        return "<section id='methods'><h2>Methods</h2>" + _missing(missing) + "</section>"
    rows = "".join(
        f"<tr data-method='{_e(name)}'><td>{_e(name)}</td><td>{_e(m['label'])}</td><td class='num acc'>{_pct(m['accuracy'])}</td>"
        f"<td class='num'>{_pct(m['std'])}</td><td class='num'>{_e(','.join(map(str, m['seeds'])))}</td><td class='num'>{m['test_items']}</td></tr>"
        for name, m in methods.items())
    classes = document["classes"]
    per_class = "".join(
        f"<tr><td>{_e(c)}</td>" + "".join(f"<td class='num'>{_pct(m['per_class'][c])}</td>" for m in methods.values()) + "</tr>"
        for c in classes)
    heads = "".join(f"<th>{_e(name)}</th>" for name in methods)
    blocks = []
    for index, (name, m) in enumerate(methods.items()):
        shown = shown_classes(name)
        note = "" if len(shown) == len(classes) else f" (the {len(shown)} of {len(classes)} classes with the most errors)"
        pairs = []
        for pair in m["confused_pairs"]:
            examples = "".join(example(item_id) for item_id in pair["examples"])
            pairs.append(f"<h4>{_e(pair['true'])} → predicted {_e(pair['predicted'])}: {pair['count']}</h4><div class='examples'>{examples}</div>")
        blocks.append(f"<details{' open' if index == 0 else ''}><summary><b>{_e(name)}</b>: confusion matrix{note} and most-confused pairs</summary>"
                      f"{_heatmap(m, shown)}<p class='note'>Rows: true class; columns: predicted; green: the share of the class's images predicted right; red: "
                      f"an error's share of the row, scaled to the largest error shown (seeds added up: {_e(','.join(map(str, m['seeds'])))}). Examples are the first seed's ({m['gallery_seed']}).</p>"
                      f"{''.join(pairs) or '<p>No errors.</p>'}</details>")
    return f"""<section id='methods'><h2>Methods</h2>
<p class='note'>Test accuracy (%), the same numbers as <code>lmmclf eval --json</code>: the mean over seeds of the accuracy after the last epoch.</p>
<table id='accuracy'><tr><th>method</th><th>label</th><th>accuracy</th><th>± std</th><th>seeds</th><th>test images</th></tr>{rows}</table>
{_missing(missing)}
<h3>Per-class accuracy (%)</h3>
<table id='per-class'><tr><th>class</th>{heads}</tr>{per_class}</table>
<h3>Confusion</h3>{''.join(blocks)}
</section>"""


def leakage_section(leakage: dict[str, Any] | None, missing: list[dict[str, Any]]) -> str:
    """The label-leakage section and what its numbers mean."""
    if leakage is None:
        return "<section id='leakage'><h2>Label leakage</h2>" + _missing([m for m in missing if m["section"] == "leakage"]) + "</section>"
    per_class = sorted(leakage["per_class"].items(), key=lambda kv: (-(kv[1] if kv[1] is not None else -1), kv[0]))
    rows = "".join(f"<tr><td>{_e(name)}</td><td class='num'>{_pct(value)}</td><td class='num'>{leakage['described_images'][name]}</td></tr>"
                   for name, value in per_class)
    return f"""<section id='leakage'><h2>Label leakage</h2>
<p class='note'>How often the descriptions name the image's own class: a class name is matched as whole words,
case-insensitively, after splitting CamelCase, underscores and dashes ("ApplyEyeMakeup" matches "apply eye makeup"),
with a plural "s" allowed. The name-match classifier gives each test image the class its descriptions name most often
(an image naming none counts as wrong). When these numbers are high, much of the text's signal is the label itself:
a method reading the descriptions then gains by reading the class name, not by what else the LMM saw.</p>
<table><tr><th>described images naming their class</th><td class='num' id='leakage-overall'>{_pct(leakage['overall'])} %</td></tr>
<tr><th>name-match classifier, test accuracy</th><td class='num' id='leakage-name-match'>{_pct(leakage['name_match_accuracy'])} % of {leakage['name_match_test_images']} test images</td></tr></table>
<h3>Per class</h3><table id='leakage-per-class'><tr><th>class</th><th>naming their class (%)</th><th>described images</th></tr>{rows}</table>
</section>"""


def page(document: dict[str, Any], shown_classes: Callable[[str], list[int]], example: Callable[[str], str]) -> str:
    """The whole ``index.html``."""
    missing = document["missing"]
    names = sorted({m["section"] for m in missing})
    top = (f"<div class='missing' id='missing-summary'>Not in this report (the cache does not hold it with these settings): "
           f"{_e(', '.join(names))}. Each section says which command makes it.</div>") if missing else ""
    return f"""<!DOCTYPE html>
<html lang='en'><head><meta charset='utf-8'><meta name='viewport' content='width=device-width, initial-scale=1'>
<title>{_e(document['dataset'])}: lmmclf report</title><link rel='icon' href='data:,'><link rel='stylesheet' href='report.css'>
</head><body>
<header><h1>{_e(document['dataset'])}: {document['images']} images, {len(document['classes'])} classes</h1>
<a href='#describe'>Describe</a><a href='#gallery'>Gallery</a><a href='#methods'>Methods</a><a href='#leakage'>Label leakage</a>
<a href='report.json'>report.json</a></header>
<main>{top}
{describe_section(document['describe'], missing)}
{gallery_section()}
{methods_section(document, shown_classes, example)}
{leakage_section(document['leakage'], missing)}
</main>
<script src='data/items.js' defer></script><script src='report.js' defer></script>
</body></html>
"""
