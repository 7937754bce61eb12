"""The session's outbox: the bounded channel of events on their way to the client."""

from __future__ import annotations

import trio

from .messages import SessionEvent

# Events waiting for the client's socket. When it is full, emitting waits: a slow reader
# slows the turn, which slows the provider (back-pressure end to end).
OUTBOX_CAPACITY = 32


class ClientGone(Exception):
    """The edge stopped reading the outbox: the client disconnected."""


class Outbox:
    """The sending side of a session's events; shared by the session and its turns."""

    __slots__ = ("_send",)

    def __init__(self, send: trio.MemorySendChannel[SessionEvent]) -> None:
        self._send = send

    async def emit(self, event: SessionEvent) -> None:
        """Queue ``event`` for the client, waiting while the outbox is full.

        Raises:
            ClientGone: the edge closed its end (the client is gone).
        """
        try:
            # No scheduling point when there is room: under load every yield costs a whole
            # pass of the run queue, and a token takes several hops to reach the socket.
            self._send.send_nowait(event)
        except trio.WouldBlock:
            pass
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise ClientGone from None
        else:
            return
        try:
            await self._send.send(event)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise ClientGone from None

    def close(self) -> None:
        """No more events: the edge finishes the stream once it has sent what is queued."""
        self._send.close()


def open_outbox(
    capacity: int = OUTBOX_CAPACITY,
) -> tuple[Outbox, trio.MemoryReceiveChannel[SessionEvent]]:
    send, receive = trio.open_memory_channel[SessionEvent](capacity)
    return Outbox(send), receive
