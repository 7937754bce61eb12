"""``zl tree`` (tree_main) against a live endpoint, and each of its error paths."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import pytest
import trio

from supervisors.edges.debug_http import DebugHttpConfig
from supervisors.tls import ALPN_HTTP1, generate_dev_certs, server_ssl_context
from supervisors.tree_cli import RED, RESET, YELLOW, actors_url, render_coloured, tree_main
from zl_actors import ActorSnapshot, FailureSnapshot, MailboxInfo

from ._support import HOSTILE_NAME, TOKEN, running_endpoint, wait_for

LIMIT_S = 20.0


async def run_tree(*argv: str) -> int:
    """tree_main is a blocking command: run it in a thread, as a user's shell would."""
    return await trio.to_thread.run_sync(tree_main, list(argv))


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("zl tree: ")
    return lines[0]


@asynccontextmanager
async def canned_server(reply: bytes | None) -> AsyncIterator[int]:
    """A TCP server that answers every connection with ``reply`` (or never answers)."""

    async def handler(stream: trio.SocketStream) -> None:
        await stream.receive_some(65_536)
        if reply is None:
            await trio.sleep_forever()
        await stream.send_all(reply)
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
        yield listeners[0].socket.getsockname()[1]
        nursery.cancel_scope.cancel()


def http_reply(status: str, body: bytes) -> bytes:
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


