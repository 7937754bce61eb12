"""The adapter's network backend: coalesced writes, errors, free locks, keep-alive and TLS.

The eager socket calls underneath have their own tests (tests/runtime/test_eager_stream.py).
"""

from __future__ import annotations

import socket
from functools import partial
from pathlib import Path

import httpcore
import httpx
import pytest
import trio
import trio.testing

from actors.provider._net import FewerPassesTransport, _FreeLock, _Stream
from actors.provider.fake_upstream import FakeUpstream
from supervisors.tls import ALPN_HTTP1, client_ssl_context, generate_dev_certs, server_ssl_context
from zl_actors import EagerSocketStream

BODY = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
LIMITS = httpx.Limits(max_connections=4, max_keepalive_connections=4)


def socket_pair() -> tuple[_Stream, socket.socket]:
    ours, peer = socket.socketpair()
    peer.setblocking(False)
    return _Stream(EagerSocketStream(ours)), peer


class TestStream:
    """Coalesced writes, httpcore's timeouts and errors."""

    async def test_writes_leave_together_at_the_next_read(self) -> None:
        stream, peer = socket_pair()
        with peer:
            await stream.write(b"POST / HTTP/1.1\r\n\r\n")
            await stream.write(b'{"a": 1}')
            with pytest.raises(BlockingIOError):
                peer.recv(1024)  # nothing sent yet
            peer.send(b"HTTP/1.1 200 OK\r\n")
            with trio.fail_after(5):
                answer = await stream.read(1024)
            assert answer == b"HTTP/1.1 200 OK\r\n"
            assert peer.recv(1024) == b'POST / HTTP/1.1\r\n\r\n{"a": 1}'
            await stream.aclose()

    async def test_read_timeout(self) -> None:
        stream, peer = socket_pair()
        with peer, pytest.raises(httpcore.ReadTimeout):
            await stream.read(16, timeout=0.05)
        await stream.aclose()

    async def test_closing_wakes_a_waiting_reader_with_a_read_error(self) -> None:
        stream, peer = socket_pair()
        with peer:
            async with trio.open_nursery() as nursery:
                errors: list[BaseException] = []

                async def reader() -> None:
                    try:
                        await stream.read(16)
                    except httpcore.ReadError as exc:
                        errors.append(exc)

                nursery.start_soon(reader)
                await trio.testing.wait_all_tasks_blocked()
                await stream.aclose()
            assert len(errors) == 1


class TestFreeLock:
    async def test_a_free_lock_is_taken_without_a_checkpoint(self) -> None:
        lock = _FreeLock()
        with trio.testing.assert_no_checkpoints():
            async with lock:
                pass

    async def test_a_held_lock_waits_its_turn(self) -> None:
        lock = _FreeLock()
        order: list[str] = []

        async def second() -> None:
            async with lock:
                order.append("second")

        async with trio.open_nursery() as nursery, lock:
            nursery.start_soon(second)
            await trio.testing.wait_all_tasks_blocked()
            order.append("first, still holding")
        assert order == ["first, still holding", "second"]

    async def test_a_cancelled_waiter_leaves_it_usable(self) -> None:
        lock = _FreeLock()
        outcome: list[str] = []

        async def waiter() -> None:
            with trio.move_on_after(0.01) as waited:
                async with lock:
                    outcome.append("taken while held")
            if waited.cancelled_caught:
                outcome.append("gave up")

        async with trio.open_nursery() as nursery, lock:
            nursery.start_soon(waiter)
            await trio.sleep(0.05)
        assert outcome == ["gave up"]
        with trio.testing.assert_no_checkpoints():
            async with lock:
                pass


class TestTransport:
    async def test_kept_alive_connections_use_free_locks(self, upstream: FakeUpstream) -> None:
        """Guards the httpcore internals the transport relies on (see _net.py)."""
        transport = FewerPassesTransport(limits=LIMITS)
        async with httpx.AsyncClient(transport=transport) as client:
            for _ in range(2):
                with trio.fail_after(10):
                    response = await client.post(upstream.url + "/chat/completions", json=BODY)
                assert response.status_code == 200
            (connection,) = transport._pool.connections
            assert isinstance(connection._request_lock, _FreeLock)  # type: ignore[attr-defined]
            inner = connection._connection  # type: ignore[attr-defined]
            assert isinstance(inner._state_lock, _FreeLock)
        assert upstream.total_connections == 1

    async def test_streams_keep_their_connection_alive(self, upstream: FakeUpstream) -> None:
        async with httpx.AsyncClient(transport=FewerPassesTransport(limits=LIMITS)) as client:
            for _ in range(3):
                with trio.fail_after(10):
                    response = await client.post(upstream.url + "/chat/completions", json=BODY)
                assert response.status_code == 200
                assert response.text.endswith("data: [DONE]\n\n")
        assert upstream.total_connections == 1
        assert [r.body for r in upstream.requests] == [BODY] * 3

    async def test_refused_connection_is_httpx_connect_error(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        async with httpx.AsyncClient(transport=FewerPassesTransport(limits=LIMITS)) as client:
            with trio.fail_after(10), pytest.raises(httpx.ConnectError):
                await client.get(f"http://127.0.0.1:{port}/")

    async def test_tls_upstream(self, tmp_path: Path) -> None:
        certs = generate_dev_certs(tmp_path / "certs")
        server_context = server_ssl_context(certs.server_cert, certs.server_key, alpn=ALPN_HTTP1)
        payload = b"hello over tls"

        async def handler(stream: trio.SSLStream[trio.SocketStream]) -> None:
            request = b""
            while b"\r\n\r\n" not in request:
                request += await stream.receive_some(4096)
            await stream.send_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(payload), payload)
            )
            await stream.aclose()

        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(
                partial(trio.serve_ssl_over_tcp, host="127.0.0.1"), handler, 0, server_context
            )
            port = listeners[0].transport_listener.socket.getsockname()[1]
            transport = FewerPassesTransport(
                limits=LIMITS,
                ssl_context=client_ssl_context(certs.ca_cert, alpn=ALPN_HTTP1),
            )
            async with httpx.AsyncClient(transport=transport) as client:
                with trio.fail_after(10):
                    response = await client.get(f"https://localhost:{port}/")
            assert response.content == payload
            nursery.cancel_scope.cancel()

    async def test_tls_with_an_untrusted_certificate_is_refused(self, tmp_path: Path) -> None:
        certs = generate_dev_certs(tmp_path / "certs")
        server_context = server_ssl_context(certs.server_cert, certs.server_key, alpn=ALPN_HTTP1)

        async def handler(stream: trio.SSLStream[trio.SocketStream]) -> None:
            await stream.aclose()

        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(
                partial(trio.serve_ssl_over_tcp, host="127.0.0.1"), handler, 0, server_context
            )
            port = listeners[0].transport_listener.socket.getsockname()[1]
            # The default context trusts the system's CAs, not this test's own.
            async with httpx.AsyncClient(transport=FewerPassesTransport(limits=LIMITS)) as client:
                with trio.fail_after(10), pytest.raises(httpx.ConnectError):
                    await client.get(f"https://localhost:{port}/")
            nursery.cancel_scope.cancel()
