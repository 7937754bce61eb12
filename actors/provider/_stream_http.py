"""The adapter's streaming leg: HTTP/1.1 on ``h11`` under a small keep-alive pool of our own.

Why not httpx here: ``python -m bench.adapter_cpu`` measured httpx + httpcore + httpx-sse at
2.1 to 2.6 times the CPU of a bare client per streamed completion. Per chunk, httpx runs a
stack of nested async generators (transport stream, byte decoder, text decoder, line decoder,
SSE parser) and httpcore takes locks and scans its pool for every request; the event loop
pays for each layer on every token. This module keeps what no library gives in that shape:

* **One read, all its events.** :meth:`StreamingResponse.receive_events` reads the socket once
  and returns every complete server-sent event in it, so a busy loop that finds three chunks
  waiting handles them in one step, with no generator per layer.
* **The chunked body of an event stream decoded by hand** (:class:`ChunkedDecoder`): h11
  parses the response head (and every other body), but its per-chunk event machinery was a
  third of the adapter's CPU in a profile of ``bench.adapter_cpu`` (an LLM stream is
  hundreds of tiny chunks); the decoder here cuts the same framing with ``bytes.find``,
  strictly (hex sizes only, bounded lines and trailers) and hands the payload on in one piece.
* **An SSE splitter on bytes** (:class:`SseSplitter`): lines and events cut with
  ``bytes.split``, the ``data`` of each event handed over as bytes, so the chunk decoder
  (``msgspec``) reads it without a text decode in between. It keeps the parts of the SSE
  format an upstream can use (``\\r\\n``, ``\\r`` or ``\\n`` line ends, multi-line data,
  comments, other fields ignored) and bounds what it buffers.
* **A pool without a scan.** Idle connections wait in a LIFO list, a free connection slot is
  taken without a scheduling point (``Semaphore.acquire_nowait``), and a connection is
  reused only when it is quiet (``poll``: a closed or chattering socket is dropped) and not
  past ``keepalive_expiry``. Request head and body leave in one ``send``.
* **Sockets that yield only when they wait** (``zl_actors.EagerSocketStream``, under TLS too).

h11 does the HTTP/1.1 parsing and checking itself (status line, headers, chunked and
length-delimited bodies, keep-alive rules); httpx stays where a call is not on the token
path (loading the CA bundle once, the CLI's HTTP calls).

Errors (the adapter maps them to ``ProviderError``)::

    HttpError
     ├── ConnectTimeout   TCP + TLS did not finish within ``connect_timeout``
     ├── ConnectError     refused, unreachable, name not resolved, TLS refused
     ├── ReadError        the connection broke or closed while reading
     ├── WriteError       the connection broke while writing the request
     ├── ProtocolError    the upstream broke HTTP/1.1 (h11 refused what it sent)
     └── EventStreamError the body is not an event stream (content type, an oversized event)
"""

from __future__ import annotations

import select
import ssl
import urllib.parse
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Final

import attrs
import h11
import trio

from zl_actors import EagerSocketStream

#: A read asks the socket for this much at most.
RECEIVE_BYTES: Final = 65_536
#: The largest server-sent event (its ``data`` lines together) the splitter buffers.
MAX_EVENT_BYTES: Final = 1024 * 1024
#: The largest response head h11 buffers (status line and headers).
MAX_HEAD_BYTES: Final = 64 * 1024
#: The longest chunk-size line (with extensions) or trailer line of a chunked body.
MAX_CHUNK_LINE_BYTES: Final = 4096
#: The most trailer lines after a chunked body's last chunk.
MAX_TRAILER_LINES: Final = 64
_HEX_DIGITS: Final = frozenset(b"0123456789abcdefABCDEF")
#: An idle kept-alive connection older than this is closed instead of reused (httpx's default).
KEEPALIVE_EXPIRY_S: Final = 5.0
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


class HttpError(Exception):
    """The root of this module's errors (drawn in the module docstring)."""


class ConnectTimeout(HttpError):
    pass


class ConnectError(HttpError):
    pass


class ReadError(HttpError):
    pass


class WriteError(HttpError):
    pass


class ProtocolError(HttpError):
    pass


class EventStreamError(HttpError):
    pass


@attrs.frozen
class Origin:
    """Where requests go: scheme, host and port."""

    scheme: str
    host: str
    port: int

    @property
    def authority(self) -> str:
        default = _DEFAULT_PORTS[self.scheme]
        return self.host if self.port == default else f"{self.host}:{self.port}"


