"""The readiness report as one self-contained HTML page (`--html FILE.html`).

No external assets: styles are inline, the timeline is drawn with plain HTML boxes, and nothing
is fetched, so the page opens offline and can be attached to a change ticket. Every value is
escaped. Sections: the verdict, the checklist, the per-phase timeline with items per second,
and the counts.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime

from dynashift.readiness import PhaseTiming, ReadinessReport

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2rem;
       color: #1d2330; background: #fff; max-width: 60rem; }
h1 { font-size: 1.4rem; margin-bottom: .2rem; }
h2 { font-size: 1.1rem; margin-top: 2rem; border-bottom: 1px solid #dde; padding-bottom: .3rem; }
.sub { color: #5a6275; margin-top: 0; }
.verdict { display: inline-block; font-size: 2rem; font-weight: 700; padding: .4rem 1.2rem;
           border-radius: .4rem; margin: 1rem 0 .4rem; }
.verdict.ready { background: #e3f6e8; color: #11652f; border: 2px solid #2e9e55; }
.sampled { font-weight: 600; color: #7a4b00; }
.verdict.not-ready { background: #fde8e8; color: #9b1c1c; border: 2px solid #d64545; }
.reasons { color: #9b1c1c; margin: .2rem 0 1rem; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid #eef; }
th { background: #f5f6fa; font-weight: 600; }
td.mark { width: 4.5rem; font-weight: 700; }
.ok { color: #11652f; } .fail { color: #9b1c1c; } .info { color: #5a6275; }
.bar-row { display: flex; align-items: center; margin: .25rem 0; }
.bar-label { width: 12rem; flex: none; }
.bar-track { position: relative; flex: 1; height: 1.1rem; background: #f1f2f7;
             border-radius: .2rem; }
.bar { position: absolute; top: 0; height: 100%; background: #4a78d0; border-radius: .2rem;
       min-width: 2px; }
.bar-text { width: 18rem; flex: none; padding-left: .6rem; color: #5a6275;
            font-variant-numeric: tabular-nums; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
footer { margin-top: 2rem; color: #8a91a3; font-size: .85rem; }
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _time(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def _checklist(report: ReadinessReport) -> str:
    rows = []
    for check in report.checks:
        if check.ok:
            mark, cls = "OK", "ok"
        elif check.required:
            mark, cls = "FAIL", "fail"
        else:
            mark, cls = "info", "info"
        rows.append(
            f'<tr class="{cls}"><td class="mark {cls}">{mark}</td>'
            f"<td>{_e(check.name)}</td><td>{_e(check.detail)}</td></tr>"
        )
    return (
        '<table id="checklist"><thead><tr><th></th><th>Check</th><th>Detail</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _timeline(phases: list[PhaseTiming]) -> str:
    timed = [p for p in phases if p.started is not None]
    if not timed:
        return '<p class="info">No phase timings were recorded.</p>'
    start = min(p.started for p in timed if p.started is not None)
    end = max((p.ended or p.started or start) for p in timed)
    span = max(end - start, 1e-6)
    rows = []
    for p in phases:
        if p.started is None:
            left, width = 0.0, 0.0
        else:
            left = (p.started - start) / span * 100
            width = ((p.ended or p.started) - p.started) / span * 100
        rate = p.items_per_second
        text = _duration(p.seconds)
        if p.items:
            text += f" · {p.items:,} items"
        if rate is not None:
            text += f" · {rate:,.0f} items/s"
        rows.append(
            '<div class="bar-row">'
            f'<div class="bar-label">{_e(p.name)}</div>'
            f'<div class="bar-track"><div class="bar" style="left:{left:.2f}%;'
            f'width:{width:.2f}%"></div></div>'
            f'<div class="bar-text">{_e(text)}</div></div>'
        )
    table_rows = "".join(
        f"<tr><td>{_e(p.name)}</td><td>{_e(_time(p.started))}</td>"
        f'<td>{_e(_time(p.ended))}</td><td class="num">{_e(_duration(p.seconds))}</td>'
        f'<td class="num">{p.items:,}</td><td class="num">'
        f"{'-' if p.items_per_second is None else f'{p.items_per_second:,.0f}'}</td></tr>"
        for p in phases
    )
    return (
        f'<div id="timeline">{"".join(rows)}</div>'
        '<table id="phases"><thead><tr><th>Phase</th><th>Started</th><th>Ended</th>'
        "<th>Duration</th><th>Items</th><th>Items/s</th></tr></thead>"
        f"<tbody>{table_rows}</tbody></table>"
    )


_COUNT_LABELS = {
    "source_items": "Source items (verification scan)",
    "target_items": "Target items (verification scan)",
    "suspects": "Suspects found by the first pass",
    "divergent": "Divergent after recheck",
    "unsettled": "Unsettled (kept changing)",
    "unchecked": "Suspects not rechecked",
    "repaired": "Repaired",
    "expired": "Expired by TTL in one table (not divergent)",
    "sampled_segments": "Key-space segments verified (sample)",
    "key_space_segments": "Key-space segments in all",
    "divergence_bound": "Bound: fewer divergent partition keys than",
}


def _counts(report: ReadinessReport) -> str:
    if not report.counts:
        return '<p class="info">No verification counts.</p>'
    rows = "".join(
        f'<tr><td>{_e(_COUNT_LABELS.get(k, k))}</td><td class="num">{v:,}</td></tr>'
        for k, v in report.counts.items()
    )
    return f'<table id="counts"><tbody>{rows}</tbody></table>'


def render_html(report: ReadinessReport) -> str:
    """The whole page as one string."""
    ready = report.ready
    verdict_cls = "ready" if ready else "not-ready"
    reasons = ""
    if not ready:
        items = "".join(f"<li>{_e(c.name)}: {_e(c.detail)}</li>" for c in report.failing())
        reasons = f'<ul class="reasons">{items}</ul>'
    title = f"dynashift {report.migration_id}: {report.verdict}"
    sample = report.sample
    sampled = (
        f'<p id="sample" class="sampled">Sampled verification (a random sample of the key '
        f"space, not a full comparison): {_e(sample.line(0))}.</p>"
        if sample is not None and ready
        else ""
    )
    meaning = (
        "READY (SAMPLED) means: every check below holds, the verification being a random "
        "sample of the key space; it bounds, with the stated confidence, the number of "
        "divergent partition keys."
        if sample is not None
        else "READY means: zero divergent items after the recheck, replication lag under the "
        "threshold, backfill complete, target settings equal to the source's, and a healthy "
        "replicator."
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<h1>Migration {_e(report.migration_id)}</h1>
<p class="sub">{_e(report.source)} &rarr; {_e(report.target)} &middot; report of
{_e(_time(report.generated_at))}</p>
<div id="verdict" class="verdict {verdict_cls}">{_e(report.verdict)}</div>
{sampled}{reasons}
<h2>Readiness checklist</h2>
{_checklist(report)}
<h2>Timeline</h2>
{_timeline(report.phases)}
<h2>Counts</h2>
{_counts(report)}
<footer>Generated by dynashift. {_e(meaning)}</footer>
</body>
</html>
"""


def write_html(path: str, report: ReadinessReport) -> None:
    """`--html FILE.html`."""
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(render_html(report))
