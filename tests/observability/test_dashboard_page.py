"""The live dashboard page (``/debug/dashboard``) in a real browser: Debian's Chromium,
headless, loads it after the chat; the charts hold the chat's figures, the page loads
nothing from anywhere else, and a screenshot is kept in the test's tmp folder."""

from __future__ import annotations

import html.parser
import re
from pathlib import Path

from ._support import Stack, chromium
from .conftest import Chat

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class _Figures(html.parser.HTMLParser):
    """The page's charts (``figure.chart``): metric name → its ``data-count`` values."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: dict[str, list[int]] = {}
        self.bars = 0
        self.scripts = 0
        self.external: list[str] = []
        self._current: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "figure" and values.get("class") == "chart":
            self._current = values.get("data-metric") or ""
            self.figures[self._current] = []
        if tag == "p" and self._current is not None and values.get("data-count"):
            self.figures[self._current].append(int(values["data-count"] or 0))
        if tag == "rect" and "bar" in (values.get("class") or ""):
            self.bars += 1
        if tag == "script":
            self.scripts += 1
        for name in ("src", "href"):
            if values.get(name):
                self.external.append(values[name] or "")


class TestDashboardPage:
    """Latency histograms and counters drawn as charts, self-contained, in Chromium."""

    def test_page_in_headless_chromium(self, stack: Stack, chat: Chat, tmp_path: Path) -> None:
        del chat  # loaded after the chat: the charts have samples
        url = f"{stack.host_debug}/debug/dashboard"
        shot = tmp_path / "dashboard.png"
        netlog = tmp_path / "netlog.json"
        dom = chromium(tmp_path, url, screenshot=shot, extra=(f"--log-net-log={netlog}",))
        page = _Figures()
        page.feed(dom)
        for metric in (
            "zl.turn.time_to_first_token",
            "zl.turn.phase.duration",
            "zl.tool.call.duration",
            "host_to_device_rtt_ms",
        ):
            assert page.figures.get(metric), f"no samples drawn for {metric}"
            assert sum(page.figures[metric]) >= 1, metric
        assert len(page.figures["zl.turn.phase.duration"]) == 3  # plan, act, respond
        for counter in ("zl.tool.calls", "zl.tokens", "zl.errors", "zl.sessions.active"):
            assert counter in page.figures, counter
        assert page.bars > 20
        assert page.scripts == 0
        assert page.external == []
        assert shot.read_bytes().startswith(PNG_SIGNATURE)
        assert shot.stat().st_size > 20_000  # a page of charts, not a blank one
        # The page itself asked for nothing: no request names it (or its origin) as initiator.
        log = netlog.read_text()
        assert f"{url}" in log
        assert f'"initiator":"{stack.host_debug}' not in log
        initiators = set(re.findall(r'"initiator":"([^"]*)"', log))
        assert initiators <= {"not an origin"}, initiators
