"""One connection's frame codec (by its negotiated subprotocol) and its coalescing writer.

Subprotocols, in the order a dialling peer offers them (the relay takes the first it serves):

* ``zl.relay.v1+proto``: each binary message is a protobuf ``FrameBatch`` of one or more
  frames (``_binary.py``). A text message on it is one JSON frame, as on ``zl.relay.v1``:
  a last ``error`` frame sent while closing is always JSON, whatever was negotiated.
* ``zl.relay.v1``: each text message is one JSON frame (``_frames.py``).

:class:`FrameWriter` is the only task that writes a connection's socket. A frame handed to
it is encoded at once, in the sender's task, and measured against the frame limit of the link
it leaves on (``_limits.py``): one that does not fit fails there, for its own call only. The
encoded frames wait in a bounded queue; each time the writer runs it takes every frame that
is ready and, on the binary subprotocol, sends them as one message, as many as fit the
link's limit: under load the results of many calls leave in one WebSocket write (one TLS
record, one system call) instead of one each.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Final

import attrs
import trio

from ._binary import (
    BINARY_SUBPROTOCOL,
    MAX_FRAMES_PER_MESSAGE,
    decode_binary_batch,
    decode_binary_frames,
    encode_binary_for_link,
    encode_binary_frames,
)
from ._errors import BadFrame
from ._frames import SUBPROTOCOL, Frame, decode_frame, encode_frame
from ._wire import WsPeer, encode_for_link

#: What a dialling peer offers, most preferred first.
OFFERED_SUBPROTOCOLS: Final = (BINARY_SUBPROTOCOL, SUBPROTOCOL)
#: Frames a writer holds before ``send`` waits (back-pressure on the sending actor).
WRITER_CAPACITY: Final = MAX_FRAMES_PER_MESSAGE


@attrs.frozen
class FrameCodec:
    """How frames travel on one connection."""

    subprotocol: str

    @property
    def binary(self) -> bool:
        return self.subprotocol == BINARY_SUBPROTOCOL

    def decode(self, data: bytes | str, *, max_bytes: int, validate: bool = True) -> list[Frame]:
        """Every frame of one WebSocket message, checked (see ``decode_frame``).

        Raises:
            BadFrame: as ``decode_frame`` or ``decode_binary_frames``.
        """
        if self.binary and not isinstance(data, str):
            return decode_binary_frames(data, max_bytes=max_bytes, validate=validate)
        return [decode_frame(data, max_bytes=max_bytes, validate=validate)]

    def decode_each(
        self, data: bytes | str, *, max_bytes: int, validate: bool = True
    ) -> list[Frame | BadFrame]:
        """Every frame of one WebSocket message, a refused call's frame as its ``BadFrame``.

        What a reader of a shared connection uses: a frame that cannot be accepted but
        names its call (a ``call_id`` that is a valid id) fails only that call.

        Raises:
            BadFrame: the message itself cannot be read, or a refused frame names no call.
        """
        if self.binary and not isinstance(data, str):
            return decode_binary_batch(data, max_bytes=max_bytes, validate=validate)
        try:
            return [decode_frame(data, max_bytes=max_bytes, validate=validate)]
        except BadFrame as exc:
            if exc.call_id is None:
                raise
            return [exc]

    def encode_for_link(
        self, frame: Frame, *, limit: int, link: str, validate: bool = False
    ) -> bytes | str:
        """One frame as one message of this codec, checked against the limit of ``link``.

        Raises:
            BadFrame: it cannot be encoded (or ``validate`` and its schema refuses it), or it
                is larger than ``limit``; ``call_id`` names the frame's call (if it has one)
                so that only that call fails.
        """
        if self.binary:
            return encode_binary_for_link(frame, limit=limit, link=link, validate=validate)
        return encode_for_link(frame, limit=limit, link=link, validate=validate)

    def encode(self, frames: Sequence[Frame], *, validate: bool = False) -> list[bytes | str]:
        """The WebSocket messages that carry ``frames``: one in binary, one per frame in JSON.

        Raises:
            BadFrame: as ``encode_frame`` or ``encode_binary_frames``.
        """
        if self.binary:
            return [
                encode_binary_frames(
                    frames[start : start + MAX_FRAMES_PER_MESSAGE], validate=validate
                )
                for start in range(0, len(frames), MAX_FRAMES_PER_MESSAGE)
            ]
        return [encode_frame(frame, validate=validate) for frame in frames]


JSON_CODEC: Final = FrameCodec(SUBPROTOCOL)
BINARY_CODEC: Final = FrameCodec(BINARY_SUBPROTOCOL)


def codec_for(subprotocol: str | None) -> FrameCodec:
    """The codec of a negotiated subprotocol (JSON for anything but the binary one)."""
    return BINARY_CODEC if subprotocol == BINARY_SUBPROTOCOL else JSON_CODEC


def choose_subprotocol(proposed: Sequence[str], *, allow_binary: bool = True) -> str | None:
    """What a relay answers to a client's offer: binary if offered (and allowed), else JSON."""
    if allow_binary and BINARY_SUBPROTOCOL in proposed:
        return BINARY_SUBPROTOCOL
    if SUBPROTOCOL in proposed:
        return SUBPROTOCOL
    return None


