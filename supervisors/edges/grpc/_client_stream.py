"""One gRPC call as a client sees it: ``ClientStream[RequestT, ResponseT]``.

Flow control is what carries back-pressure from the caller to the server: window credit
for the stream goes back to the server only when the caller has received every complete
message that is queued, so a caller that stops receiving stalls the server's ``send``
after ``stream_window_bytes`` (the server's own buffers then fill and it waits too).
"""

from __future__ import annotations

import math
import urllib.parse
from typing import TYPE_CHECKING, Generic, TypeVar

import h2.errors
import h2.exceptions
import trio
from google.protobuf.message import DecodeError, Message

from ._client_errors import CallError
from ._errors import StatusCode
from ._wire import Compressed, MessageReader, Oversized, frame

if TYPE_CHECKING:
    from ._client import ClientConnection

RequestT = TypeVar("RequestT", bound=Message)
ResponseT = TypeVar("ResponseT", bound=Message)


def _status_of(headers: dict[bytes, bytes]) -> tuple[StatusCode, str] | None:
    raw = headers.get(b"grpc-status")
    if raw is None:
        return None
    try:
        status = StatusCode(int(raw))
    except ValueError:
        status = StatusCode.UNKNOWN
    message = urllib.parse.unquote(headers.get(b"grpc-message", b"").decode("ascii", "replace"))
    return status, message


