"""The live dashboard page (``/debug/dashboard``): the process's metrics drawn as charts.

Pure functions of the metric families (no I/O, no Trio). The page is one self-contained
document: inline CSS and inline SVG, no script, nothing loaded from anywhere (the
server's Content-Security-Policy forbids it too); it reloads itself every few seconds.
Histograms are drawn as bars per bucket with their p50/p95/p99, counters and gauges as one
bar per attribute set. Every string from a metric goes through ``html.escape``.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from actors.telemetry import Family, HistogramPoint, Point

#: The page reloads itself this often unless ``?refresh=`` says otherwise.
DEFAULT_REFRESH_S = 5
#: Metrics drawn first, in this order (the roadmap's figures); the rest follow by name.
FEATURED = (
    "zl.turn.time_to_first_token",
    "zl.turn.phase.duration",
    "zl.tool.calls",
    "zl.tool.call.duration",
    "host_to_device_rtt_ms",
    "zl.tokens",
    "zl.sessions.active",
    "zl.errors",
    "gen_ai.client.operation.time_to_first_chunk",
    "zl.relay.queue.depth",
    "zl.relay.calls.in_flight",
    "zl.actor.mailbox.depth",
    "zl.provider.breaker.state",
    "zl.audit.records",
    "zl.audit.export.pending",
)
_WIDTH = 460
_BAR_AREA = 150
#: Longest bar label drawn (the tooltip has all of it).
_LABEL_CHARS = 22
_ROW = 18

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #1b1b1b; background: #fff; }
h1 { font-size: 1.3em; margin: 0 0 .3em; }
p.summary { margin: 0 0 1em; color: #444; }
main { display: flex; flex-wrap: wrap; gap: 1em; }
figure.chart { margin: 0; padding: .6em .8em; border: 1px solid #e3e3e3; border-radius: 6px;
               width: 480px; }
figcaption { font-weight: 600; margin-bottom: .2em; }
figcaption span.name { font: 12px ui-monospace, monospace; color: #666; font-weight: normal; }
p.figures { margin: .1em 0 .4em; font-variant-numeric: tabular-nums; color: #333; }
p.empty { color: #888; }
svg text { font: 11px ui-monospace, monospace; fill: #333; }
rect.bar { fill: #3b7dd8; }
rect.bar.zero { fill: #d9e4f5; }
"""


def _label_text(labels: Sequence[tuple[str, str]]) -> str:
    return ", ".join(f"{key}={value}" for key, value in labels) or "(all)"


def _short(labels: Sequence[tuple[str, str]]) -> str:
    text = ", ".join(value for _, value in labels) or "(all)"
    return text if len(text) <= _LABEL_CHARS else text[: _LABEL_CHARS - 1] + "…"


def _number(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def _bars(rows: Sequence[tuple[str, str, float]], unit: str) -> str:
    """A horizontal bar chart: one labelled bar per row (short label, full label, value)."""
    peak = max((value for _, _, value in rows), default=0.0) or 1.0
    height = _ROW * len(rows) + 4
    parts = [f'<svg width="{_WIDTH}" height="{height}" viewBox="0 0 {_WIDTH} {height}" role="img">']
    for index, (short, label, value) in enumerate(rows):
        y = index * _ROW + 2
        width = max(1.0, (_WIDTH - _BAR_AREA - 70) * value / peak)
        zero = " zero" if value == 0 else ""
        text = html.escape(label)
        parts.append(
            f'<text x="{_BAR_AREA - 6}" y="{y + 12}" text-anchor="end">{html.escape(short)}</text>'
            f'<rect class="bar{zero}" x="{_BAR_AREA}" y="{y}" width="{width:.1f}" height="14"'
            f' data-value="{value:g}"><title>{text}: {_number(value)} {html.escape(unit)}'
            f"</title></rect>"
            f'<text x="{_BAR_AREA + width + 4:.1f}" y="{y + 12}">{_number(value)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _histogram(point: HistogramPoint, unit: str) -> str:
    quantiles = [(q, point.quantile(q)) for q in (0.5, 0.95, 0.99)]
    figures = " · ".join(
        f"p{round(q * 100)} {_number(v)} {html.escape(unit)}" for q, v in quantiles if v is not None
    )
    mean = point.sum / point.count if point.count else 0.0
    head = (
        f'<p class="figures" data-count="{point.count}">{html.escape(_label_text(point.labels))}:'
        f" {point.count} samples, mean {_number(mean)} {html.escape(unit)}; {figures}</p>"
    )
    rows = []
    lower = "0"
    for index, count in enumerate(point.bucket_counts):
        if index < len(point.bounds):
            upper = _number(point.bounds[index])
            rows.append((f"≤ {upper}", f"≤ {upper}", float(count)))
            lower = upper
        else:
            rows.append((f"> {lower}", f"> {lower}", float(count)))
    # Only the range that holds samples (and one empty bucket either side) is drawn.
    used = [i for i, (_, _, count) in enumerate(rows) if count]
    if used:
        rows = rows[max(0, used[0] - 1) : used[-1] + 2]
    return head + _bars(rows, "samples")


def _points(points: Sequence[Point], unit: str) -> str:
    rows = [(_short(p.labels), _label_text(p.labels), p.value) for p in points]
    total = sum(value for _, _, value in rows)
    head = f'<p class="figures" data-count="{len(rows)}">total {_number(total)}</p>'
    return head + _bars(rows, unit)


def _figure(family: Family) -> str:
    caption = (
        f"<figcaption>{html.escape(family.description or family.name)}<br>"
        f'<span class="name">{html.escape(family.prometheus)} ({family.kind})</span>'
        "</figcaption>"
    )
    if family.kind == "histogram":
        body = "".join(_histogram(p, family.unit) for p in family.histograms if p.count)
    else:
        body = _points(family.points, family.unit) if family.points else ""
    if not body:
        body = '<p class="empty">no samples yet</p>'
    return (
        f'<figure class="chart" data-metric="{html.escape(family.name)}" '
        f'data-kind="{family.kind}">{caption}{body}</figure>'
    )


def render_dashboard(found: Sequence[Family], *, title: str, refresh_s: int | None) -> str:
    """The dashboard page for ``found``; it reloads itself every ``refresh_s`` seconds."""
    order = {name: index for index, name in enumerate(FEATURED)}
    ranked = sorted(found, key=lambda f: (order.get(f.name, len(order)), f.name))
    refresh = DEFAULT_REFRESH_S if refresh_s is None else refresh_s
    figures = "".join(_figure(family) for family in ranked)
    if not figures:
        figures = '<p class="empty">telemetry.prometheus is off: no metrics are kept here</p>'
    return (
        "<!doctype html>"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="{refresh}">'
        f"<title>{html.escape(title)} dashboard</title><style>{_STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}: live metrics</h1>"
        f'<p class="summary">{len(ranked)} metrics; reloads every {refresh} s. '
        "Latencies in milliseconds unless named otherwise.</p>"
        f"<main>{figures}</main></body></html>"
    )
