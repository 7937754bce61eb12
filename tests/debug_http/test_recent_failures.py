"""The debug page and ``zl tree`` show the recent failures, which outlive their actors."""

from __future__ import annotations

import attrs

from supervisors.edges.debug_http import render_html
from supervisors.tree_cli import render_coloured
from zl_actors import ActorSnapshot, MailboxInfo, RecentFailure


def root_with_failures() -> ActorSnapshot:
    failure = RecentFailure(
        path="/host/sessions/s-1/turn-1/tool_call-c1",
        kind="actor",
        actor_type="ToolCall",
        type="ValueError",
        message="<b>bad</b>\x1b[31m",
        action="not restarted (temporary)",
        seconds_ago=4.0,
    )
    return ActorSnapshot(
        path="/host",
        name="host",
        kind="supervisor",
        actor_type="Supervisor",
        state="running",
        mailbox=MailboxInfo(depth=0, capacity=0),
        restarts=0,
        uptime_s=10.0,
        last_failure=None,
        children=(),
        recent_failures=(failure, attrs.evolve(failure, path="/host/second", seconds_ago=1.0)),
    )


class TestRecentFailures:
    """Listed newest first on the page (escaped), after the tree in ``zl tree``."""

    def test_page(self) -> None:
        page = render_html(root_with_failures())
        assert "Recent failures (2)" in page
        assert "&lt;b&gt;bad&lt;/b&gt;" in page
        assert "<b>bad</b>" not in page
        assert page.index("/host/second") < page.index("/host/sessions/s-1")
        assert "not restarted (temporary)" in page

    def test_tree_cli(self) -> None:
        text = render_coloured(root_with_failures(), colour=True)
        lines = text.splitlines()
        assert lines[1] == "recent failures (2, newest last):"
        assert "tool_call-c1 [actor:ToolCall] ValueError: <b>bad</b>\\x1b[31m" in lines[2]
        assert "\x1b[31m" not in text  # shown, never obeyed