class ClientStream(Generic[RequestT, ResponseT]):
    """A call in progress: send requests, receive responses, half-close, cancel.

    Made by :meth:`GrpcChannel.open_stream`. Every wait is bounded by the call's deadline
    (sent to the server as ``grpc-timeout`` as well); when it passes the stream is reset
    and the waiting method raises ``CallError(DEADLINE_EXCEEDED)``.

    Attributes:
        path: the method path, e.g. ``/zl.agent.v0.Agent/StreamChat``.
        deadline: on Trio's clock; ``math.inf`` for none.
    """

    def __init__(
        self,
        *,
        connection: ClientConnection,
        stream_id: int,
        path: str,
        response_type: type[ResponseT],
        deadline: float,
        max_message_bytes: int,
    ) -> None:
        self.path = path
        self.deadline = deadline
        self.stream_id = stream_id
        self._connection = connection
        self._response_type = response_type
        self._reader = MessageReader(max_message_bytes)
        self._owed_credit = 0
        self._readable = trio.Event()
        self._writable = trio.Event()
        self._headers: dict[bytes, bytes] | None = None
        #: The call's final status once known (trailers, reset, lost connection).
        self.status: tuple[StatusCode, str] | None = None
        self._remote_closed = False
        self._local_closed = False

    # --- the caller's API --------------------------------------------------------------

    async def send(self, message: RequestT) -> None:
        """Send one request, waiting while the server's window or the socket is full.

        Raises:
            CallError: the call has ended (its status), or the deadline passed.

        On cancellation part of the message may have been sent; cancel the call then.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        connection = self._connection
        data = memoryview(frame(message.SerializeToString()))
        with trio.move_on_at(self.deadline) as deadline:
            while data:
                self._check_sendable()
                try:
                    window = connection.h2.local_flow_control_window(self.stream_id)
                except h2.exceptions.H2Error:
                    self._fail(StatusCode.UNAVAILABLE, "the stream is closed")
                    continue
                if window <= 0:
                    await self._writable.wait()
                    self._writable = trio.Event()
                    continue
                size = min(window, connection.h2.max_outbound_frame_size, len(data))
                connection.h2.send_data(self.stream_id, bytes(data[:size]))
                data = data[size:]
                connection.flush()
                await connection.wait_outbox_room()
        if deadline.cancelled_caught:
            self._expire()

    def close_send(self) -> None:
        """Half-close: tell the server no more requests will come (never blocks)."""
        if self._local_closed or self.status is not None:
            return
        self._local_closed = True
        try:
            self._connection.h2.end_stream(self.stream_id)
        except h2.exceptions.H2Error:
            return
        self._connection.flush()

    async def receive(self) -> ResponseT:
        """Wait for the server's next response.

        Raises:
            trio.EndOfChannel: the call ended with status OK and every response was read.
            CallError: the call ended with another status (the server's, CANCELLED when we
                reset it, UNAVAILABLE when the connection was lost, DEADLINE_EXCEEDED), or a
                response was too large or did not decode (the call is then cancelled).

        On cancellation nothing is consumed.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        with trio.move_on_at(self.deadline) as deadline:
            while True:
                if self._reader.queue:
                    item = self._reader.pop()
                    if not self._reader.queue:
                        self._return_credit()
                    return self._decode(item)
                if self.status is not None:
                    status, message = self.status
                    if status is StatusCode.OK:
                        raise trio.EndOfChannel
                    raise CallError(status, message)
                await self._readable.wait()
                self._readable = trio.Event()
        assert deadline.cancelled_caught
        self._expire()
        raise AssertionError("unreachable")  # pragma: no cover

    def cancel(self, reason: str = "cancelled by the client") -> None:
        """Reset the stream (RST_STREAM CANCEL) at once; later calls raise CANCELLED."""
        if self.status is not None:
            return
        self.status = (StatusCode.CANCELLED, reason)
        try:
            self._connection.h2.reset_stream(self.stream_id, h2.errors.ErrorCodes.CANCEL)
        except h2.exceptions.H2Error:
            pass
        else:
            self._connection.flush()
        self._release()

    @property
    def buffered_bytes(self) -> int:
        """Response bytes held for the caller (complete messages plus one partial one)."""
        return self._reader.queued_bytes + self._reader.partial_bytes

    @property
    def ended(self) -> bool:
        return self.status is not None

    # --- helpers -------------------------------------------------------------------------

    def _decode(self, item: bytes | Oversized | Compressed) -> ResponseT:
        if isinstance(item, Oversized):
            self.cancel("response too large")
            raise CallError(
                StatusCode.RESOURCE_EXHAUSTED, f"a response of {item.size} bytes is too large"
            )
        if isinstance(item, Compressed):
            self.cancel("compressed response")
            raise CallError(StatusCode.INTERNAL, "compressed responses are not supported")
        try:
            return self._response_type.FromString(item)
        except DecodeError as error:
            self.cancel("response does not decode")
            raise CallError(StatusCode.INTERNAL, f"response does not decode: {error}") from None

    def _check_sendable(self) -> None:
        if self.status is not None:
            status, message = self.status
            raise CallError(
                status if status is not StatusCode.OK else StatusCode.CANCELLED, message
            )
        if self._local_closed:
            raise CallError(StatusCode.CANCELLED, "the request side is already closed")

    def _expire(self) -> None:
        self.cancel("deadline exceeded")
        self.status = (StatusCode.DEADLINE_EXCEEDED, "deadline exceeded")
        raise CallError(StatusCode.DEADLINE_EXCEEDED, "deadline exceeded")

    def _fail(self, status: StatusCode, message: str) -> None:
        if self.status is None:
            self.status = (status, message)
        self._release()

    def _release(self) -> None:
        self._readable.set()
        self._writable.set()
        self._connection.forget(self.stream_id)

    def _return_credit(self) -> None:
        if self._owed_credit and self.status is None and not self._remote_closed:
            try:
                self._connection.h2.increment_flow_control_window(
                    self._owed_credit, stream_id=self.stream_id
                )
            except h2.exceptions.H2Error:
                return
            self._connection.flush()
        self._owed_credit = 0

    # --- the connection's side -----------------------------------------------------------

    def on_headers(self, headers: list[tuple[bytes, bytes]], *, ended: bool) -> None:
        values = dict(headers)
        if self._headers is None:
            self._headers = values
            http_status = values.get(b":status", b"")
            if http_status != b"200":
                self._fail(
                    StatusCode.UNAVAILABLE
                    if http_status in (b"502", b"503", b"504")
                    else StatusCode.UNKNOWN,
                    f"HTTP status {http_status.decode('ascii', 'replace')} from the server",
                )
                return
            if not values.get(b"content-type", b"").startswith(b"application/grpc"):
                self._fail(StatusCode.UNKNOWN, "the server's answer is not gRPC")
                return
        if ended or b"grpc-status" in values:
            self.on_trailers(values)

    def on_trailers(self, values: dict[bytes, bytes]) -> None:
        status = _status_of(values) or (StatusCode.UNKNOWN, "the call ended without grpc-status")
        self._remote_closed = True
        self._fail(*status)

    def on_data(self, data: bytes, flow_controlled_length: int) -> None:
        self._reader.feed(data)
        self._owed_credit += flow_controlled_length
        if self._reader.queue:
            self._readable.set()
        else:
            self._return_credit()

    def on_remote_ended(self) -> None:
        self._remote_closed = True
        if self.status is None:
            self._fail(StatusCode.UNKNOWN, "the server ended the call without trailers")

    def on_reset(self, error_code: int) -> None:
        if error_code == h2.errors.ErrorCodes.REFUSED_STREAM:
            self._fail(StatusCode.UNAVAILABLE, "the server refused the stream (retry is safe)")
        elif error_code == h2.errors.ErrorCodes.CANCEL:
            self._fail(StatusCode.CANCELLED, "the server cancelled the stream")
        elif error_code == h2.errors.ErrorCodes.NO_ERROR and self._remote_closed:
            self._release()
        else:
            self._fail(StatusCode.INTERNAL, f"the server reset the stream (code {error_code})")

    def on_window_opened(self) -> None:
        self._writable.set()

    def on_lost(self, reason: str) -> None:
        self._fail(StatusCode.UNAVAILABLE, reason)


NO_DEADLINE = math.inf
