"""The report's style sheet, written beside index.html as ``report.css`` (no fonts or files from elsewhere)."""

CSS = """
:root { --ok: #1a7f37; --bad: #c62828; --muted: #666; --line: #ddd; --bg: #fafafa; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #222; background: #fff; }
header { position: sticky; top: 0; z-index: 5; background: #24292f; color: #fff; padding: 8px 16px; display: flex; gap: 18px; align-items: baseline; flex-wrap: wrap; }
header h1 { font-size: 16px; margin: 0; }
header a { color: #cfe3ff; text-decoration: none; }
main { padding: 8px 16px 40px; max-width: 1400px; }
section { margin: 18px 0 28px; scroll-margin-top: 48px; }
h2 { border-bottom: 2px solid #24292f; padding-bottom: 3px; }
h3 { margin: 18px 0 6px; }
table { border-collapse: collapse; margin: 6px 0; }
th, td { border: 1px solid var(--line); padding: 3px 7px; text-align: left; vertical-align: top; }
th { background: var(--bg); }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; }
pre { white-space: pre-wrap; word-break: break-word; background: var(--bg); border: 1px solid var(--line); padding: 6px; margin: 4px 0; max-height: 300px; overflow: auto; }
.missing { border-left: 4px solid #d4a72c; background: #fff8e1; padding: 6px 10px; margin: 8px 0; }
.missing code { display: block; margin: 3px 0; user-select: all; }
.note { color: var(--muted); max-width: 900px; }
.bars { display: grid; grid-template-columns: max-content 1fr max-content; gap: 2px 8px; max-width: 640px; align-items: center; }
.bar { background: #4a78c2; height: 12px; min-width: 1px; }
.right { color: var(--ok); } .wrong { color: var(--bad); }
.heat td { width: 22px; height: 22px; padding: 0; border: 1px solid #eee; }
.heat th.col { writing-mode: vertical-rl; transform: rotate(180deg); white-space: nowrap; font-weight: normal; padding: 4px 1px; }
.heat th.row { white-space: nowrap; font-weight: normal; }
.filters { display: flex; flex-wrap: wrap; gap: 10px 16px; align-items: center; padding: 8px; background: var(--bg); border: 1px solid var(--line); }
.filters label { display: flex; gap: 5px; align-items: center; }
#gallery-grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(250px, 1fr)); gap: 10px; margin-top: 10px; }
.card { border: 1px solid var(--line); border-radius: 4px; padding: 6px; background: #fff; }
.card img, .example img { max-width: 160px; max-height: 160px; display: block; margin: 0 auto 4px; background: #eee; }
.card .meta { font-weight: 600; }
.card .split { color: var(--muted); font-weight: normal; overflow-wrap: anywhere; }
.card ol { margin: 4px 0; padding-left: 20px; }
.card .failed { color: var(--bad); }
.card .preds { margin: 3px 0; font-size: 12.5px; }
.card button { font-size: 12px; }
.pager { display: flex; gap: 10px; align-items: center; margin: 10px 0; }
.examples { display: flex; flex-wrap: wrap; gap: 8px; }
.example { width: 240px; border: 1px solid var(--line); padding: 4px; font-size: 12.5px; }
.example ul { margin: 2px 0; padding-left: 16px; }
"""