def split_url(url: str) -> tuple[Origin, str]:
    """The origin and the request target (path and query) of an ``http(s)://`` URL.

    Raises:
        ValueError: another scheme, or no host.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"not an http:// or https:// URL: {url!r}")
    target = parts.path or "/"
    if parts.query:
        target = f"{target}?{parts.query}"
    return Origin(parts.scheme, parts.hostname, parts.port or _DEFAULT_PORTS[parts.scheme]), target


class SseSplitter:
    """Cuts a server-sent event stream (bytes, in any pieces) into each event's ``data``.

    Follows the event-stream format of the HTML standard as far as a client of a chat
    completion needs: lines end with CRLF, LF or CR; ``data:`` lines (one optional space
    after the colon) of one event are joined with LF; a blank line ends the event; comments
    (``:``) and other fields (``event``, ``id``, ``retry``) are ignored; an event without
    data is not dispatched.

    Args:
        max_event_bytes: the most an unfinished event (or line) may hold before
            :meth:`feed` raises.
    """

    __slots__ = ("_data", "_data_bytes", "_max", "_pending")

    def __init__(self, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self._max = max_event_bytes
        self._pending = b""  # the last, unfinished line
        self._data: list[bytes] = []  # the data lines of the event in progress
        self._data_bytes = 0

    def feed(self, chunk: bytes) -> list[bytes]:
        """Take the next bytes of the stream; return the data of every event they complete.

        Raises:
            EventStreamError: an event or a line grew past ``max_event_bytes``.
        """
        buffer = self._pending + chunk if self._pending else chunk
        if b"\r" in buffer:
            # A CR at the very end may be the first half of a CRLF: keep it for later.
            held = buffer.endswith(b"\r")
            if held:
                buffer = buffer[:-1]
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            if held:
                buffer += b"\r"
        *lines, pending = buffer.split(b"\n")
        if len(pending) > self._max:
            raise EventStreamError(f"an event-stream line is over {self._max} bytes")
        self._pending = pending
        events: list[bytes] = []
        for line in lines:
            if not line:
                if self._data:
                    events.append(self._data[0] if len(self._data) == 1 else b"\n".join(self._data))
                    self._data = []
                    self._data_bytes = 0
            elif line.startswith(b"data:"):
                value = line[6:] if line.startswith(b"data: ") else line[5:]
                self._data_bytes += len(value) + 1
                if self._data_bytes > self._max:
                    raise EventStreamError(f"an event is over {self._max} bytes")
                self._data.append(value)
            elif line == b"data":
                self._data.append(b"")
            # Anything else is a comment or a field a completion stream does not use.
        return events


class ChunkedDecoder:
    """Decodes an HTTP/1.1 chunked body (RFC 9112 section 7.1) fed in pieces of any size.

    Attributes:
        done: the last chunk and the trailer section have been read.
        leftover: bytes that came after the body (a well-behaved server sends none).
    """

    __slots__ = ("_buffer", "_crlf", "_left", "_trailers", "done", "leftover")

    def __init__(self) -> None:
        self._buffer = b""
        self._left = 0  # bytes of the current chunk's data still to come
        self._crlf = False  # the CRLF after a chunk's data is due
        self._trailers = -1  # trailer lines read so far; -1 before the last chunk
        self.done = False
        self.leftover = b""

    def feed(self, data: bytes) -> bytes:
        """Take the next bytes of the body; return the payload they complete.

        Raises:
            ProtocolError: the body breaks the chunked framing (or its bounds).
        """
        buffer = self._buffer + data if self._buffer else data
        size = len(buffer)
        payload: list[bytes] = []
        position = 0
        while position < size and not self.done:
            if self._left:
                end = min(size, position + self._left)
                payload.append(buffer[position:end])
                self._left -= end - position
                position = end
                self._crlf = not self._left
                continue
            if self._crlf:
                if size - position < 2:
                    break
                if buffer[position : position + 2] != b"\r\n":
                    raise ProtocolError("a chunk's data is not followed by CRLF")
                position += 2
                self._crlf = False
                continue
            end = buffer.find(b"\r\n", position)
            if end < 0:
                break
            line = buffer[position:end]
            position = end + 2
            if len(line) > MAX_CHUNK_LINE_BYTES:
                raise ProtocolError("a chunk-size or trailer line is too long")
            if self._trailers >= 0:
                if not line:
                    self.done = True
                else:
                    self._trailers += 1
                    if self._trailers > MAX_TRAILER_LINES:
                        raise ProtocolError("too many trailer lines")
                continue
            digits = line.split(b";", 1)[0].rstrip(b" \t")
            if not digits or len(digits) > 16 or not _HEX_DIGITS.issuperset(digits):
                raise ProtocolError(f"bad chunk size {digits[:20]!r}")
            chunk = int(digits, 16)
            if chunk:
                self._left = chunk
            else:
                self._trailers = 0
        rest = buffer[position:]
        if self.done:
            self.leftover, self._buffer = rest, b""
        else:
            if len(rest) > MAX_CHUNK_LINE_BYTES and not self._left:
                raise ProtocolError("a chunk-size or trailer line is too long")
            self._buffer = rest
        return payload[0] if len(payload) == 1 else b"".join(payload)


def _quiet(sock: object) -> bool:
    """Whether an idle connection's socket has nothing to read (so it is still usable).

    An idle HTTP/1.1 connection has no reason to be readable: readable means the server
    closed it (or sent junk). ``poll``, not ``select``: a busy host's descriptors go past
    select's limit of 1024.
    """
    poller = select.poll()
    poller.register(sock, select.POLLIN)  # type: ignore[arg-type]
    return not poller.poll(0)


class _Connection:
    """One HTTP/1.1 connection: the transport and its h11 state."""

    __slots__ = ("h11", "idle_since", "stream")

    def __init__(self, stream: EagerSocketStream | trio.SSLStream[EagerSocketStream]) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_BYTES)
        self.idle_since = 0.0

    @property
    def socket(self) -> object:
        stream = self.stream
        raw = stream.transport_stream if isinstance(stream, trio.SSLStream) else stream
        return raw.socket

    async def send(self, data: bytes) -> None:
        try:
            await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise WriteError(str(exc) or type(exc).__name__) from None

    async def receive(self) -> bytes:
        try:
            return bytes(await self.stream.receive_some(RECEIVE_BYTES))
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise ReadError(str(exc) or type(exc).__name__) from None

    async def next_event(self) -> h11.Event | type[h11.PAUSED] | type[h11.NEED_DATA]:
        """h11's next event, reading the socket as often as it needs."""
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as exc:
                raise ProtocolError(str(exc)) from None
            if event is not h11.NEED_DATA:
                return event
            data = await self.receive()
            try:
                self.h11.receive_data(data)
            except h11.RemoteProtocolError as exc:
                raise ProtocolError(str(exc)) from None

    def close_now(self) -> None:
        """Close the socket at once (no TLS close_notify: the connection is being dropped)."""
        stream = self.stream
        raw = stream.transport_stream if isinstance(stream, trio.SSLStream) else stream
        raw.close_now()


