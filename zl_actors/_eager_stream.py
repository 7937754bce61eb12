"""A TCP stream whose sends and receives yield to the scheduler only when they have to wait.

Why: Trio's socket calls end with a scheduling point even when the kernel took the bytes (or
had them) at once, so a task that writes one message and then goes back to waiting takes two
steps of the run loop instead of one. Under load each step waits for a whole pass over the
ready tasks, and every step costs the scheduler's own work. The host's gRPC edge writes each
token to its client that way, thousands of times a second, and the provider adapter reads
each token from its upstream the same way.

What it keeps of Trio's contract:

* Cancellation is honoured at every call (``checkpoint_if_cancelled``): a cancelled task
  never sends or receives.
* A call that has to wait is a full checkpoint (``wait_readable`` / ``wait_writable``).
* A stream that never has to wait cannot starve the other tasks: every ``fairness_every``-th
  call in a row that did not wait yields anyway.
* A stream whose last receive had to wait waits for readability first (``wait_readable``)
  instead of trying ``recv`` and catching ``BlockingIOError``: a model's tokens arrive one
  by one, so the read right after a chunk nearly always finds nothing, and the failed
  ``recv`` (a system call and a raised exception) was paid on every token.
* Errors are Trio's: ``BrokenResourceError`` for a failed socket, ``ClosedResourceError``
  after ``aclose`` (also in a task that was waiting on the socket when it was closed).

It drives a plain non-blocking socket; :meth:`EagerSocketStream.from_trio` takes the socket
out of a ``trio.SocketStream``. Over TLS, wrap it in ``trio.SSLStream`` as usual. It is meant
for one sending task and one receiving task at a time, as both users have (Trio's conflict
detection is not repeated here).
"""

from __future__ import annotations

import socket
from typing import Final

import trio

#: Calls in a row that may complete without waiting before one yields anyway.
FAIRNESS_EVERY: Final = 8
#: ``receive_some()`` without a size reads at most this much.
DEFAULT_RECEIVE_BYTES: Final = 65_536


class EagerSocketStream(trio.abc.HalfCloseableStream):
    """See the module docstring."""

    def __init__(self, sock: socket.socket, *, fairness_every: int = FAIRNESS_EVERY) -> None:
        """Drive ``sock``, a connected stream socket (made non-blocking here)."""
        if fairness_every < 1:
            raise ValueError("fairness_every must be at least 1")
        sock.setblocking(False)
        self.socket = sock
        self._fairness_every = fairness_every
        self._unyielded = 0
        self._closed = False
        # Whether the last receive had to wait: the next one then waits first.
        self._receive_waits = False

    @classmethod
    def from_trio(cls, stream: trio.SocketStream) -> EagerSocketStream:
        """Take the socket out of ``stream``; ``stream`` must not be used afterwards."""
        return cls(socket.socket(fileno=stream.socket.detach()))

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Send all of ``data``; waits only while the socket's send buffer is full.

        Raises:
            trio.BrokenResourceError: the connection failed.
            trio.ClosedResourceError: the stream was closed (before or during the call).
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        self._check_open()
        waited = False
        with memoryview(data) as view:
            remaining = view
            try:
                while remaining:
                    try:
                        sent = self.socket.send(remaining)
                    except BlockingIOError:
                        waited = True
                        await trio.lowlevel.wait_writable(self.socket)
                        self._check_open()
                        continue
                    remaining = remaining[sent:]
            except OSError as exc:
                self._check_open()
                raise trio.BrokenResourceError(f"send failed: {exc}") from exc
            finally:
                remaining.release()
        await self._after(waited)

    async def wait_send_all_might_not_block(self) -> None:
        self._check_open()
        await trio.lowlevel.wait_writable(self.socket)

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """What the socket has, up to ``max_bytes``; waits only when it has nothing.

        Returns:
            ``b""`` when the peer has closed its side.

        Raises:
            trio.BrokenResourceError: the connection failed (reset by the peer, ...).
            trio.ClosedResourceError: the stream was closed (before or during the call).
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        self._check_open()
        size = DEFAULT_RECEIVE_BYTES if max_bytes is None else max_bytes
        if size < 1:
            raise ValueError("max_bytes must be at least 1")
        waited = False
        if self._receive_waits:
            waited = True
            await trio.lowlevel.wait_readable(self.socket)
            self._check_open()
        while True:
            try:
                data = self.socket.recv(size)
            except BlockingIOError:
                waited = True
                await trio.lowlevel.wait_readable(self.socket)
                self._check_open()
                continue
            except OSError as exc:
                self._check_open()
                raise trio.BrokenResourceError(f"receive failed: {exc}") from exc
            # A full read means more may be queued: try at once next time.
            self._receive_waits = waited and len(data) < size
            await self._after(waited)
            return data

    async def send_eof(self) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        self._check_open()
        try:
            self.socket.shutdown(socket.SHUT_WR)
        except OSError as exc:
            raise trio.BrokenResourceError(f"shutdown failed: {exc}") from exc
        await self._after(False)

    async def aclose(self) -> None:
        """Close the socket; a task waiting on it gets ``ClosedResourceError``. Idempotent."""
        self.close_now()
        await trio.lowlevel.checkpoint()

    def close_now(self) -> None:
        """``aclose`` without its scheduling point, for code that cannot await. Idempotent."""
        if not self._closed:
            self._closed = True
            # Wakes the tasks parked on this descriptor before it is gone (or reused).
            trio.lowlevel.notify_closing(self.socket)
            self.socket.close()

    def _check_open(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the stream is closed")

    async def _after(self, waited: bool) -> None:
        if waited:
            self._unyielded = 0
            return
        self._unyielded += 1
        if self._unyielded >= self._fairness_every:
            self._unyielded = 0
            await trio.lowlevel.checkpoint()
