"""The adapter's streaming HTTP/1.1 client: SSE splitting, keep-alive, bounds, errors, TLS."""

from __future__ import annotations

import json
import socket
from functools import partial
from pathlib import Path

import pytest
import trio
import trio.testing

from actors.provider._stream_http import (
    ChunkedDecoder,
    ConnectError,
    EventStreamError,
    ProtocolError,
    SseSplitter,
    StreamingHttpClient,
    open_streaming_http_client,
)
from actors.provider.fake_upstream import FakeUpstream, Script
from supervisors.tls import ALPN_HTTP1, client_ssl_context, generate_dev_certs, server_ssl_context

BODY = json.dumps({"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]})
HEADERS = {"content-type": "application/json"}


async def serve_plain(nursery: trio.Nursery, handler: object) -> int:
    """A plain TCP server on loopback running ``handler`` per connection; its port."""
    listeners = await nursery.start(partial(trio.serve_tcp, host="127.0.0.1"), handler, 0)
    return int(listeners[0].socket.getsockname()[1])


async def drain(client: StreamingHttpClient, url: str) -> list[bytes]:
    """One streamed completion's event data."""
    out: list[bytes] = []
    with trio.fail_after(10):
        async with client.stream(url, BODY.encode(), HEADERS) as response:
            assert response.status_code == 200
            while (batch := await response.receive_events()) is not None:
                out += batch
    return out


class TestSseSplitter:
    """The event-stream format, in pieces of any size."""

    def test_events_in_one_piece(self) -> None:
        splitter = SseSplitter()
        assert splitter.feed(b"data: a\n\ndata: b\n\n") == [b"a", b"b"]

    @pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"])
    def test_every_line_ending_byte_by_byte(self, ending: bytes) -> None:
        stream = b"data: one" + ending + ending + b": comment" + ending
        stream += b"event: x" + ending + b"data:two" + ending + b"data: lines" + ending + ending
        # A CR at the end could be half a CRLF: the next byte (any) settles it.
        stream += b":"
        splitter = SseSplitter()
        events = [event for byte in stream for event in splitter.feed(bytes([byte]))]
        assert events == [b"one", b"two\nlines"]

    def test_a_crlf_split_between_reads_is_one_line_end(self) -> None:
        splitter = SseSplitter()
        assert splitter.feed(b"data: x\r") == []
        # Had the CR ended the line, this LF would end the event with no blank line between.
        assert splitter.feed(b"\ndata: y\r\n\r\n") == [b"x\ny"]

    def test_an_event_without_data_is_not_dispatched(self) -> None:
        assert SseSplitter().feed(b"id: 1\nretry: 5\n\n: keep-alive\n\n") == []

    def test_an_endless_line_is_refused(self) -> None:
        splitter = SseSplitter(max_event_bytes=64)
        with pytest.raises(EventStreamError):
            for _ in range(10):
                splitter.feed(b"data: " + b"x" * 20)

    def test_an_endless_event_is_refused(self) -> None:
        splitter = SseSplitter(max_event_bytes=64)
        with pytest.raises(EventStreamError):
            for _ in range(10):
                splitter.feed(b"data: " + b"x" * 20 + b"\n")


class TestChunkedDecoder:
    """The chunked framing of an event-stream body, strictly and in any pieces."""

    BODY = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\ntrailer: x\r\n\r\n"

    @pytest.mark.parametrize("piece", [1, 2, 3, 7, 1000])
    def test_any_pieces(self, piece: int) -> None:
        decoder = ChunkedDecoder()
        out = b"".join(
            decoder.feed(self.BODY[i : i + piece]) for i in range(0, len(self.BODY), piece)
        )
        assert out == b"hello, world"
        assert decoder.done
        assert decoder.leftover == b""

    def test_bytes_after_the_body_are_left_over(self) -> None:
        decoder = ChunkedDecoder()
        decoder.feed(b"0\r\n\r\nHTTP/1.1")
        assert decoder.done
        assert decoder.leftover == b"HTTP/1.1"

    @pytest.mark.parametrize(
        "body",
        [b"zz\r\n", b"-5\r\nhello\r\n", b"5\r\nhelloXX", b"0x5\r\n", b"1" * 17 + b"\r\n"],
    )
    def test_bad_framing_is_refused(self, body: bytes) -> None:
        with pytest.raises(ProtocolError):
            ChunkedDecoder().feed(body)

    def test_an_endless_size_line_is_refused(self) -> None:
        decoder = ChunkedDecoder()
        with pytest.raises(ProtocolError):
            for _ in range(10):
                decoder.feed(b"1" + b";" * 1000)


class TestPool:
    """Keep-alive, the connection bound, and connections that went stale."""

    async def test_streams_reuse_one_connection(self, upstream: FakeUpstream) -> None:
        async with open_streaming_http_client(
            max_connections=4, max_keepalive_connections=4, connect_timeout=5
        ) as client:
            for _ in range(3):
                events = await drain(client, upstream.url + "/chat/completions")
                assert events[-1] == b"[DONE]"
            assert client.idle_connections == 1
        assert upstream.total_connections == 1
        assert [r.body for r in upstream.requests] == [json.loads(BODY)] * 3
        with trio.fail_after(5):
            await upstream.wait_until(open_connections=0)

    async def test_no_keepalive_closes_each_connection(self, upstream: FakeUpstream) -> None:
        async with open_streaming_http_client(
            max_connections=4, max_keepalive_connections=0, connect_timeout=5
        ) as client:
            for _ in range(2):
                await drain(client, upstream.url + "/chat/completions")
            assert client.idle_connections == 0
        assert upstream.total_connections == 2

    async def test_more_streams_than_connections_wait_for_one(self, upstream: FakeUpstream) -> None:
        upstream.default = Script(first_token_delay=0.05)
        peak = 0

        async def one() -> None:
            nonlocal peak
            async with client.stream(
                upstream.url + "/chat/completions", BODY.encode(), HEADERS
            ) as response:
                peak = max(peak, upstream.open_connections)
                while await response.receive_events() is not None:
                    pass

        async with open_streaming_http_client(
            max_connections=3, max_keepalive_connections=3, connect_timeout=5
        ) as client:
            with trio.fail_after(20):
                async with trio.open_nursery() as nursery:
                    for _ in range(12):
                        nursery.start_soon(one)
        assert upstream.request_count == 12
        assert peak <= 3
        assert upstream.total_connections == 3

    async def test_an_unread_body_closes_the_connection(self, upstream: FakeUpstream) -> None:
        async with open_streaming_http_client(
            max_connections=2, max_keepalive_connections=2, connect_timeout=5
        ) as client:
            with trio.fail_after(10):
                async with client.stream(
                    upstream.url + "/chat/completions", BODY.encode(), HEADERS
                ) as response:
                    assert await response.receive_events() is not None
            assert client.idle_connections == 0
            with trio.fail_after(5):
                await upstream.wait_until(open_connections=0)

    async def test_a_connection_the_server_closed_is_not_reused(self) -> None:
        """A server that closes after each response (keep-alive allowed by its headers)."""
        answers = 0

        async def handler(stream: trio.SocketStream) -> None:
            nonlocal answers
            request = b""
            while b'"hi"}]}' not in request:
                request += await stream.receive_some(4096)
            answers += 1
            await stream.send_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                b"content-length: 14\r\n\r\ndata: [DONE]\n\n"
            )
            await stream.aclose()

        async with trio.open_nursery() as nursery:
            port = await serve_plain(nursery, handler)
            async with open_streaming_http_client(
                max_connections=2, max_keepalive_connections=2, connect_timeout=5
            ) as client:
                for _ in range(3):
                    assert await drain(client, f"http://127.0.0.1:{port}/v1") == [b"[DONE]"]
                    # Let the server's close reach our socket before the next checkout.
                    await trio.sleep(0.05)
                assert client.connections_opened == 3
            nursery.cancel_scope.cancel()
        assert answers == 3


class TestErrors:
    async def test_refused_connection(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        async with open_streaming_http_client(
            max_connections=1, max_keepalive_connections=1, connect_timeout=5
        ) as client:
            with trio.fail_after(10), pytest.raises(ConnectError):
                await drain(client, f"http://127.0.0.1:{port}/v1")

    async def test_not_an_event_stream(self) -> None:
        async def handler(stream: trio.SocketStream) -> None:
            await stream.receive_some(4096)
            await stream.send_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
            )
            await stream.aclose()

        async with trio.open_nursery() as nursery:
            port = await serve_plain(nursery, handler)
            async with open_streaming_http_client(
                max_connections=1, max_keepalive_connections=1, connect_timeout=5
            ) as client:
                with trio.fail_after(10), pytest.raises(EventStreamError):
                    await drain(client, f"http://127.0.0.1:{port}/v1")
            nursery.cancel_scope.cancel()

    async def test_broken_http_is_a_protocol_error(self) -> None:
        async def handler(stream: trio.SocketStream) -> None:
            await stream.receive_some(4096)
            await stream.send_all(b"NOT HTTP AT ALL\r\n\r\n")
            await stream.aclose()

        async with trio.open_nursery() as nursery:
            port = await serve_plain(nursery, handler)
            async with open_streaming_http_client(
                max_connections=1, max_keepalive_connections=1, connect_timeout=5
            ) as client:
                with trio.fail_after(10), pytest.raises(ProtocolError):
                    await drain(client, f"http://127.0.0.1:{port}/v1")
            nursery.cancel_scope.cancel()


class TestTls:
    """HTTPS upstreams: the configured CA is trusted, any other refused."""

    async def _serve(self, nursery: trio.Nursery, tmp_path: Path) -> tuple[int, Path]:
        certs = generate_dev_certs(tmp_path / "certs")
        server_context = server_ssl_context(certs.server_cert, certs.server_key, alpn=ALPN_HTTP1)

        async def handler(stream: trio.SSLStream[trio.SocketStream]) -> None:
            request = b""
            while b'"hi"}]}' not in request:
                request += await stream.receive_some(4096)
            await stream.send_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                b"transfer-encoding: chunked\r\n\r\ne\r\ndata: [DONE]\n\n\r\n0\r\n\r\n"
            )
            await stream.aclose()

        listeners = await nursery.start(
            partial(trio.serve_ssl_over_tcp, host="127.0.0.1"), handler, 0, server_context
        )
        return listeners[0].transport_listener.socket.getsockname()[1], certs.ca_cert

    async def test_tls_upstream(self, tmp_path: Path) -> None:
        async with trio.open_nursery() as nursery:
            port, ca = await self._serve(nursery, tmp_path)
            async with open_streaming_http_client(
                max_connections=1,
                max_keepalive_connections=1,
                connect_timeout=5,
                ssl_context=client_ssl_context(ca, alpn=ALPN_HTTP1),
            ) as client:
                assert await drain(client, f"https://localhost:{port}/v1") == [b"[DONE]"]
            nursery.cancel_scope.cancel()

    async def test_an_untrusted_certificate_is_refused(self, tmp_path: Path) -> None:
        async with trio.open_nursery() as nursery:
            port, _ = await self._serve(nursery, tmp_path)
            # The default trust (the CA bundle) does not know this test's own CA.
            async with open_streaming_http_client(
                max_connections=1, max_keepalive_connections=1, connect_timeout=5
            ) as client:
                with trio.fail_after(10), pytest.raises(ConnectError):
                    await drain(client, f"https://localhost:{port}/v1")
            nursery.cancel_scope.cancel()
