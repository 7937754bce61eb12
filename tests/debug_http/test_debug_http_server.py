"""The debug endpoint over real sockets on 127.0.0.1: content, routing, auth, limits, TLS."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import httpx
import pytest
import trio

from supervisors.edges.debug_http import (
    TOKEN_SETTING,
    DebugHttpBindError,
    DebugHttpConfig,
    DebugHttpConfigError,
    serve_debug_http,
)
from supervisors.tls import ALPN_HTTP1, client_ssl_context, generate_dev_certs, server_ssl_context
from zl_actors import open_actor_system, snapshot_from_json

from ._support import (
    GATE_CAPACITY,
    HOSTILE_NAME,
    QUEUED,
    TOKEN,
    raw_exchange,
    running_endpoint,
    wait_for,
)

LIMIT_S = 10.0


class TestTreeAsJson:
    """GET /debug/actors answers the live tree as JSON when asked for JSON."""

    async def test_paths_mailbox_and_restarts_after_a_crash(self) -> None:
        with trio.fail_after(LIMIT_S):
            async with running_endpoint() as live, httpx.AsyncClient() as client:
                live.system.faults.crash("/host/provider")
                await wait_for("/host/provider", live.system, restarts=1)
                response = await client.get(f"{live.url}/debug/actors?format=json")
                assert response.status_code == 200
                assert response.headers["content-type"] == "application/json"
                assert response.headers["cache-control"] == "no-store"
                data = response.json()
                root = snapshot_from_json(data)
                assert {node.path for node in root.walk()} == {
                    "/host",
                    "/host/sessions",
                    "/host/sessions/gate",
                    f"/host/sessions/{HOSTILE_NAME}",
                    "/host/provider",
                }
                gate = root.find("/host/sessions/gate")
                assert gate is not None
                assert (gate.mailbox.depth, gate.mailbox.capacity) == (QUEUED, GATE_CAPACITY)
                provider = root.find("/host/provider")
                assert provider is not None
                assert provider.restarts == 1
                assert provider.last_failure is not None
                assert provider.last_failure.type == "InjectedCrash"
                assert data == root.to_json()  # nothing served beyond the snapshot's own form

    @pytest.mark.parametrize(
        "accept",
        ["application/json", "application/json, text/html;q=0.5", "text/html;q=0.1, */*;q=0.9"],
    )
    async def test_accept_header_that_prefers_json(self, accept: str) -> None:
        with trio.fail_after(LIMIT_S):
            async with running_endpoint() as live, httpx.AsyncClient() as client:
                response = await client.get(f"{live.url}/debug/actors", headers={"Accept": accept})
                assert response.headers["content-type"] == "application/json"
                assert response.json()["path"] == "/host"


class TestTreeAsHtml:
    """Browsers get a self-contained page with every name escaped."""

    async def test_page_escapes_a_hostile_name_and_loads_nothing(self) -> None:
        with trio.fail_after(LIMIT_S):
            async with running_endpoint() as live, httpx.AsyncClient() as client:
                live.system.faults.crash("/host/provider")
                await wait_for("/host/provider", live.system, restarts=1)
                response = await client.get(
                    f"{live.url}/debug/actors",
                    headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"},
                )
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        assert "default-src 'none'" in response.headers["content-security-policy"]
        page = response.text
        assert HOSTILE_NAME not in page
        assert "&lt;img src=x onerror=alert(1)&gt;&amp;amp;" in page
        for tag in ("<img", "<script", "<link", "<iframe", "url("):
            assert tag not in page
        assert "InjectedCrash" in page
        assert f"{QUEUED}/{GATE_CAPACITY}" in page  # the gate's mailbox
        assert "<meta http-equiv" not in page  # no refresh unless asked

    async def test_refresh_and_bad_format(self) -> None:
        with trio.fail_after(LIMIT_S):
            async with running_endpoint() as live, httpx.AsyncClient() as client:
                page = await client.get(f"{live.url}/debug/actors?refresh=5")
                bad = await client.get(f"{live.url}/debug/actors?format=xml")
                bad_refresh = await client.get(f"{live.url}/debug/actors?refresh=soon")
        assert '<meta http-equiv="refresh" content="5">' in page.text
        assert bad.status_code == 400
        assert "xml" in bad.text
        assert bad_refresh.status_code == 400


class TestRouting:
    """Health answers ok, unknown paths 404, other methods 405, keep-alive works."""

    async def test_health_404_405(self) -> None:
        with trio.fail_after(LIMIT_S):
            async with running_endpoint() as live, httpx.AsyncClient() as client:
                health = await client.get(f"{live.url}/debug/health")
                missing = await client.get(f"{live.url}/debug/nothing")
                root = await client.get(f"{live.url}/")
                post = await client.post(f"{live.url}/debug/actors", content=b"x")
                delete = await client.delete(f"{live.url}/debug/health")
                head = await client.head(f"{live.url}/debug/actors")
                after = await client.get(f"{live.url}/debug/health")  # same kept-alive client
        assert (health.status_code, health.text) == (200, "ok\n")
        assert missing.status_code == 404
        assert root.status_code == 404
        assert post.status_code == 405
        assert post.headers["allow"] == "GET"
        assert delete.status_code == 405
        assert head.status_code == 405
        assert after.status_code == 200

    async def test_many_requests_on_one_connection(self) -> None:
        with trio.fail_after(LIMIT_S):
            async with running_endpoint() as live:
                request = b"GET /debug/health HTTP/1.1\r\nHost: x\r\n\r\n"
                last = b"GET /debug/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                reply = await raw_exchange(live.binding.port, request * 3 + last)
        assert reply.count(b"HTTP/1.1 200 OK") == 4

    async def test_malformed_request_gets_400(self) -> None:
        with trio.fail_after(LIMIT_S):
            async with running_endpoint() as live:
                reply = await raw_exchange(live.binding.port, b"NONSENSE\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 400 ")


class TestToken:
    """Non-loopback needs a token (refused before binding); with one, requests must carry it."""

    async def test_non_loopback_without_token_is_refused_before_binding(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        opened: list[object] = []

        def no_socket(*args: object, **kwargs: object) -> None:
            opened.append(args)
            raise AssertionError("the endpoint opened a socket before refusing its config")

        monkeypatch.setattr(trio.socket, "socket", no_socket)
        monkeypatch.setattr(trio.socket, "getaddrinfo", no_socket)
        async with open_actor_system("host") as system:
            for host in ("0.0.0.0", "::", "10.1.2.3", "debug.example.internal"):
                with pytest.raises(DebugHttpConfigError, match=TOKEN_SETTING):
                    await serve_debug_http(system, config=DebugHttpConfig(host=host, port=0))
            # A token alone is not enough off loopback: it would travel in clear text.
            with pytest.raises(DebugHttpConfigError, match="allow_plaintext"):
                await serve_debug_http(system, config=DebugHttpConfig(host="0.0.0.0", token=TOKEN))
        assert opened == []

    def test_token_must_be_long_and_is_never_shown(self) -> None:
        with pytest.raises(ValueError, match=TOKEN_SETTING):
            DebugHttpConfig(token="short")
        with pytest.raises(ValueError, match=TOKEN_SETTING):
            DebugHttpConfig(token="has spaces in the middle of it")
        assert TOKEN not in repr(DebugHttpConfig(token=TOKEN))

    async def test_401_without_the_token_200_with_it(self) -> None:
        with trio.fail_after(LIMIT_S):
            async with (
                running_endpoint(DebugHttpConfig(token=TOKEN)) as live,
                httpx.AsyncClient() as client,
            ):
                url = f"{live.url}/debug/actors?format=json"
                missing = await client.get(url)
                wrong = await client.get(url, headers={"Authorization": f"Bearer {TOKEN}x"})
                basic = await client.get(url, headers={"Authorization": f"Basic {TOKEN}"})
                hidden = await client.get(f"{live.url}/nowhere")
                right = await client.get(url, headers={"Authorization": f"Bearer {TOKEN}"})
                lower = await client.get(url, headers={"Authorization": f"bearer {TOKEN}"})
        for refused in (missing, wrong, basic, hidden):
            assert refused.status_code == 401
            assert refused.headers["www-authenticate"].startswith("Bearer")
            assert "host" not in refused.text
        assert right.status_code == 200
        assert right.json()["path"] == "/host"
        assert lower.status_code == 200


class TestDeadlinesAndLimits:
    """Every wait has a deadline; headers, bodies and connections are bounded."""

    async def test_slow_loris_is_cut_off_by_the_read_deadline(self) -> None:
        config = DebugHttpConfig(request_read_timeout_s=0.5)
        with trio.fail_after(LIMIT_S):
            async with running_endpoint(config) as live:
                stream = await trio.open_tcp_stream("127.0.0.1", live.binding.port)
                started = trio.current_time()

                async def trickle() -> None:
                    # Always sending, never finishing: each byte comes well inside any
                    # per-read timeout, so only a whole-request deadline stops it.
                    try:
                        await stream.send_all(b"GET /debug/actors HTTP/1.1\r\n")
                        while True:
                            await stream.send_all(b"X")
                            await trio.sleep(0.05)
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        return

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(trickle)
                    received = bytearray()
                    while chunk := await stream.receive_some(4096):
                        received += chunk
                    elapsed = trio.current_time() - started
                    nursery.cancel_scope.cancel()
                await stream.aclose()
        assert received.startswith(b"HTTP/1.1 408 ")
        assert 0.5 <= elapsed < 5.0

    async def test_idle_keep_alive_connection_is_closed(self) -> None:
        config = DebugHttpConfig(keepalive_idle_timeout_s=0.3)
        with trio.fail_after(LIMIT_S):
            async with running_endpoint(config) as live:
                reply = await raw_exchange(
                    live.binding.port, b"GET /debug/health HTTP/1.1\r\nHost: x\r\n\r\n"
                )
        # One answer, then the server closed the idle connection without a word.
        assert reply.startswith(b"HTTP/1.1 200 OK")
        assert reply.endswith(b"ok\n")

    async def test_oversized_headers_get_431_and_body_413(self) -> None:
        config = DebugHttpConfig(max_header_bytes=2048)
        with trio.fail_after(LIMIT_S):
            async with running_endpoint(config) as live:
                # h11 checks the limit on an unfinished header block, so a block that arrives
                # whole within one receive may pass; this one spans many receives.
                pad = b"a" * 65_536
                big = b"GET /debug/health HTTP/1.1\r\nHost: x\r\nX-Pad: " + pad + b"\r\n\r\n"
                headers_reply = await raw_exchange(live.binding.port, big)
                body = b"b" * 10_000
                body_reply = await raw_exchange(
                    live.binding.port,
                    b"GET /debug/health HTTP/1.1\r\nHost: x\r\nContent-Length: 10000\r\n\r\n"
                    + body,
                )
        assert headers_reply.startswith(b"HTTP/1.1 431 ")
        assert body_reply.startswith(b"HTTP/1.1 413 ")

    async def test_connection_cap_answers_503_then_recovers(self) -> None:
        config = DebugHttpConfig(max_connections=2)
        with trio.fail_after(LIMIT_S):
            async with running_endpoint(config) as live, httpx.AsyncClient() as client:
                port = live.binding.port
                # Two silent connections fill the cap (accepted in connect order).
                holders = [await trio.open_tcp_stream("127.0.0.1", port) for _ in range(2)]
                over = await raw_exchange(port, b"GET /debug/health HTTP/1.1\r\nHost: x\r\n\r\n")
                assert over.startswith(b"HTTP/1.1 503 ")
                assert b"retry-after: 1" in over.lower()
                await holders[0].aclose()
                while True:  # the server notices the close, then has room again
                    response = await client.get(f"{live.url}/debug/health")
                    if response.status_code == 200:
                        break
                    assert response.status_code == 503
                    await trio.sleep(0.02)
                await holders[1].aclose()

    async def test_a_taken_port_is_a_clear_bind_error(self) -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen(1)
            port = taken.getsockname()[1]
            async with open_actor_system("host") as system:
                with pytest.raises(DebugHttpBindError, match=f"127.0.0.1:{port}"):
                    await serve_debug_http(system, config=DebugHttpConfig(port=port))


class TestTls:
    """With an ssl_context the endpoint speaks HTTPS and selects ALPN http/1.1."""

    async def test_https_and_alpn(self, tmp_path: Path) -> None:
        certs = generate_dev_certs(tmp_path)
        server_context = server_ssl_context(certs.server_cert, certs.server_key)  # offers h2
        client_context = client_ssl_context(certs.ca_cert, alpn=("h2", *ALPN_HTTP1))
        with trio.fail_after(LIMIT_S):
            async with running_endpoint(ssl_context=server_context) as live:
                assert live.url.startswith("https://127.0.0.1:")
                tls = await trio.open_ssl_over_tcp_stream(
                    "127.0.0.1",
                    live.binding.port,
                    ssl_context=client_context,
                    https_compatible=True,
                )
                await tls.do_handshake()
                assert tls.selected_alpn_protocol() == "http/1.1"
                await tls.aclose()
                async with httpx.AsyncClient(verify=client_context) as client:
                    response = await client.get(f"{live.url}/debug/actors?format=json")
        assert response.status_code == 200
        assert json.loads(response.text)["path"] == "/host"