class TestTreeMain:
    """Prints the live tree, the raw JSON, or a refreshing view."""

    async def test_prints_the_tree(self, capsys: pytest.CaptureFixture[str]) -> None:
        with trio.fail_after(LIMIT_S):
            async with running_endpoint() as live:
                live.system.faults.crash("/host/provider")
                await wait_for("/host/provider", live.system, restarts=1)
                assert await run_tree("--url", live.url) == 0
        out = capsys.readouterr().out
        lines = out.splitlines()
        assert lines[0].startswith("host [supervisor:Supervisor] running")
        assert any("gate [actor:Gate] running  mailbox 3/8" in line for line in lines)
        assert any(HOSTILE_NAME in line for line in lines)
        provider = next(line for line in lines if "provider [actor:Idle]" in line)
        assert "restarts 1" in provider
        assert "last failure InjectedCrash" in provider
        assert "\x1b[" not in out  # not a terminal: no colour

    async def test_json(self, capsys: pytest.CaptureFixture[str]) -> None:
        with trio.fail_after(LIMIT_S):
            async with running_endpoint() as live:
                assert await run_tree("--url", f"{live.url}/debug/actors", "--json") == 0
        data = json.loads(capsys.readouterr().out)
        assert data["path"] == "/host"
        assert [child["name"] for child in data["children"]] == ["sessions", "provider"]

    async def test_watch_refreshes(self, capsys: pytest.CaptureFixture[str]) -> None:
        with trio.fail_after(LIMIT_S):
            async with running_endpoint() as live:
                code = await run_tree("--url", live.url, "--watch", "0.05", "--count", "3")
        assert code == 0
        assert capsys.readouterr().out.count("host [supervisor:Supervisor]") == 3

    async def test_token(
        self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("ZL_DEBUG__TOKEN", raising=False)
        with trio.fail_after(LIMIT_S):
            async with running_endpoint(DebugHttpConfig(token=TOKEN)) as live:
                assert await run_tree("--url", live.url) == 1
                line = one_error_line(capsys.readouterr().err)
                assert "401" in line
                assert "--token" in line
                assert await run_tree("--url", live.url, "--token", "x" * 20) == 1
                assert "refused" in one_error_line(capsys.readouterr().err)
                assert await run_tree("--url", live.url, "--token", TOKEN) == 0
                assert "host [supervisor" in capsys.readouterr().out
                monkeypatch.setenv("ZL_DEBUG__TOKEN", TOKEN)
                assert await run_tree("--url", live.url) == 0

    async def test_https_with_ca(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        certs = generate_dev_certs(tmp_path)
        context = server_ssl_context(certs.server_cert, certs.server_key, alpn=ALPN_HTTP1)
        with trio.fail_after(LIMIT_S):
            async with running_endpoint(ssl_context=context) as live:
                assert await run_tree("--url", live.url, "--ca", str(certs.ca_cert)) == 0
                assert "host [supervisor" in capsys.readouterr().out
                # Without the CA the certificate is not trusted: one clear line.
                assert await run_tree("--url", live.url) == 1
                assert "certificate" in one_error_line(capsys.readouterr().err).lower()


class TestTreeMainErrors:
    """Each failure is one line on stderr and a non-zero exit, never a traceback."""

    async def test_connection_refused(self, capsys: pytest.CaptureFixture[str]) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]  # closed below: nothing listens there
        assert await run_tree("--url", f"http://127.0.0.1:{port}") == 1
        line = one_error_line(capsys.readouterr().err)
        assert "cannot connect" in line
        assert "refused" in line.lower()

    @pytest.mark.parametrize(
        ("reply", "expected"),
        [
            (http_reply("200 OK", b"<html>not json</html>"), "did not answer JSON"),
            (http_reply("200 OK", b'{"path": 1}'), "not an actor tree"),
            (http_reply("200 OK", b"[1, 2]"), "not an actor tree"),
            (http_reply("404 Not Found", b"{}"), "answered HTTP 404"),
        ],
    )
    async def test_bad_answers(
        self, reply: bytes, expected: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        with trio.fail_after(LIMIT_S):
            async with canned_server(reply) as port:
                assert await run_tree("--url", f"http://127.0.0.1:{port}") == 1
        assert expected in one_error_line(capsys.readouterr().err)

    async def test_timeout(self, capsys: pytest.CaptureFixture[str]) -> None:
        with trio.fail_after(LIMIT_S):
            async with canned_server(None) as port:
                code = await run_tree("--url", f"http://127.0.0.1:{port}", "--timeout", "0.3")
        assert code == 1
        assert "did not answer in time" in one_error_line(capsys.readouterr().err)

    async def test_bad_url_and_bad_ca(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert await run_tree("--url", "ftp://example") == 1
        assert "not an http(s) URL" in one_error_line(capsys.readouterr().err)
        assert await run_tree("--ca", str(tmp_path / "missing.pem")) == 1
        assert "missing.pem" in one_error_line(capsys.readouterr().err)

    def test_bad_arguments_exit_2(self, capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit) as exit_info:
            tree_main(["--count", "2"])
        assert exit_info.value.code == 2
        assert "--count needs --watch" in capsys.readouterr().err


class TestRendering:
    """Colour marks failed nodes red and restarting ones yellow; URLs are normalised."""

    def test_colours(self) -> None:
        def leaf(name: str, state: str) -> ActorSnapshot:
            return ActorSnapshot(
                path=f"/r/{name}",
                name=name,
                kind="actor",
                actor_type="T",
                state=state,
                mailbox=MailboxInfo(depth=0, capacity=1),
                restarts=0,
                uptime_s=1.0,
                last_failure=None,
                children=(),
            )

        root = ActorSnapshot(
            path="/r",
            name="r",
            kind="supervisor",
            actor_type="Supervisor",
            state="running",
            mailbox=MailboxInfo(depth=0, capacity=0),
            restarts=0,
            uptime_s=1.0,
            last_failure=None,
            children=(leaf("a", "failed"), leaf("b", "restarting"), leaf("c", "running")),
        )
        lines = render_coloured(root, colour=True).splitlines()
        assert not lines[0].startswith("\x1b[")
        assert lines[1].startswith(RED)
        assert lines[1].endswith(RESET)
        assert lines[2].startswith(YELLOW)
        assert not lines[3].startswith("\x1b[")
        assert "\x1b[" not in render_coloured(root, colour=False)

    def test_control_characters_from_the_tree_are_shown_not_obeyed(self) -> None:
        root = ActorSnapshot(
            path="/r\x1b[2J",
            name="r\x1b[2J\u202e",
            kind="supervisor",
            actor_type="Supervisor",
            state="running",
            mailbox=MailboxInfo(depth=0, capacity=0),
            restarts=0,
            uptime_s=1.0,
            last_failure=FailureSnapshot(type="E", message="two\nlines", seconds_ago=1.0),
            children=(),
        )
        for colour in (True, False):
            text = render_coloured(root, colour=colour)
            assert "\x1b" not in text
            assert "\u202e" not in text
            assert text.startswith("r\\x1b[2J\\u202e [supervisor")
            assert "two\\nlines" in text
            assert len(text.splitlines()) == 1

    @pytest.mark.parametrize(
        ("url", "expected"),
        [
            ("http://h:1", "http://h:1/debug/actors?format=json"),
            ("http://h:1/", "http://h:1/debug/actors?format=json"),
            ("https://h:1/debug/actors", "https://h:1/debug/actors?format=json"),
            ("http://h:1/debug/actors?refresh=2", "http://h:1/debug/actors?refresh=2&format=json"),
        ],
    )
    def test_actors_url(self, url: str, expected: str) -> None:
        assert actors_url(url) == expected