class WriterClosed(Exception):
    """The connection's writer has stopped (the peer is gone, stuck, or it was closed)."""


def coalesce(messages: Sequence[bytes | str], *, limit: int) -> list[bytes | str]:
    """Join encoded binary frames into as few messages as fit ``limit`` (order kept).

    Each item is one frame's message from :meth:`FrameCodec.encode_for_link`, so it fits
    alone; consecutive binary ones are joined while the sum stays within ``limit`` bytes
    and ``MAX_FRAMES_PER_MESSAGE`` frames (the limit the peer reads with). Text messages
    (JSON frames) go one each.
    """
    out: list[bytes | str] = []
    run: list[bytes] = []
    size = 0
    for message in messages:
        if isinstance(message, str):
            if run:
                out.append(b"".join(run))
                run, size = [], 0
            out.append(message)
            continue
        if run and (size + len(message) > limit or len(run) >= MAX_FRAMES_PER_MESSAGE):
            out.append(b"".join(run))
            run, size = [], 0
        run.append(message)
        size += len(message)
    if run:
        out.append(b"".join(run))
    return out


class FrameWriter:
    """Sends one connection's frames from one task, coalescing those that are ready together.

    Run :meth:`run` in a nursery that lives as long as the connection. A write that the peer
    does not take within ``timeout_s`` (a stuck peer) or that fails ends the writer: later
    sends raise :class:`WriterClosed`, and ``on_failure`` is called once with the reason.

    Args:
        ws: the connection.
        codec: its negotiated codec.
        limit: the frame limit of the link, the largest message the peer reads: every frame
            is measured against it when it is queued, and coalesced messages stay within it.
        link: the link's name in error messages ("the host link").
        timeout_s: the longest one message may take to write.
        on_failure: told why the writer stopped (not called after :meth:`close`).
        capacity: frames queued before :meth:`send` waits.
    """

    def __init__(
        self,
        ws: WsPeer,
        codec: FrameCodec,
        *,
        limit: int,
        link: str,
        timeout_s: float,
        on_failure: Callable[[str], None] | None = None,
        capacity: int = WRITER_CAPACITY,
    ) -> None:
        self._ws = ws
        self.codec = codec
        self.limit = limit
        self.link = link
        self._timeout_s = timeout_s
        self._on_failure = on_failure
        self._capacity = capacity
        self._pending: list[bytes | str] = []
        self._wake = trio.Event()
        self._room = trio.Event()
        self.closed = False
        self._scope = trio.CancelScope()
        #: Why the writer stopped, once it has.
        self.reason: str | None = None
        #: WebSocket messages written so far (for tests and metrics).
        self.messages_sent = 0

    def send_nowait(self, frame: Frame) -> None:
        """Encode ``frame`` and queue it without waiting.

        Raises:
            trio.WouldBlock: the queue is full (nothing was encoded).
            WriterClosed: the writer has stopped.
            BadFrame: the frame cannot be encoded or does not fit the link (see
                ``FrameCodec.encode_for_link``); nothing was queued.
        """
        if self.closed:
            raise WriterClosed(self.reason or "closed")
        if len(self._pending) >= self._capacity:
            raise trio.WouldBlock
        self._pending.append(self.codec.encode_for_link(frame, limit=self.limit, link=self.link))
        self._wake.set()

    async def send(self, frame: Frame) -> None:
        """Encode ``frame`` and queue it, waiting while the queue is full (a slow reader).

        Raises:
            WriterClosed: the writer has stopped.
            BadFrame: as :meth:`send_nowait`.
        """
        while True:
            try:
                self.send_nowait(frame)
            except trio.WouldBlock:
                await self._room.wait()
                continue
            # A scheduling point like any send, without waiting for the write itself.
            await trio.lowlevel.checkpoint()
            return

    async def flush(self, *, timeout_s: float) -> None:
        """Write what is still queued from this task, within ``timeout_s``; errors are ignored.

        For a connection that is stopping: its writer task may already be cancelled.
        """
        if self.closed or not self._pending:
            return
        queued, self._pending = self._pending, []
        with trio.move_on_after(timeout_s), contextlib.suppress(Exception):
            for message in coalesce(queued, limit=self.limit):
                await self._ws.send_message(message)
                self.messages_sent += 1

    def close(self, reason: str = "closed") -> None:
        """Stop now, a write in progress too; frames still queued are dropped."""
        self._stop(reason, report=False)
        self._scope.cancel()

    def _stop(self, reason: str, *, report: bool) -> None:
        if self.closed:
            return
        self.closed = True
        self.reason = reason
        self._pending.clear()
        self._wake.set()
        self._room.set()
        if report and self._on_failure is not None:
            self._on_failure(reason)

    async def run(self) -> None:
        """Write queued frames until closed or failed; never raises for a peer's failure."""
        with self._scope:
            await self._run()

    async def _run(self) -> None:
        from trio_websocket import ConnectionClosed  # the edge library, only at the edge

        while not self.closed:
            if not self._pending:
                await self._wake.wait()
                self._wake = trio.Event()
                continue
            queued, self._pending = self._pending, []
            self._room.set()
            self._room = trio.Event()
            try:
                with trio.move_on_after(self._timeout_s) as deadline:
                    for message in coalesce(queued, limit=self.limit):
                        await self._ws.send_message(message)
                        self.messages_sent += 1
            except (ConnectionClosed, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                self._stop(f"send failed ({type(exc).__name__})", report=True)
                return
            if deadline.cancelled_caught:
                self._stop(f"the peer took no frame for {self._timeout_s:g} s", report=True)
                return


@contextlib.asynccontextmanager
async def open_frame_writer(
    ws: WsPeer, codec: FrameCodec, *, limit: int, link: str, timeout_s: float
) -> AsyncIterator[tuple[FrameWriter, trio.Nursery]]:
    """A connection's writer, running in a nursery that the block may use for its own tasks.

    For a peer's side of a connection (the bridge's, the host's): when the block ends, the
    nursery is cancelled; when the writer fails (the relay took no frame in time, the
    socket broke), the block is cancelled too.

    Raises:
        trio.TooSlowError: the writer failed (the message says why).
    """
    failure: list[str] = []
    async with trio.open_nursery() as nursery:

        def writer_failed(reason: str) -> None:
            failure.append(reason)
            nursery.cancel_scope.cancel()

        writer = FrameWriter(
            ws, codec, limit=limit, link=link, timeout_s=timeout_s, on_failure=writer_failed
        )
        nursery.start_soon(writer.run)
        yield writer, nursery
        nursery.cancel_scope.cancel()
    if failure:
        raise trio.TooSlowError(f"{link}: {failure[0]}")