class StreamingResponse:
    """The response to one request, read as it arrives.

    Attributes:
        status_code: the HTTP status.
        headers: the response headers, names in lower case (a repeated header: the last).
        complete: the whole body has been read.
    """

    def __init__(self, connection: _Connection, head: h11.Response) -> None:
        self._connection = connection
        self.status_code: int = head.status_code
        self.headers: dict[str, str] = {
            name.decode("latin-1"): value.decode("latin-1") for name, value in head.headers
        }
        self.complete = False
        self._splitter: SseSplitter | None = None
        self._chunked: ChunkedDecoder | None = None
        connection_header = self.headers.get("connection", "").lower()
        #: Whether the connection may carry another request once this body is read.
        self.keep_alive = head.http_version == b"1.1" and "close" not in connection_header

    def _start_event_stream(self) -> list[bytes]:
        """Check the content type and take over a chunked body; the events already here."""
        content_type = self.headers.get("content-type", "")
        if content_type.partition(";")[0].strip().lower() != "text/event-stream":
            raise EventStreamError(
                f"expected content type text/event-stream, got {content_type[:60]!r}"
            )
        self._splitter = SseSplitter()
        if self.headers.get("transfer-encoding", "").strip().lower() == "chunked":
            # From here on the body is ours (module docstring); h11 has read the head only.
            self._chunked = ChunkedDecoder()
            pending, _ = self._connection.h11.trailing_data
            if pending:
                return self._decode(self._chunked, self._splitter, pending)
        return []

    def _decode(self, chunked: ChunkedDecoder, splitter: SseSplitter, data: bytes) -> list[bytes]:
        payload = chunked.feed(data)
        events = splitter.feed(payload) if payload else []
        if chunked.done:
            self.complete = True
            if chunked.leftover:
                self.keep_alive = False  # bytes after the body: the connection is not trusted
        return events

    async def receive_events(self) -> list[bytes] | None:
        """The ``data`` of every event that the next read completes; None at the body's end.

        An empty list means the read brought no complete event. Each call reads the socket
        at most once, so the caller's deadlines see every wait.

        Raises:
            EventStreamError: the response is not ``text/event-stream``, or an event is too
                large.
            ReadError, ProtocolError: the connection broke, or the upstream broke HTTP.
        """
        if self._splitter is None:
            events = self._start_event_stream()
            if events:
                return events
        if self.complete:
            return None
        chunked, splitter = self._chunked, self._splitter
        if chunked is None or splitter is None:
            return await self._receive_events_h11()
        data = await self._connection.receive()
        if not data:
            raise ReadError("the upstream closed the connection inside the body")
        events = self._decode(chunked, splitter, data)
        return None if not events and self.complete else events

    async def _receive_events_h11(self) -> list[bytes] | None:
        # A body that is not chunked (content-length, or until close): h11 frames it.
        assert self._splitter is not None
        events: list[bytes] = []
        connection = self._connection
        while True:
            try:
                event = connection.h11.next_event()
            except h11.RemoteProtocolError as exc:
                raise ProtocolError(str(exc)) from None
            if type(event) is h11.Data:
                events += self._splitter.feed(bytes(event.data))
                continue
            if event is h11.NEED_DATA:
                if events:
                    return events
                data = await connection.receive()
                try:
                    connection.h11.receive_data(data)
                except h11.RemoteProtocolError as exc:
                    raise ProtocolError(str(exc)) from None
                continue  # a cut (b"") is reported by h11 as an error on the next call
            if type(event) is h11.EndOfMessage:
                self.complete = True
                return events or None
            raise ProtocolError(f"unexpected {type(event).__name__} in the response body")

    async def read(self, limit: int) -> bytes:
        """Up to ``limit`` bytes of the body (for quoting an error); the rest is not read.

        Raises:
            ReadError, ProtocolError: as :meth:`receive_events`.
        """
        body = bytearray()
        while len(body) < limit:
            event = await self._connection.next_event()
            if type(event) is h11.Data:
                body += event.data
            elif type(event) is h11.EndOfMessage:
                self.complete = True
                break
            else:
                raise ProtocolError(f"unexpected {type(event).__name__} in the response body")
        return bytes(body[:limit])


