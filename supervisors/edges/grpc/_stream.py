"""One gRPC call as the handler sees it: ``ServerStream[RequestT, ResponseT]``."""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import h2.errors
import h2.exceptions
import h2.stream
import trio
from google.protobuf.message import DecodeError, Message

from ._errors import (
    BadMessage,
    EndOfStream,
    MessageTooLarge,
    RpcError,
    StatusCode,
    StreamReset,
)
from ._wire import Compressed, MessageReader, Oversized, frame, response_headers, trailers

if TYPE_CHECKING:
    from ._connection import Connection

log = logging.getLogger(__name__)

#: The stream states in which the server may still send DATA.
_SENDING_STATES = frozenset({h2.stream.StreamState.OPEN, h2.stream.StreamState.HALF_CLOSED_REMOTE})

RequestT = TypeVar("RequestT", bound=Message)
ResponseT = TypeVar("ResponseT", bound=Message)


class ServerStream(Generic[RequestT, ResponseT]):
    """A call in progress: receive the client's messages, send responses.

    The edge creates one per call and runs the method's handler with it in its own
    cancel scope. The handler is cancelled when the client resets the stream, the
    connection drops, the ``grpc-timeout`` deadline passes, or shutdown's grace ends.
    When the handler returns the edge sends ``grpc-status: 0``; when it raises
    :class:`RpcError` the edge sends that status; any other exception becomes INTERNAL.

    Attributes:
        method: the full method path, e.g. ``/zl.agent.v0.Agent/StreamChat``.
        peer: the client's address as ``host:port``.
        metadata: the request's custom metadata (``-bin`` values as bytes).
        deadline: the ``grpc-timeout`` deadline on Trio's clock, or None.
    """

    @property
    def responded(self) -> bool:
        """Whether the response has begun (its headers are sent)."""
        return self._headers_sent

    def __init__(
        self,
        *,
        connection: Connection,
        stream_id: int,
        method: str,
        request_type: type[RequestT],
        peer: str,
        metadata: tuple[tuple[str, str | bytes], ...],
        deadline: float | None,
    ) -> None:
        self.method = method
        self.peer = peer
        self.metadata = metadata
        self.deadline = deadline
        self._connection = connection
        self.stream_id = stream_id
        self._request_type = request_type
        self._reader = MessageReader(connection.config.max_message_bytes)
        self._owed_credit = 0
        self._remote_closed = False
        self._headers_sent = False
        self._finished = False
        #: why the stream was aborted ("reset", "lost", "shutdown"), or None
        self.abort_reason: str | None = None
        self._readable = trio.Event()
        self._writable = trio.Event()
        self._accept: Callable[[RequestT], bool] | None = None
        # Whether a message may go to ``_accept`` now: not while one waits in the queue or is
        # in the handler's hands, so that none overtakes another.
        self._delivering = True
        self.cancel_scope = trio.CancelScope(deadline=math.inf if deadline is None else deadline)

    # --- the handler's API -------------------------------------------------------------

    @property
    def buffered_inbound_bytes(self) -> int:
        """Inbound bytes held for the handler (complete messages plus one partial one)."""
        return self._reader.queued_bytes + self._reader.partial_bytes

    def deliver_to(self, accept: Callable[[RequestT], bool]) -> None:
        """Hand the call's messages to ``accept`` as they arrive, in the connection's task.

        It saves the handler's task a hand-over per message (under load, a pass of the run
        queue). ``accept`` must not block; it returns False to refuse a message, which then
        waits for :meth:`receive` like any other, and so do the messages after it until the
        handler has received them all: order is kept. Messages that are too large,
        compressed or do not decode always go to :meth:`receive`, which reports them. Call
        it before the first :meth:`receive`.
        """
        self._accept = accept

    async def receive(self) -> RequestT:
        """Wait for the client's next message.

        Returns:
            The next request message, decoded.

        Raises:
            EndOfStream: the client half-closed and every message has been read.
            StreamReset: the stream was reset or its connection lost (the handler is
                being cancelled as well).
            MessageTooLarge: the next message was over ``max_message_bytes`` and was
                discarded; the stream stays usable.
            BadMessage: the next message did not decode (or was compressed); the stream
                stays usable.

        On cancellation nothing is consumed.
        """
        # Always a checkpoint, so an aborted call's handler sees Cancelled here, not a race.
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            if self._reader.queue:
                # The handler holds this message until it has dealt with it: none may go
                # direct meanwhile, or it could overtake this one.
                self._delivering = False
                item = self._reader.pop()
                if not self._reader.queue:
                    self._return_credit()
                if isinstance(item, Oversized):
                    raise MessageTooLarge(item.size, self._connection.config.max_message_bytes)
                if isinstance(item, Compressed):
                    raise BadMessage("compressed messages are not supported (identity only)")
                try:
                    return self._request_type.FromString(item)
                except DecodeError as error:
                    raise BadMessage(f"message does not decode: {error}") from error
            if self.abort_reason is not None:
                raise StreamReset(f"stream {self.abort_reason}")
            if self._remote_closed:
                raise EndOfStream("the client closed its side of the stream")
            # Whatever came before was received and dealt with: messages may go direct again.
            self._delivering = True
            await self._readable.wait()
            self._readable = trio.Event()

    def __aiter__(self) -> AsyncIterator[RequestT]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[RequestT]:
        while True:
            try:
                message = await self.receive()
            except EndOfStream:
                return
            yield message

    async def send(self, message: ResponseT) -> None:
        """Send one response message, waiting while the client's window or the socket is full.

        Args:
            message: the response to send.

        Raises:
            StreamReset: the stream was reset, its connection lost, or the call has ended.
            RpcError: (UNAVAILABLE) the client did not open its flow-control window within
                ``send_stall_timeout_s``.

        On cancellation part of the message may have been sent; the call is then over.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        connection = self._connection
        data = memoryview(frame(message.SerializeToString()))
        self._check_open()
        self._send_headers_once()
        while data:
            self._check_open()
            window = connection.h2.local_flow_control_window(self.stream_id)
            if window <= 0:
                with trio.move_on_after(connection.config.send_stall_timeout_s) as stall:
                    await self._writable.wait()
                self._writable = trio.Event()
                if stall.cancelled_caught:
                    raise RpcError(StatusCode.UNAVAILABLE, "the client stopped reading")
                continue
            size = min(window, connection.h2.max_outbound_frame_size, len(data))
            self._send_data_frame(bytes(data[:size]))
            data = data[size:]
            await connection.wait_outbox_room()

    def try_send(self, message: ResponseT) -> bool:
        """Send one response message now if that needs no waiting; never blocks.

        For a caller in another task than the handler's (it saves that task a hand-over): the
        message goes to the connection's writer at once when the stream is open, the client's
        window holds all of it in one frame and the connection's outbound buffer has room.

        Returns:
            True if it was sent; False if nothing was sent (use :meth:`send`, which waits).
        """
        if self.abort_reason is not None or self._finished:
            return False
        connection = self._connection
        if not connection.outbox_has_room():
            return False
        data = frame(message.SerializeToString())
        h2_connection = connection.h2
        try:
            stream = h2_connection._get_stream_by_id(self.stream_id)
        except h2.exceptions.H2Error:
            return False  # closed in h2 already; send() reports it
        # h2's local_flow_control_window(), without looking the stream up a second time.
        window = min(
            h2_connection.outbound_flow_control_window, stream.outbound_flow_control_window
        )
        if len(data) > window or len(data) > h2_connection.max_outbound_frame_size:
            return False
        if stream.state_machine.state not in _SENDING_STATES:
            return False
        self._send_headers_once()
        self._write_data_frame(stream, data)
        return True

    def _send_data_frame(self, payload: bytes) -> None:
        """One DATA frame with ``payload``, which the windows and the frame size allow.

        Written here rather than by ``h2.send_data``: h2 builds a frame object, runs two
        state machines and serialises it through generic code, which was about a fifth of
        the host's CPU per streamed token in a profile at 100 sessions. This keeps what h2
        would have checked and counted: the stream must be open for sending, and both flow
        control windows go down by the payload's size (h2 raises them on WINDOW_UPDATE as
        usual, and the windows checked before each call are h2's own).

        Raises:
            StreamReset: h2 holds the stream as closed (it was reset meanwhile).
        """
        try:
            stream = self._connection.h2._get_stream_by_id(self.stream_id)
        except h2.exceptions.H2Error:
            raise StreamReset("stream closed") from None
        if stream.state_machine.state not in _SENDING_STATES:
            raise StreamReset("stream closed")
        self._write_data_frame(stream, payload)

    def _write_data_frame(self, stream: Any, payload: bytes) -> None:
        """The frame of :meth:`_send_data_frame` for an h2 stream known to be sending."""
        connection = self._connection
        size = len(payload)
        stream.outbound_flow_control_window -= size
        connection.h2.outbound_flow_control_window -= size
        # Frame header (RFC 9113 section 4.1): 24-bit length, type DATA (0), no flags, stream.
        connection.send_frame(
            size.to_bytes(3, "big") + b"\x00\x00" + self.stream_id.to_bytes(4, "big"), payload
        )

    def _send_headers_once(self) -> None:
        # The response headers go out with the first message (trailers-only otherwise).
        if not self._headers_sent:
            self._connection.h2.send_headers(self.stream_id, response_headers())
            self._headers_sent = True

    # --- the connection's side ----------------------------------------------------------

    def _check_open(self) -> None:
        if self.abort_reason is not None:
            raise StreamReset(f"stream {self.abort_reason}")
        if self._finished:
            raise StreamReset("the call has ended")

    def _return_credit(self) -> None:
        # Window credit goes back only when the handler has caught up with every complete
        # message: a client that outruns its handler stalls after one window (back-pressure).
        if self._owed_credit and not self._remote_closed and self.abort_reason is None:
            try:
                self._connection.h2.increment_flow_control_window(
                    self._owed_credit, stream_id=self.stream_id
                )
            except h2.exceptions.H2Error:
                return  # the stream closed meanwhile; the credit no longer matters
            self._connection.flush()
        self._owed_credit = 0

    def on_data(self, data: bytes, flow_controlled_length: int) -> None:
        self._reader.feed(data)
        self._owed_credit += flow_controlled_length
        if self._accept is not None and self._delivering:
            self._deliver(self._accept)
        if self._reader.queue:
            self._readable.set()
        else:
            self._return_credit()

    def _deliver(self, accept: Callable[[RequestT], bool]) -> None:
        queue = self._reader.queue
        while queue:
            item = queue[0]
            if not isinstance(item, bytes):
                break  # too large or compressed: receive() reports it
            try:
                message = self._request_type.FromString(item)
            except DecodeError:
                break  # receive() reports it
            try:
                accepted = accept(message)
            except Exception:
                # A bug in ``accept`` must not end the connection's reading task (and with it
                # every call on the connection); this call falls back to receive().
                log.exception("gRPC %s: delivering a message failed", self.method)
                self._accept = None
                break
            if not accepted:
                break
            self._reader.pop()
        if queue:
            self._delivering = False

    def on_remote_closed(self) -> None:
        self._remote_closed = True
        self._readable.set()

    def on_window_opened(self) -> None:
        self._writable.set()

    def abort(self, reason: str) -> None:
        """Stop the handler: the stream cannot be used any more (no trailers will be sent)."""
        if self.abort_reason is None and not self._finished:
            self.abort_reason = reason
        # Cancel first: a handler blocked in receive()/send() then wakes with Cancelled
        # rather than with a StreamReset it might catch and carry on from.
        self.cancel_scope.cancel()
        self._readable.set()
        self._writable.set()

    def finish(self, status: StatusCode, message: str) -> None:
        """Send the trailers (unless the stream is gone) and release the stream's state."""
        if self._finished:
            return
        self._finished = True
        # The handler's callback holds its session (and the session its outbox, and that
        # this stream): dropped now, the call's objects are freed at once by reference
        # counting instead of waiting, with what they hold, for a garbage collection.
        self._accept = None
        if self.abort_reason in ("reset", "lost"):
            return
        h2_connection = self._connection.h2
        try:
            h2_connection.send_headers(
                self.stream_id,
                trailers(status, message, trailers_only=not self._headers_sent),
                end_stream=True,
            )
            if not self._remote_closed:
                # The client may still be sending: stop it, and free the stream's state.
                h2_connection.reset_stream(self.stream_id, h2.errors.ErrorCodes.NO_ERROR)
        except h2.exceptions.H2Error:
            return
        self._connection.flush()


AnyServerStream = ServerStream[Any, Any]
