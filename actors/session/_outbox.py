"""The session's outbox: the session's events on their way to the client.

Two ways out, in order. The edge may give the outbox a :class:`DirectSink` that sends an
event at once, in the emitting task, when the client's stream can take it without waiting;
otherwise (or without one) the event goes into a bounded channel that the edge drains.

Why the direct way: under load every hand-over between Trio tasks waits for a whole pass of
the run queue, and each token used to take one more (turn -> the edge's sending task) before
it reached the connection's writer.
"""

from __future__ import annotations

from typing import Protocol

import trio

from .messages import SessionEvent

# Events waiting for the client's socket. When it is full, emitting waits: a slow reader
# slows the turn, which slows the provider (back-pressure end to end).
OUTBOX_CAPACITY = 32


class ClientGone(Exception):
    """The edge stopped reading the outbox: the client disconnected."""


class DirectSink(Protocol):
    """The edge's way to send an event at once, without a hand-over to another task."""

    def offer(self, event: SessionEvent) -> bool:
        """Send ``event`` now and return True, or return False and send nothing.

        It refuses when sending would have to wait (the client's window or the socket is
        full, the stream is gone), and then keeps refusing until every event queued in the
        channel has been sent, so that events stay in order.
        """
        ...


class Outbox:
    """The sending side of a session's events; shared by the session and its turns."""

    __slots__ = ("_closed", "_direct", "_send")

    def __init__(
        self, send: trio.MemorySendChannel[SessionEvent], direct: DirectSink | None = None
    ) -> None:
        self._send = send
        self._direct = direct
        self._closed = False

    async def emit(self, event: SessionEvent) -> None:
        """Send ``event`` to the client, or queue it, waiting while the outbox is full.

        Raises:
            ClientGone: the edge closed its end (the client is gone).
        """
        # No scheduling point when there is room: under load every yield costs a whole pass
        # of the run queue, and a token takes several hops to reach the socket.
        if self.try_emit(event):
            return
        try:
            await self._send.send(event)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise ClientGone from None

    def try_emit(self, event: SessionEvent) -> bool:
        """Send or queue ``event`` if that needs no waiting; False if it was neither.

        Raises:
            ClientGone: the edge closed its end (the client is gone).
        """
        if self._direct is not None and not self._closed and self._direct.offer(event):
            return True
        try:
            self._send.send_nowait(event)
        except trio.WouldBlock:
            return False
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise ClientGone from None
        return True

    def close(self) -> None:
        """No more events: the edge finishes the stream once it has sent what is queued."""
        self._closed = True
        self._send.close()


def open_outbox(
    capacity: int = OUTBOX_CAPACITY, *, direct: DirectSink | None = None
) -> tuple[Outbox, trio.MemoryReceiveChannel[SessionEvent]]:
    send, receive = trio.open_memory_channel[SessionEvent](capacity)
    return Outbox(send, direct), receive