class StreamingHttpClient:
    """Requests over kept-alive HTTP/1.1 connections to any number of origins.

    Made by :func:`open_streaming_http_client`, which closes every idle connection on the way
    out (a connection in use is closed by its request).

    Args:
        max_connections: connections open at once; a request waits for a free one.
        max_keepalive_connections: idle connections kept for reuse (over all origins).
        connect_timeout: seconds for TCP and TLS.
        ssl_context: for ``https://`` origins.
        keepalive_expiry: seconds an idle connection may wait before it is closed instead
            of reused.
    """

    def __init__(
        self,
        *,
        max_connections: int,
        max_keepalive_connections: int,
        connect_timeout: float,
        ssl_context: ssl.SSLContext,
        keepalive_expiry: float = KEEPALIVE_EXPIRY_S,
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self._slots = trio.Semaphore(max_connections)
        self._max_keepalive = max_keepalive_connections
        self._connect_timeout = connect_timeout
        self._expiry = keepalive_expiry
        self.ssl_context = ssl_context
        self._idle: dict[Origin, deque[_Connection]] = {}
        self._idle_count = 0
        #: Connections opened so far (for tests and metrics).
        self.connections_opened = 0

    @property
    def idle_connections(self) -> int:
        return self._idle_count

    @asynccontextmanager
    async def stream(
        self, url: str, body: bytes, headers: Mapping[str, str]
    ) -> AsyncIterator[StreamingResponse]:
        """POST ``body`` to ``url`` and yield the response once its head has arrived.

        The connection goes back to the pool when the body was read to its end and both
        sides allow keep-alive; otherwise (an error, a cancellation, a body left unread) it
        is closed at once.

        Raises:
            ConnectTimeout, ConnectError: no connection could be made.
            WriteError, ReadError, ProtocolError: the request or the response head failed.

        Cancellation: the socket is closed before the cancellation propagates.
        """
        origin, target = split_url(url)
        try:
            self._slots.acquire_nowait()
        except trio.WouldBlock:
            await self._slots.acquire()
        try:
            connection = self._checkout(origin) or await self._connect(origin)
            reusable = False
            try:
                request = h11.Request(
                    method="POST",
                    target=target,
                    headers=[
                        ("host", origin.authority),
                        ("content-length", str(len(body))),
                        *headers.items(),
                    ],
                )
                h = connection.h11
                await connection.send(
                    h.send(request) + h.send(h11.Data(data=body)) + h.send(h11.EndOfMessage())
                )
                head = await connection.next_event()
                while type(head) is h11.InformationalResponse:
                    head = await connection.next_event()
                if type(head) is not h11.Response:
                    raise ProtocolError(f"expected a response, got {type(head).__name__}")
                response = StreamingResponse(connection, head)
                yield response
                reusable = response.complete and self._next_cycle(connection, response)
            finally:
                if reusable:
                    self._checkin(origin, connection)
                else:
                    connection.close_now()
        finally:
            self._slots.release()

    def _next_cycle(self, connection: _Connection, response: StreamingResponse) -> bool:
        if response._chunked is not None:
            # h11 saw only the head; the body was decoded here. A fresh state machine takes
            # the next request if both sides allow keep-alive.
            if not response.keep_alive:
                return False
            connection.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_BYTES)
            return True
        h = connection.h11
        if h.our_state is not h11.DONE or h.their_state is not h11.DONE:
            return False
        try:
            h.start_next_cycle()
        except h11.LocalProtocolError:
            return False
        return True

    def _checkout(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        now = trio.current_time()
        while idle:
            connection = idle.pop()
            self._idle_count -= 1
            if now - connection.idle_since < self._expiry and _quiet(connection.socket):
                return connection
            connection.close_now()
        return None

    def _checkin(self, origin: Origin, connection: _Connection) -> None:
        if self._idle_count >= self._max_keepalive:
            connection.close_now()
            return
        connection.idle_since = trio.current_time()
        self._idle.setdefault(origin, deque()).append(connection)
        self._idle_count += 1

    async def _connect(self, origin: Origin) -> _Connection:
        try:
            with trio.fail_after(self._connect_timeout):
                # Trio's connect: address resolution, happy eyeballs, TCP_NODELAY.
                tcp = await trio.open_tcp_stream(origin.host, origin.port)
                eager = EagerSocketStream.from_trio(tcp)
                if origin.scheme != "https":
                    self.connections_opened += 1
                    return _Connection(eager)
                tls = trio.SSLStream(
                    eager,
                    ssl_context=self.ssl_context,
                    server_hostname=origin.host,
                    https_compatible=True,
                )
                try:
                    await tls.do_handshake()
                except BaseException:
                    await trio.aclose_forcefully(eager)
                    raise
                self.connections_opened += 1
                return _Connection(tls)
        except trio.TooSlowError:
            raise ConnectTimeout(f"connecting to {origin.authority} timed out") from None
        except (OSError, trio.BrokenResourceError) as exc:
            raise ConnectError(str(exc) or type(exc).__name__) from None

    def close_idle(self) -> None:
        """Close every idle connection now."""
        for idle in self._idle.values():
            while idle:
                idle.pop().close_now()
        self._idle_count = 0


def default_ssl_context() -> ssl.SSLContext:
    """The system's (or certifi's) CA bundle with hostname checks, ALPN ``http/1.1``.

    httpx's own default trust, loaded once: it takes ~25 ms of the calling thread.
    """
    import httpx  # only here: loading trust is not on the token path

    context = httpx.create_ssl_context()
    context.set_alpn_protocols(["http/1.1"])
    return context


@asynccontextmanager
async def open_streaming_http_client(
    *,
    max_connections: int,
    max_keepalive_connections: int,
    connect_timeout: float,
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[StreamingHttpClient]:
    """A :class:`StreamingHttpClient`; its idle connections are closed on the way out.

    Args:
        ssl_context: trust for ``https://`` upstreams (default: :func:`default_ssl_context`).
    """
    client = StreamingHttpClient(
        max_connections=max_connections,
        max_keepalive_connections=max_keepalive_connections,
        connect_timeout=connect_timeout,
        ssl_context=ssl_context if ssl_context is not None else default_ssl_context(),
    )
    try:
        yield client
    finally:
        client.close_idle()
