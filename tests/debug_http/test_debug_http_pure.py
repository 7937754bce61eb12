"""Routing, negotiation, bearer check and HTML rendering as plain functions (no sockets)."""

from __future__ import annotations

import datetime as dt

import pytest
import trio
import trio.testing

from supervisors.edges.debug_http import DebugHttpConfig, is_loopback_host, render_html
from supervisors.edges.debug_http._app import answer, bearer_ok, wants_json
from supervisors.edges.debug_http._html import format_duration
from supervisors.edges.debug_http._server import _Connection
from zl_actors import ActorSnapshot, FailureSnapshot, MailboxInfo, open_actor_system

TOKEN = "0123456789abcdef-token"


def node(
    name: str,
    *,
    state: str = "running",
    kind: str = "actor",
    failure: str | None = None,
    children: tuple[ActorSnapshot, ...] = (),
    depth: int = 0,
) -> ActorSnapshot:
    return ActorSnapshot(
        path=f"/{name}",
        name=name,
        kind=kind,
        actor_type="T",
        state=state,
        mailbox=MailboxInfo(depth=depth, capacity=10),
        restarts=2,
        uptime_s=75.0,
        last_failure=None
        if failure is None
        else FailureSnapshot(type="ValueError", message=failure, seconds_ago=3.0),
        children=children,
    )


def tree() -> ActorSnapshot:
    return node(
        "root",
        kind="supervisor",
        children=(
            node("bad", state="failed", failure="<script>alert('x')</script>"),
            node("again", state="restarting"),
            node("busy", depth=9),
        ),
    )


class TestNegotiation:
    """JSON only when asked for it; HTML otherwise."""

    @pytest.mark.parametrize(
        ("accept", "fmt", "expected"),
        [
            (None, None, False),
            ("", None, False),
            ("*/*", None, False),
            ("application/json", None, True),
            ("APPLICATION/JSON", None, True),
            ("text/html, application/json", None, False),
            ("text/html;q=0.5, application/json", None, True),
            ("application/json;q=0", None, False),
            ("application/*", None, True),
            ("text/html", "json", True),
            ("application/json", "html", False),
        ],
    )
    def test_wants_json(self, accept: str | None, fmt: str | None, expected: bool) -> None:
        assert wants_json(accept, fmt) is expected

    def test_unknown_format_is_an_error(self) -> None:
        with pytest.raises(ValueError, match="yaml"):
            wants_json(None, "yaml")


class TestBearer:
    """Only ``Bearer <token>`` passes; the scheme is case-insensitive."""

    @pytest.mark.parametrize(
        ("value", "ok"),
        [
            (None, False),
            (b"", False),
            (b"Bearer", False),
            (b"Bearer ", False),
            (f"Bearer {TOKEN}".encode(), True),
            (f"BEARER {TOKEN}".encode(), True),
            (f"Bearer  {TOKEN} ".encode(), True),
            (f"Basic {TOKEN}".encode(), False),
            (f"Bearer {TOKEN[:-1]}".encode(), False),
            (f"Bearer {TOKEN}0".encode(), False),
            (f"{TOKEN}".encode(), False),
        ],
    )
    def test_bearer_ok(self, value: bytes | None, ok: bool) -> None:
        assert bearer_ok(value, TOKEN) is ok

    def test_401_comes_before_404(self) -> None:
        response = answer(method=b"GET", target=b"/secret", headers=[], token=TOKEN, snapshot=tree)
        assert response.status == 401

    def test_the_tree_is_not_taken_for_a_refused_request(self) -> None:
        def no_snapshot() -> ActorSnapshot:
            raise AssertionError("taken for an unauthorised request")

        response = answer(
            method=b"GET", target=b"/debug/actors", headers=[], token=TOKEN, snapshot=no_snapshot
        )
        assert response.status == 401


class TestLoopback:
    """Only literal loopback addresses and localhost count as loopback."""

    @pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.53", "::1", "localhost"])
    def test_loopback(self, host: str) -> None:
        assert is_loopback_host(host)

    @pytest.mark.parametrize(
        "host", ["0.0.0.0", "::", "", "10.0.0.1", "192.168.1.2", "example.com", "localhost."]
    )
    def test_not_loopback(self, host: str) -> None:
        assert not is_loopback_host(host)


class TestHtml:
    """The page escapes everything from the tree and highlights nodes in trouble."""

    def test_escaping_and_highlights(self) -> None:
        page = render_html(tree(), now=dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC))
        assert "<script>" not in page
        assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
        assert "<tr class='failed'" in page
        assert "<tr class='restarting'" in page
        assert 'class="num pressure">9/10' in page  # a mailbox near capacity
        assert "2025-01-02 03:04:05 UTC" in page
        assert "4 nodes: 1 failed, 1 restarting, 2 running" in page
        assert "└─ busy" in page

    @pytest.mark.parametrize(
        ("seconds", "text"),
        [(0.04, "0.0s"), (12.34, "12.3s"), (75, "1m 15s"), (3_700, "1h 01m"), (90_000, "1d 01h")],
    )
    def test_durations(self, seconds: float, text: str) -> None:
        assert format_duration(seconds) == text


class TestWriteDeadline:
    """A client that never reads its answer is dropped when the write deadline passes."""

    async def test_unread_response_is_dropped(self, autojump_clock: trio.abc.Clock) -> None:
        config = DebugHttpConfig(write_timeout_s=7.0)
        # A lockstep pair: send_all returns only once the other side has read everything.
        server_side, client_side = trio.testing.lockstep_stream_pair()
        async with open_actor_system("host") as system:
            connection = _Connection(
                transport=server_side, peer="test", system=system, config=config
            )
            with trio.fail_after(60):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(
                        client_side.send_all,
                        b"GET /debug/actors HTTP/1.1\r\nHost: x\r\n\r\n",
                    )
                    started = trio.current_time()
                    await connection.serve(overloaded=False)
                    elapsed = trio.current_time() - started
        assert elapsed == pytest.approx(7.0, abs=0.5)


class TestExports:
    """The package re-exports exactly its public names."""

    def test_all(self) -> None:
        import supervisors.edges.debug_http as package

        public = {name for name in vars(package) if not name.startswith("_")}
        assert public == set(package.__all__)
        for name in package.__all__:
            value = getattr(package, name)
            if not isinstance(value, str):
                assert value.__module__.startswith("supervisors.edges.debug_http._")
