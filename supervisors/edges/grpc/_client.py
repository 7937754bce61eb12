"""A gRPC client on Trio and ``h2``: ``open_grpc_channel`` and ``GrpcChannel.open_stream``.

Why not grpcio here: its blocking API needs a thread per call (a blocked iterator per
stream), and its asyncio API needs an asyncio loop, which cannot share a thread with Trio;
either way every message crosses threads and the GIL, and neither lets a caller's slow
reading hold back the server by flow control, which is the point of the BFF. This client
runs in the caller's Trio loop, shares the framing code of the gRPC edge, and returns
HTTP/2 window credit only as the caller takes messages (see ``_client_stream.py``).
``docs/bff.md`` has the measurements behind the choice.

Tasks, all in the channel's nursery::

    open_grpc_channel
     └── one ClientConnection.run per connection (at most ``max_connections``)
          ├── _writer      the only task that writes the socket (each write has a deadline)
          ├── _keepalive   PING when calls are open and nothing came for ``keepalive_s``
          └── _read_loop   the only task that reads it; feeds h2, wakes the streams

A connection that is lost fails its calls with UNAVAILABLE; a GOAWAY fails the calls the
server did not take (UNAVAILABLE, safe to retry) and lets the others finish; new calls go to
a new connection either way.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import ssl
from collections.abc import AsyncIterator, Sequence
from typing import Any, TypeVar

import attrs
import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import trio
from google.protobuf.message import Message

from zl_actors import EagerSocketStream

from ._client_errors import CallError, ConnectError
from ._client_stream import ClientStream
from ._config import MAX_HEADER_LIST_BYTES, RECEIVE_CHUNK_BYTES
from ._errors import StatusCode

log = logging.getLogger(__name__)

RequestT = TypeVar("RequestT", bound=Message)
ResponseT = TypeVar("ResponseT", bound=Message)

#: How long closing a socket may take (a TLS close_notify) before it is simply dropped.
_CLOSE_TIMEOUT_S = 1.0
_USER_AGENT = "zl-grpc-client/0.1"


def _timeout_header(seconds: float) -> str:
    """A ``grpc-timeout`` value (at most 8 digits) for ``seconds``, rounded up."""
    for unit, scale in (("m", 1e3), ("S", 1.0), ("M", 1 / 60), ("H", 1 / 3600)):
        value = math.ceil(seconds * scale)
        if value < 100_000_000:
            return f"{max(value, 1)}{unit}"
    return "99999999H"


@attrs.frozen(kw_only=True)
class GrpcClientConfig:
    """Where a channel connects and what it accepts.

    Memory per call is bounded by about ``stream_window_bytes + max_message_bytes``
    inbound; outbound by ``outbound_buffer_bytes`` per connection.
    """

    #: ``host:port`` of the server.
    target: str
    #: TLS context (``supervisors.tls.client_ssl_context(..., alpn=ALPN_H2)``); None is
    #: plaintext HTTP/2 with prior knowledge (development only).
    ssl_context: ssl.SSLContext | None
    #: The TLS server name and ``:authority``; the target's host by default.
    server_hostname: str = ""
    connect_timeout_s: float = attrs.field(default=5.0, validator=attrs.validators.gt(0))
    #: HTTP/2 per-stream receive window: unread response bytes the server may have in flight.
    stream_window_bytes: int = attrs.field(default=65_535, validator=attrs.validators.gt(0))
    connection_window_bytes: int = attrs.field(
        default=16 * 1024 * 1024, validator=attrs.validators.gt(0)
    )
    max_message_bytes: int = attrs.field(default=4 * 1024 * 1024, validator=attrs.validators.gt(0))
    #: Encoded bytes waiting for the socket before ``send()`` waits.
    outbound_buffer_bytes: int = attrs.field(default=256 * 1024, validator=attrs.validators.gt(0))
    #: A server that does not read one write for this long is dropped.
    write_timeout_s: float = attrs.field(default=30.0, validator=attrs.validators.gt(0))
    keepalive_s: float = attrs.field(default=20.0, validator=attrs.validators.gt(0))
    keepalive_ack_timeout_s: float = attrs.field(default=20.0, validator=attrs.validators.gt(0))
    #: Connections one channel opens at most (a new one when the others are full or draining).
    max_connections: int = attrs.field(default=4, validator=attrs.validators.gt(0))

    @property
    def host_and_port(self) -> tuple[str, int]:
        host, sep, port = self.target.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(f"gRPC target must be host:port, got {self.target!r}")
        return host.strip("[]"), int(port)


class ClientConnection:
    """One HTTP/2 connection to the server and the calls on it."""

    def __init__(self, config: GrpcClientConfig, transport: trio.abc.Stream) -> None:
        self.config = config
        host, port = config.host_and_port
        self.authority = f"{config.server_hostname or host}:{port}"
        self.scheme = "https" if config.ssl_context is not None else "http"
        self._transport = transport
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None)
        )
        self.h2.local_settings = h2.settings.Settings(
            client=True,
            initial_values={
                h2.settings.SettingCodes.ENABLE_PUSH: 0,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: config.stream_window_bytes,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: MAX_HEADER_LIST_BYTES,
            },
        )
        self.streams: dict[int, ClientStream[Any, Any]] = {}
        self._outbox = bytearray()
        self._in_flight = 0
        self._wake_writer = trio.Event()
        self._written = trio.Event()
        self._last_read = trio.current_time()
        self._ping: bytes | None = None
        self._ping_sent_at = 0.0
        self.lost = False
        #: A GOAWAY arrived: no new calls here.
        self.draining = False
        self._cancel_scope: trio.CancelScope | None = None

    # --- used by the streams and the channel --------------------------------------------

    @property
    def usable(self) -> bool:
        if self.lost or self.draining:
            return False
        return self.h2.open_outbound_streams < self.h2.remote_settings.max_concurrent_streams

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data:
            self._outbox += data
            self._wake_writer.set()

    async def wait_outbox_room(self) -> None:
        while len(self._outbox) + self._in_flight > self.config.outbound_buffer_bytes:
            if self.lost:
                raise CallError(StatusCode.UNAVAILABLE, "connection lost")
            await self._written.wait()

    def forget(self, stream_id: int) -> None:
        self.streams.pop(stream_id, None)
        if self.draining and not self.streams:
            self._close_soon()

    def open_stream(
        self,
        path: str,
        response_type: type[ResponseT],
        metadata: Sequence[tuple[str, str]],
        deadline: float,
    ) -> ClientStream[Any, ResponseT]:
        stream_id = self.h2.get_next_available_stream_id()
        headers = [
            (":method", "POST"),
            (":scheme", self.scheme),
            (":path", path),
            (":authority", self.authority),
            ("te", "trailers"),
            ("content-type", "application/grpc"),
            ("user-agent", _USER_AGENT),
        ]
        if deadline != math.inf:
            headers.append(("grpc-timeout", _timeout_header(deadline - trio.current_time())))
        headers.extend((name.lower(), value) for name, value in metadata)
        self.h2.send_headers(stream_id, headers)
        stream: ClientStream[Any, ResponseT] = ClientStream(
            connection=self,
            stream_id=stream_id,
            path=path,
            response_type=response_type,
            deadline=deadline,
            max_message_bytes=self.config.max_message_bytes,
        )
        self.streams[stream_id] = stream
        self.flush()
        return stream

    # --- lifecycle -----------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve the connection's calls until it is lost, drained, or cancelled."""
        try:
            async with trio.open_nursery() as nursery:
                self._cancel_scope = nursery.cancel_scope
                self.h2.initiate_connection()
                extra = self.config.connection_window_bytes - self.h2.inbound_flow_control_window
                if extra > 0:
                    self.h2.increment_flow_control_window(extra)
                self.flush()
                nursery.start_soon(self._writer)
                nursery.start_soon(self._keepalive)
                task_status.started()
                await self._read_loop()
                nursery.cancel_scope.cancel()
        finally:
            self._lose("connection lost")
            with trio.move_on_after(_CLOSE_TIMEOUT_S, shield=True):
                await self._transport.aclose()

    def close(self) -> None:
        """Drop the connection now: its calls fail with UNAVAILABLE."""
        self._lose("connection closed by the client")
        if self._cancel_scope is not None:
            self._cancel_scope.cancel()

    def _close_soon(self) -> None:
        with contextlib.suppress(h2.exceptions.H2Error):
            self.h2.close_connection()
        self.flush()
        self.lost = True
        # The writer sends the GOAWAY, then ends the connection.

    def _lose(self, reason: str) -> None:
        self.lost = True
        for stream in list(self.streams.values()):
            stream.on_lost(reason)
        self.streams.clear()
        self._written.set()

    # --- the socket ----------------------------------------------------------------------

    async def _writer(self) -> None:
        while True:
            if self._outbox:
                data = bytes(self._outbox)
                self._outbox.clear()
                self._in_flight = len(data)
                try:
                    with trio.move_on_after(self.config.write_timeout_s) as write_deadline:
                        await self._transport.send_all(data)
                    written = not write_deadline.cancelled_caught
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    written = False
                finally:
                    self._in_flight = 0
                    self._written.set()
                    self._written = trio.Event()
                if not written:
                    log.info("gRPC client to %s: write failed or timed out", self.authority)
                    self.close()
                    return
            elif self.lost:
                self.close()
                return
            else:
                await self._wake_writer.wait()
                self._wake_writer = trio.Event()

    async def _keepalive(self) -> None:
        interval = self.config.keepalive_s
        while True:
            await trio.sleep(interval / 2)
            now = trio.current_time()
            if self._ping is not None:
                if now - self._ping_sent_at >= self.config.keepalive_ack_timeout_s:
                    log.info("gRPC client to %s: PING not answered; dropping", self.authority)
                    self.close()
                    return
                continue
            if self.streams and now - self._last_read >= interval:
                self._ping = os.urandom(8)
                self._ping_sent_at = now
                self.h2.ping(self._ping)
                self.flush()

    async def _read_loop(self) -> None:
        while True:
            try:
                data = await self._transport.receive_some(RECEIVE_CHUNK_BYTES)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return
            if not data:
                return
            self._last_read = trio.current_time()
            try:
                events = self.h2.receive_data(data)
            except h2.exceptions.ProtocolError as error:
                log.info("gRPC client to %s: protocol error: %s", self.authority, error)
                return
            for event in events:
                self._on_event(event)
            window = self.h2.inbound_flow_control_window
            if window < self.config.connection_window_bytes // 2:
                self.h2.increment_flow_control_window(self.config.connection_window_bytes - window)
            self.flush()

    def _on_event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.DataReceived):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.on_data(event.data, event.flow_controlled_length)
            elif event.flow_controlled_length:
                # A call we already left: its bytes still count against the connection.
                with contextlib.suppress(h2.exceptions.H2Error):
                    self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.ResponseReceived):
            if (stream := self.streams.get(event.stream_id)) is not None:
                stream.on_headers(list(event.headers), ended=event.stream_ended is not None)
        elif isinstance(event, h2.events.TrailersReceived):
            if (stream := self.streams.get(event.stream_id)) is not None:
                stream.on_trailers(dict(event.headers))
        elif isinstance(event, h2.events.StreamEnded):
            if (stream := self.streams.get(event.stream_id)) is not None:
                stream.on_remote_ended()
        elif isinstance(event, h2.events.StreamReset):
            if (stream := self.streams.get(event.stream_id)) is not None:
                stream.on_reset(event.error_code)
        elif isinstance(event, h2.events.WindowUpdated):
            if event.stream_id == 0:
                for stream in self.streams.values():
                    stream.on_window_opened()
            elif (stream := self.streams.get(event.stream_id)) is not None:
                stream.on_window_opened()
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            for stream in self.streams.values():
                stream.on_window_opened()
        elif isinstance(event, h2.events.PingAckReceived):
            if event.ping_data == self._ping:
                self._ping = None
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.draining = True
            last = event.last_stream_id if event.last_stream_id is not None else 0
            for stream_id, stream in list(self.streams.items()):
                if stream_id > last:
                    stream.on_lost("the server did not take the call (GOAWAY); retry is safe")
            if not self.streams:
                self._close_soon()


