"""The relay's listeners: a bound on connections that have not proved who they are.

A TCP connection costs a descriptor from the moment it is accepted, and until the peer has
finished TLS, the WebSocket upgrade and (for a device) its ``device.hello``, it has proved
nothing. Without a bound, a peer that opens connections and sends nothing holds the
process's descriptors until the handshake timeout, and legitimate devices are refused
(``EMFILE``) in the meantime. So every accepted connection takes a ticket from a
:class:`HandshakeGate` first:

- at most ``max_per_source`` pending tickets per source address: one more from that
  address is closed at once;
- at most ``max_pending`` in all: one more evicts (closes) the oldest pending connection,
  so a flood from many addresses cannot keep a new device out either;
- a ticket stops counting once its connection is established (authenticated), and is
  returned when the connection closes, whatever happened.

``plan_descriptors`` sizes the caps from the process's descriptor limit, which
``supervisors._process.raise_fd_limit`` raises as far as the OS allows at start-up.
"""

from __future__ import annotations

import collections
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Final

import attrs
import trio
from trio_websocket import WebSocketConnection, WebSocketRequest, wrap_server_stream

from zl_actors import EagerSocketStream

log = logging.getLogger("zl.relay")

#: Descriptors kept free for everything else the process opens (files, a new socket to
#: refuse politely, the debug endpoint).
FD_RESERVE: Final = 64
#: How often refusals and evictions are logged at most (they come in floods).
LOG_EVERY_S: Final = 5.0


@attrs.define(eq=False)
class Ticket:
    """One accepted connection's place in the gate."""

    source: str
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    pending: bool = True
    ws: WebSocketConnection | None = None


class HandshakeGate:
    """Counts connections that are not established yet, per source and in all."""

    def __init__(self, *, max_pending: int, max_per_source: int, name: str) -> None:
        self.max_pending = max_pending
        self.max_per_source = max_per_source
        self.name = name
        # Insertion order is age: the first is the oldest pending connection.
        self._pending: dict[Ticket, None] = {}
        self._per_source: collections.Counter[str] = collections.Counter()
        self.refused = 0
        self.evicted = 0
        self._logged_at = -LOG_EVERY_S

    @property
    def pending(self) -> int:
        return len(self._pending)

    def admit(self, source: str) -> Ticket | None:
        """A ticket for a new connection from ``source``, or None to close it at once."""
        if self._per_source[source] >= self.max_per_source:
            self.refused += 1
            self._note(f"refused a connection from {source} ({self.max_per_source} pending)")
            return None
        if len(self._pending) >= self.max_pending:
            oldest = next(iter(self._pending))
            self.settle(oldest)
            oldest.scope.cancel()
            self.evicted += 1
            self._note(f"closed the oldest pending connection ({self.max_pending} pending)")
        ticket = Ticket(source=source)
        self._pending[ticket] = None
        self._per_source[source] += 1
        return ticket

    def settle(self, ticket: Ticket) -> None:
        """The connection is established or gone: it no longer counts (idempotent)."""
        if ticket.pending:
            ticket.pending = False
            del self._pending[ticket]
            self._per_source[ticket.source] -= 1
            if self._per_source[ticket.source] <= 0:
                del self._per_source[ticket.source]

    def _note(self, what: str) -> None:
        now = trio.current_time()
        if now - self._logged_at >= LOG_EVERY_S:
            self._logged_at = now
            log.warning(
                "relay %s endpoint: %s; %d refused and %d closed so far",
                self.name,
                what,
                self.refused,
                self.evicted,
            )


@attrs.frozen(kw_only=True)
class DescriptorPlan:
    """How the process's descriptors are shared between the kinds of connection."""

    limit: int
    max_pending: int
    max_devices: int
    max_hosts: int


def plan_descriptors(
    limit: int, *, max_pending: int, max_devices: int, max_hosts: int
) -> DescriptorPlan:
    """Caps that fit in ``limit`` descriptors with ``FD_RESERVE`` to spare.

    The configured caps are kept where they fit; otherwise pending handshakes get a quarter
    of the budget (two endpoints share it), hosts a sixteenth, devices the rest.
    """
    budget = max(8, limit - FD_RESERVE)
    pending = min(max_pending, max(4, budget // 4))
    hosts = min(max_hosts, max(1, budget // 16))
    devices = min(max_devices, max(1, budget - 2 * pending - hosts))
    return DescriptorPlan(limit=limit, max_pending=pending, max_devices=devices, max_hosts=hosts)


Handler = Callable[[WebSocketRequest, Ticket], Awaitable[None]]


async def serve_gated_websocket(
    handler: Handler,
    host: str,
    port: int,
    ssl_context: ssl.SSLContext | None,
    *,
    gate: HandshakeGate,
    message_queue_size: int,
    max_message_size: int,
    receive_buffer_size: int,
    connect_timeout_s: float,
    disconnect_timeout_s: float,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve WebSocket connections on ``host:port`` through ``gate``; report the bound port.

    Never returns; cancel it to stop (every connection is closed).

    ``handler`` gets each upgrade request and its ticket; it calls ``gate.settle(ticket)``
    once the peer has proved who it is (and sets ``ticket.ws`` when it accepts the upgrade,
    so the connection is closed cleanly after it). An evicted connection is cancelled.

    Connections are ``EagerSocketStream``s (under TLS when ``ssl_context`` is given): Trio's
    socket stream ends every send and receive with a scheduling point even when the kernel
    had the bytes at once, and a relayed call crosses the relay's sockets four times.
    """
    listeners = await trio.open_tcp_listeners(port, host=host)

    async def serve_one(accepted: trio.SocketStream) -> None:
        source = str(accepted.socket.getpeername()[0])
        ticket = gate.admit(source)
        if ticket is None:
            await trio.aclose_forcefully(accepted)
            return
        stream = EagerSocketStream.from_trio(accepted)
        transport: trio.abc.Stream = stream
        if ssl_context is not None:
            transport = trio.SSLStream(stream, ssl_context, server_side=True)
        try:
            with ticket.scope:
                async with trio.open_nursery() as nursery:
                    with trio.move_on_after(connect_timeout_s) as connect:
                        request = await wrap_server_stream(
                            nursery,
                            transport,
                            message_queue_size=message_queue_size,
                            max_message_size=max_message_size,
                            receive_buffer_size=receive_buffer_size,
                        )
                    if not connect.cancelled_caught:
                        try:
                            await handler(request, ticket)
                        finally:
                            if ticket.ws is not None:
                                with trio.move_on_after(disconnect_timeout_s, shield=True):
                                    await ticket.ws.aclose()
                    nursery.cancel_scope.cancel()
        finally:
            gate.settle(ticket)
            await trio.aclose_forcefully(transport)

    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, serve_one, listeners)
        task_status.started(int(listeners[0].socket.getsockname()[1]))
