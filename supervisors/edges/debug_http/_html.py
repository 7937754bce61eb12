"""The debug endpoint's HTML page: the actor tree as one self-contained, escaped table.

Pure functions of a snapshot (no I/O, no Trio), so they are tested without a server.
Every string that comes from the tree (names, types, failure messages) goes through
``html.escape``; the page loads nothing from anywhere (inline CSS, no scripts, no images),
which the server's Content-Security-Policy also enforces.
"""

from __future__ import annotations

import collections
import datetime as dt
import html

from zl_actors import ActorSnapshot

#: States drawn as trouble: a failed node in red, a restarting one in yellow.
FAILED_STATES = frozenset({"failed"})
RESTARTING_STATES = frozenset({"restarting"})
#: A mailbox this full (fraction of capacity) is drawn as under pressure.
MAILBOX_PRESSURE_FRACTION = 0.8

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #1b1b1b; background: #fff; }
h1 { font-size: 1.3em; margin: 0 0 .3em; }
h2 { font-size: 1.1em; margin: 1.5em 0 .3em; }
p.summary { margin: 0 0 1em; color: #444; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .25em .6em; border-bottom: 1px solid #e3e3e3;
         vertical-align: top; }
th { background: #f4f4f4; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.name { font-family: ui-monospace, monospace; white-space: pre; }
tr.failed { background: #fde2e1; }
tr.failed td.state { color: #a40e0e; font-weight: bold; }
tr.restarting { background: #fff5cc; }
tr.restarting td.state { color: #8a6100; font-weight: bold; }
td.pressure { color: #a40e0e; font-weight: bold; }
td.failure { color: #a40e0e; }
span.kind { color: #666; }
"""


def format_duration(seconds: float) -> str:
    """A duration for people: ``12.3s``, ``4m 05s``, ``2h 03m``, ``3d 04h``."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"


def row_class(node: ActorSnapshot) -> str:
    """The CSS class that highlights a node in trouble ('' when it is fine)."""
    if node.state in FAILED_STATES:
        return "failed"
    if node.state in RESTARTING_STATES:
        return "restarting"
    return ""


def _row(node: ActorSnapshot, prefix: str) -> str:
    esc = html.escape
    mailbox = "—"
    pressure = False
    if node.kind == "actor":
        mailbox = f"{node.mailbox.depth}/{node.mailbox.capacity}"
        pressure = node.mailbox.depth >= MAILBOX_PRESSURE_FRACTION * node.mailbox.capacity > 0
    failure = ""
    if node.last_failure is not None:
        failure = (
            f"{node.last_failure.type}: {node.last_failure.message} "
            f"({format_duration(node.last_failure.seconds_ago)} ago)"
        )
    css = row_class(node)
    return (
        f'<tr{f" class={css!r}" if css else ""} title="{esc(node.path)}">'
        f'<td class="name">{esc(prefix)}{esc(node.name)}</td>'
        f'<td><span class="kind">{esc(node.kind)}</span> {esc(node.actor_type)}</td>'
        f'<td class="state">{esc(node.state)}</td>'
        f'<td class="num{" pressure" if pressure else ""}">{esc(mailbox)}</td>'
        f'<td class="num">{node.restarts}</td>'
        f'<td class="num">{esc(format_duration(node.uptime_s))}</td>'
        f'<td class="failure">{esc(failure)}</td>'
        "</tr>"
    )


def _rows(root: ActorSnapshot) -> list[str]:
    rows: list[str] = []

    # The same drawing as ``render_tree``: the first column reads as the tree.
    def visit(node: ActorSnapshot, prefix: str, last: bool, top: bool) -> None:
        branch = "" if top else ("└─ " if last else "├─ ")
        rows.append(_row(node, prefix + branch))
        child_prefix = prefix if top else prefix + ("   " if last else "│  ")
        for index, child in enumerate(node.children):
            visit(child, child_prefix, index == len(node.children) - 1, False)

    visit(root, "", True, True)
    return rows


def render_html(
    root: ActorSnapshot,
    *,
    refresh_s: int | None = None,
    now: dt.datetime | None = None,
    label: str = "",
) -> str:
    """The whole page for ``GET /debug/actors``.

    Args:
        root: the tree to draw (``system.snapshot()``).
        refresh_s: when given, the page reloads itself every ``refresh_s`` seconds.
        now: the time printed as "taken at" (the current UTC time when None).
        label: which process this is ("relay shard relay-2"), in the title.

    Returns:
        A complete HTML5 document with every tree-provided string escaped.
    """
    taken = (now or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%d %H:%M:%S UTC")
    nodes = root.walk()
    states = collections.Counter(node.state for node in nodes)
    summary = ", ".join(f"{count} {html.escape(state)}" for state, count in sorted(states.items()))
    refresh = (
        f'<meta http-equiv="refresh" content="{int(refresh_s)}">' if refresh_s is not None else ""
    )
    title = html.escape(f"actors of {root.name}" + (f" ({label})" if label else ""))
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"{refresh}<title>{title}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{title}</h1>"
        f'<p class="summary">{len(nodes)} nodes: {summary}. Taken at {taken}. '
        '<a href="?format=json">JSON</a></p>'
        "<table><thead><tr><th>name</th><th>kind / type</th><th>state</th>"
        "<th>mailbox</th><th>restarts</th><th>uptime</th><th>last failure</th></tr></thead>"
        f"<tbody>{''.join(_rows(root))}</tbody></table>{_failures(root)}</body></html>\n"
    )


def _failures(root: ActorSnapshot) -> str:
    """The recent failures (newest first), which outlive the actors that had them."""
    if not root.recent_failures:
        return ""
    esc = html.escape
    rows = "".join(
        f'<tr><td class="name">{esc(failure.path)}</td>'
        f'<td><span class="kind">{esc(failure.kind)}</span> {esc(failure.actor_type)}</td>'
        f'<td class="failure">{esc(failure.type)}: {esc(failure.message)}</td>'
        f"<td>{esc(failure.action)}</td>"
        f'<td class="num">{esc(format_duration(failure.seconds_ago))} ago</td></tr>'
        for failure in reversed(root.recent_failures)
    )
    return (
        f"<h2>Recent failures ({len(root.recent_failures)})</h2>"
        "<table><thead><tr><th>path</th><th>kind / type</th><th>failure</th>"
        f"<th>what happened next</th><th>when</th></tr></thead><tbody>{rows}</tbody></table>"
    )