class GrpcChannel:
    """Calls to one server over up to ``max_connections`` HTTP/2 connections."""

    def __init__(self, config: GrpcClientConfig, nursery: trio.Nursery) -> None:
        self.config = config
        self._nursery = nursery
        self._connections: list[ClientConnection] = []
        self._connect_lock = trio.Lock()

    @property
    def connections(self) -> int:
        return sum(1 for c in self._connections if not c.lost)

    async def open_stream(
        self,
        path: str,
        response_type: type[ResponseT],
        *,
        metadata: Sequence[tuple[str, str]] = (),
        timeout_s: float | None = None,
    ) -> ClientStream[Any, ResponseT]:
        """Start a call to ``path``; its responses decode as ``response_type``.

        Args:
            path: ``/package.Service/Method``.
            response_type: the protobuf class of the responses.
            metadata: custom metadata (lower-case ASCII names; values without CR/LF).
            timeout_s: the call's deadline from now (sent as ``grpc-timeout``); None: none.

        Raises:
            ConnectError: no connection could be made within ``connect_timeout_s``.
            CallError: (UNAVAILABLE) every connection is full and no more may be opened.
        """
        deadline = math.inf if timeout_s is None else trio.current_time() + timeout_s
        connection = await self._usable_connection()
        return connection.open_stream(path, response_type, metadata, deadline)

    async def unary(
        self,
        path: str,
        request: Message,
        response_type: type[ResponseT],
        *,
        metadata: Sequence[tuple[str, str]] = (),
        timeout_s: float,
    ) -> ResponseT:
        """One request, one response.

        Raises:
            ConnectError: as for ``open_stream``.
            CallError: the call's status was not OK, or it answered with no message.
        """
        stream = await self.open_stream(path, response_type, metadata=metadata, timeout_s=timeout_s)
        try:
            await stream.send(request)
            stream.close_send()
            try:
                response = await stream.receive()
            except trio.EndOfChannel:
                raise CallError(StatusCode.INTERNAL, "no response message") from None
            with contextlib.suppress(trio.EndOfChannel):
                await stream.receive()
            return response
        finally:
            stream.cancel()

    def close(self) -> None:
        """Drop every connection (their calls fail with UNAVAILABLE)."""
        for connection in self._connections:
            connection.close()

    async def _usable_connection(self) -> ClientConnection:
        for connection in self._connections:
            if connection.usable:
                return connection
        async with self._connect_lock:
            self._connections = [c for c in self._connections if not c.lost]
            for connection in self._connections:
                if connection.usable:
                    return connection
            if len(self._connections) >= self.config.max_connections:
                raise CallError(
                    StatusCode.UNAVAILABLE,
                    f"all {self.config.max_connections} connections to {self.config.target} "
                    "are full",
                )
            connection = await self._connect()
            self._connections.append(connection)
            return connection

    async def _connect(self) -> ClientConnection:
        config = self.config
        host, port = config.host_and_port
        transport: trio.abc.Stream
        try:
            with trio.fail_after(config.connect_timeout_s):
                tcp = await trio.open_tcp_stream(host, port)
                transport = EagerSocketStream.from_trio(tcp)
                if config.ssl_context is not None:
                    tls = trio.SSLStream(
                        transport,
                        config.ssl_context,
                        server_hostname=config.server_hostname or host,
                    )
                    transport = tls
                    await tls.do_handshake()
                    if tls.selected_alpn_protocol() != "h2":
                        await trio.aclose_forcefully(tls)
                        raise ConnectError(config.target, "the server did not agree to HTTP/2")
        except trio.TooSlowError:
            raise ConnectError(
                config.target, f"no connection within {config.connect_timeout_s} s"
            ) from None
        except (OSError, trio.BrokenResourceError) as error:
            raise ConnectError(config.target, _reason(error)) from None
        connection = ClientConnection(config, transport)
        await self._nursery.start(self._run_connection, connection)
        return connection

    async def _run_connection(
        self, connection: ClientConnection, *, task_status: trio.TaskStatus[None]
    ) -> None:
        try:
            await connection.run(task_status=task_status)
        finally:
            with contextlib.suppress(ValueError):
                self._connections.remove(connection)


def _reason(error: BaseException) -> str:
    cause = error.__cause__ or error.__context__
    if isinstance(error, trio.BrokenResourceError) and isinstance(cause, ssl.SSLError):
        return f"TLS handshake failed: {cause.reason or cause}"
    if isinstance(error, OSError):
        return error.strerror or str(error)
    return str(error) or type(error).__name__


@contextlib.asynccontextmanager
async def open_grpc_channel(config: GrpcClientConfig) -> AsyncIterator[GrpcChannel]:
    """A channel for the block; leaving it drops its connections.

    Connections are made on the first call (and again after one is lost), not here, so a
    server that is down does not stop the caller from starting.
    """
    config.host_and_port  # noqa: B018 - raises ValueError early on a malformed target
    async with trio.open_nursery() as nursery:
        channel = GrpcChannel(config, nursery)
        try:
            yield channel
        finally:
            channel.close()
            nursery.cancel_scope.cancel()
