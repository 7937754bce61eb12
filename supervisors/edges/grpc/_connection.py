"""One client connection: the HTTP/2 state machine (``h2``), a reader, a writer, and handlers.

Tasks, all in one nursery, so that losing the connection cancels everything on it::

    Connection.serve
     ├── _writer         the only task that writes the socket (each write has a deadline)
     ├── _read_loop      the only task that reads it; feeds h2 and turns events into calls
     └── one _run_call per stream: the method's handler inside the stream's cancel scope

Flow control (what bounds memory):

- per stream, window credit is returned only when the handler has read every complete
  message that is queued (``ServerStream._return_credit``), so a client that floods a slow
  handler stalls after ``stream_window_bytes``; a partial message is credited as it arrives
  so one message up to ``max_message_bytes`` can always get through; a message over that
  limit is skipped as it arrives, never held;
- the connection window is topped up as data arrives (streams, not the connection, are the
  bound), which also returns credit that h2 consumed for frames on streams already reset;
- ``send()`` waits for the client's window and, past ``outbound_buffer_bytes`` of encoded
  bytes not yet written, for the socket (a slow reader back-pressures the handler).
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import trio

from ._abuse import FrameBudget
from ._config import (
    MAX_HEADER_LIST_BYTES,
    MAX_INBOUND_FRAME_BYTES,
    RECEIVE_CHUNK_BYTES,
    GrpcServerConfig,
)
from ._errors import EndOfStream, RpcError, StatusCode, StreamReset
from ._service import Method
from ._stream import ServerStream
from ._wire import decode_metadata, parse_timeout, trailers

log = logging.getLogger(__name__)

#: Largest HTTP/2 stream id: a first GOAWAY with it announces a drain without refusing streams.
_MAX_STREAM_ID = 2**31 - 1
#: HTTP/2 frame type of GOAWAY.
_GOAWAY_TYPE = 0x7
#: How long closing a socket may take (a TLS close_notify) before it is simply dropped.
_CLOSE_TIMEOUT_S = 1.0


class Connection:
    """Serves the gRPC calls of one accepted connection until it closes.

    Args:
        transport: the accepted stream (TLS already negotiated by the caller).
        peer: the client's ``host:port``, for logs and ``ServerStream.peer``.
        methods: method path -> method.
        config: the server's configuration.
    """

    def __init__(
        self,
        *,
        transport: trio.abc.Stream,
        peer: str,
        methods: dict[str, Method],
        config: GrpcServerConfig,
    ) -> None:
        self.config = config
        self.peer = peer
        self._transport = transport
        self._methods = methods
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding=None)
        )
        self.h2.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: config.max_concurrent_streams,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: config.stream_window_bytes,
                h2.settings.SettingCodes.MAX_FRAME_SIZE: MAX_INBOUND_FRAME_BYTES,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: MAX_HEADER_LIST_BYTES,
            },
        )
        self.streams: dict[int, ServerStream[Any, Any]] = {}
        self._outbox = bytearray()
        self._in_flight = 0
        self._wake_writer = trio.Event()
        self._written = trio.Event()
        self._draining = False
        self._drain_requested = False
        self._closing = False
        self._nursery: trio.Nursery | None = None
        self._last_write = trio.current_time()
        self._ping_outstanding: bytes | None = None
        self._ping_sent_at = 0.0
        # Frame accounting (see ``_abuse.py``): why the connection is being cut off, if it is.
        now = trio.current_time()
        self._resets = FrameBudget(config.max_resets_per_window, config.abuse_window_s, now)
        self._control = FrameBudget(
            config.max_control_frames_per_window, config.abuse_window_s, now
        )
        self._calm_reason: str | None = None
        #: Since when no call has been open (the idle timeout counts from here).
        self._idle_since = now

    # --- used by ServerStream ---------------------------------------------------------

    def flush(self) -> None:
        """Move what h2 has to send into the outbox and wake the writer (never blocks)."""
        data = self.h2.data_to_send()
        if data:
            self._outbox += data
            self._wake_writer.set()

    def send_frame(self, header: bytes, payload: bytes) -> None:
        """Queue one frame written outside h2, after whatever h2 has queued (never blocks)."""
        self.flush()
        outbox = self._outbox
        outbox += header
        outbox += payload
        self._wake_writer.set()

    def outbox_has_room(self) -> bool:
        """No more than ``outbound_buffer_bytes`` are waiting for the socket."""
        return len(self._outbox) + self._in_flight <= self.config.outbound_buffer_bytes

    async def wait_outbox_room(self) -> None:
        """Wait while more than ``outbound_buffer_bytes`` are waiting for the socket."""
        while not self.outbox_has_room():
            if self._nursery is None or self._nursery.cancel_scope.cancel_called:
                raise StreamReset("connection lost")
            await self._written.wait()

    # --- lifecycle -------------------------------------------------------------------

    async def serve(self) -> None:
        """Run the connection until the client leaves, it fails, or a drain completes.

        Cancellation (server stop) cancels every handler on the connection at once.
        """
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self.h2.initiate_connection()
                extra = self.config.connection_window_bytes - self.h2.inbound_flow_control_window
                if extra > 0:
                    self.h2.increment_flow_control_window(extra)
                self.flush()
                if self._drain_requested:
                    self.drain()
                nursery.start_soon(self._writer)
                nursery.start_soon(self._keepalive)
                await self._read_loop()
                # The client is gone (or sent garbage, or the drain finished): stop everything.
                self._lose("lost")
        finally:
            with trio.move_on_after(_CLOSE_TIMEOUT_S) as scope:
                scope.shield = True
                await self._transport.aclose()

    def drain(self) -> None:
        """Begin a graceful close: announce GOAWAY, refuse new streams, close when idle."""
        if self._nursery is None:
            self._drain_requested = True  # not started yet: drain right after our SETTINGS
            return
        if self._draining:
            return
        self._draining = True
        # A hand-made GOAWAY: h2's own close_connection() would forbid sending the trailers
        # of the streams we are letting finish.
        self._outbox += _goaway_frame(_MAX_STREAM_ID)
        self._wake_writer.set()
        self._close_if_idle()

    def cancel_calls(self) -> None:
        """End every call now (shutdown's grace is over): handlers see cancellation."""
        for stream in list(self.streams.values()):
            stream.abort("shutdown")

    def _close_if_idle(self) -> None:
        if self._draining and not self.streams and not self._closing:
            self._closing = True
            with contextlib.suppress(h2.exceptions.H2Error):
                self.h2.close_connection()
            self.flush()
            self._wake_writer.set()

    def _lose(self, reason: str) -> None:
        for stream in list(self.streams.values()):
            stream.abort(reason)
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    # --- the socket ------------------------------------------------------------------

    async def _writer(self) -> None:
        while True:
            if self._outbox:
                data = bytes(self._outbox)
                self._outbox.clear()
                self._in_flight = len(data)
                try:
                    # A plain scope, not fail_after (a generator context manager): this runs
                    # once per write, thousands of times a second under load.
                    with trio.move_on_after(self.config.write_timeout_s) as write_deadline:
                        await self._transport.send_all(data)
                    written = not write_deadline.cancelled_caught
                    self._last_write = trio.current_time()
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    written = False
                finally:
                    self._in_flight = 0
                    self._written.set()
                    self._written = trio.Event()
                if not written:
                    log.info("gRPC connection from %s: write failed or timed out", self.peer)
                    self._lose("lost")
                    return
            elif self._closing:
                # Everything, including the final GOAWAY, is written: we are done.
                self._lose("lost")
                return
            else:
                await self._wake_writer.wait()
                self._wake_writer = trio.Event()

    async def _keepalive(self) -> None:
        """PING an idle connection that has calls open; drop it if the PING is not answered.

        A connection with no call open for ``idle_timeout_s`` is closed (GOAWAY): pings
        from the client do not keep it, so an idle connection cannot hold its slot forever.
        """
        interval = self.config.keepalive_s
        tick = min(interval, self.config.idle_timeout_s) / 2
        while True:
            await trio.sleep(tick)
            now = trio.current_time()
            if (
                not self.streams
                and not self._draining
                and now - self._idle_since >= self.config.idle_timeout_s
            ):
                log.info("gRPC connection from %s: idle; closing it", self.peer)
                self.drain()
            if self._ping_outstanding is not None:
                if now - self._ping_sent_at >= self.config.keepalive_ack_timeout_s:
                    log.info("gRPC connection from %s: PING not answered; dropping it", self.peer)
                    self._lose("lost")
                    return
                continue
            if self.streams and now - self._last_write >= interval:
                payload = os.urandom(8)
                self.h2.ping(payload)
                self._ping_outstanding = payload
                self._ping_sent_at = now
                self.flush()

    async def _read_loop(self) -> None:
        first = True
        while True:
            try:
                # The preface must come promptly; later reads wait for the client at will
                # (TCP keepalive, per-call grpc-timeout and the host's own limits bound them).
                if first:
                    with trio.move_on_after(self.config.handshake_timeout_s) as preface:
                        data = await self._transport.receive_some(RECEIVE_CHUNK_BYTES)
                    if preface.cancelled_caught:
                        return
                else:
                    data = await self._transport.receive_some(RECEIVE_CHUNK_BYTES)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return
            if not data:
                return
            first = False
            try:
                events = self.h2.receive_data(data)
            except h2.exceptions.ProtocolError as error:
                log.info("gRPC connection from %s: protocol error: %s", self.peer, error)
                with contextlib.suppress(h2.exceptions.H2Error):
                    self.h2.close_connection(error_code=h2.errors.ErrorCodes.PROTOCOL_ERROR)
                self.flush()
                self._closing = True
                self._wake_writer.set()
                return
            for event in events:
                self._on_event(event)
                if self._calm_reason is not None:
                    break
            if self._calm_reason is None:
                window = self.h2.inbound_flow_control_window
                if window < self.config.connection_window_bytes // 2:
                    self.h2.increment_flow_control_window(
                        self.config.connection_window_bytes - window
                    )
                self.flush()
                unread = len(self._outbox) - self.config.outbound_buffer_bytes
                if unread > self.config.max_unread_control_bytes:
                    self._calm_reason = f"{unread} bytes of acknowledgements left unread"
            if self._calm_reason is not None:
                await self._calm_down(self._calm_reason)
                return

    async def _calm_down(self, reason: str) -> None:
        """Close an abusive connection: GOAWAY ``ENHANCE_YOUR_CALM``, every call ended."""
        log.warning(
            "gRPC connection from %s: %s; closing it (ENHANCE_YOUR_CALM)", self.peer, reason
        )
        for stream in list(self.streams.values()):
            stream.abort("lost")
        # What is not yet written is only worth dropping now (acknowledgements the client
        # did not read): the GOAWAY goes next, after whatever is already being written.
        self._outbox.clear()
        with contextlib.suppress(h2.exceptions.H2Error):
            self.h2.close_connection(error_code=h2.errors.ErrorCodes.ENHANCE_YOUR_CALM)
        self.flush()
        self._closing = True
        self._wake_writer.set()
        # The writer ends the connection once the GOAWAY is out; a client that does not read
        # gets its socket closed after this.
        with trio.move_on_after(_CLOSE_TIMEOUT_S):
            await trio.sleep_forever()

    def _spend_control(self, what: str) -> None:
        if not self._control.spend(trio.current_time()):
            self._calm_reason = (
                f"more than {self._control.limit} control frames ({what}...) within "
                f"{self._control.window_s:g} s"
            )

    # --- HTTP/2 events -----------------------------------------------------------------

    def _on_event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RequestReceived):
            self._on_request(event)
        elif isinstance(event, h2.events.DataReceived):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.on_data(event.data, event.flow_controlled_length)
        elif isinstance(event, h2.events.StreamEnded):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.on_remote_closed()
        elif isinstance(event, h2.events.StreamReset):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.abort("reset")
            # A client may cancel its calls (a BFF does, often): what counts is resetting
            # streams before the server has answered them, the rapid-reset pattern.
            early = stream is None or not stream.responded
            if early and event.remote_reset and not self._resets.spend(trio.current_time()):
                self._calm_reason = (
                    f"more than {self._resets.limit} streams reset within "
                    f"{self._resets.window_s:g} s"
                )
        elif isinstance(event, h2.events.WindowUpdated):
            if event.stream_id == 0:
                for stream in self.streams.values():
                    stream.on_window_opened()
            elif (stream := self.streams.get(event.stream_id)) is not None:
                stream.on_window_opened()
        elif isinstance(event, h2.events.PingAckReceived):
            if event.ping_data == self._ping_outstanding:
                self._ping_outstanding = None
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            self._spend_control("SETTINGS")
            for stream in self.streams.values():
                stream.on_window_opened()
        elif isinstance(event, h2.events.PingReceived):
            self._spend_control("PING")
        elif isinstance(event, h2.events.PriorityUpdated):
            self._spend_control("PRIORITY")

    def _reject(self, stream_id: int, status: StatusCode, message: str) -> None:
        self.h2.send_headers(
            stream_id, trailers(status, message, trailers_only=True), end_stream=True
        )
        # H2Error: the client had already half-closed, so the stream is simply closed.
        with contextlib.suppress(h2.exceptions.H2Error):
            self.h2.reset_stream(stream_id, h2.errors.ErrorCodes.NO_ERROR)

    def _on_request(self, event: h2.events.RequestReceived) -> None:
        stream_id = event.stream_id
        headers = dict(event.headers)
        if self._draining or len(self.streams) >= self.config.max_concurrent_streams:
            # Not started: the client may safely retry it (elsewhere, or later). Handlers
            # still ending count too, so resetting streams cannot pile up handlers beyond
            # the advertised limit (h2 forgets a reset stream at once; its handler does not).
            self.h2.reset_stream(stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
            return
        content_type = headers.get(b"content-type", b"")
        if headers.get(b":method") != b"POST" or not content_type.startswith(b"application/grpc"):
            self.h2.send_headers(stream_id, [(":status", "415")], end_stream=True)
            return
        path = headers.get(b":path", b"").decode("ascii", "replace")
        method = self._methods.get(path)
        if method is None:
            self._reject(stream_id, StatusCode.UNIMPLEMENTED, f"unknown method {path}")
            return
        deadline: float | None = None
        if (raw_timeout := headers.get(b"grpc-timeout")) is not None:
            timeout = parse_timeout(raw_timeout.decode("ascii", "replace"))
            if timeout is None:
                self._reject(stream_id, StatusCode.INVALID_ARGUMENT, "malformed grpc-timeout")
                return
            deadline = trio.current_time() + timeout
        stream: ServerStream[Any, Any] = ServerStream(
            connection=self,
            stream_id=stream_id,
            method=path,
            request_type=method.request_type,
            peer=self.peer,
            metadata=decode_metadata(list(event.headers)),
            deadline=deadline,
        )
        self.streams[stream_id] = stream
        if event.stream_ended:
            stream.on_remote_closed()
        assert self._nursery is not None
        self._nursery.start_soon(self._run_call, stream, method)

    async def _run_call(self, stream: ServerStream[Any, Any], method: Method) -> None:
        status, message = StatusCode.OK, ""
        try:
            with stream.cancel_scope:
                try:
                    await method.handler(stream)
                except RpcError as error:
                    status, message = error.status, error.message
                except (EndOfStream, StreamReset):
                    pass  # the handler ended because the client did; nothing to report
                except Exception:
                    log.exception("gRPC handler for %s failed", stream.method)
                    status, message = StatusCode.INTERNAL, "internal error"
            if stream.cancel_scope.cancelled_caught:
                if stream.abort_reason == "shutdown":
                    status, message = StatusCode.UNAVAILABLE, "the server is shutting down"
                elif stream.abort_reason is None:
                    status, message = StatusCode.DEADLINE_EXCEEDED, "deadline exceeded"
        finally:
            # Synchronous, so it also runs when the whole connection is being cancelled.
            stream.finish(status, message)
            del self.streams[stream.stream_id]
            if not self.streams:
                self._idle_since = trio.current_time()
            self._close_if_idle()


def _goaway_frame(last_stream_id: int) -> bytes:
    """A GOAWAY frame with NO_ERROR (RFC 9113 section 6.8): 9-byte header, then payload."""
    payload = last_stream_id.to_bytes(4, "big") + (0).to_bytes(4, "big")
    header = len(payload).to_bytes(3, "big") + bytes([_GOAWAY_TYPE, 0]) + (0).to_bytes(4, "big")
    return header + payload
