"""A loopback TCP fault proxy: the network between two processes, broken on purpose.

``FaultProxy`` listens on 127.0.0.1 (port 0) and forwards every connection to a target.
Its mode can change while it runs:

- ``PASS``: bytes go through as they come;
- ``LATENCY``: each chunk waits ``latency_s`` before it goes on (both ways);
- ``BLACKHOLE``: bytes are read and dropped both ways, connections stay open (a link
  that silently lost its route);
- :meth:`reset` closes every open connection at once with a TCP reset (RST), as a
  middlebox or a crashed NAT would; new connections are served as before.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import socket
import struct
from collections.abc import AsyncIterator

import trio

CHUNK_BYTES = 65_536


class Mode(enum.Enum):
    PASS = "pass"
    LATENCY = "latency"
    BLACKHOLE = "blackhole"


class FaultProxy:
    """See the module docstring; start it with :func:`open_fault_proxy`."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.mode = Mode.PASS
        self.latency_s = 0.0
        self.port = 0
        self.connections: set[trio.SocketStream] = set()
        self.accepted = 0

    def reset(self) -> int:
        """Reset every open connection (RST); returns how many there were."""
        count = 0
        for stream in list(self.connections):
            with contextlib.suppress(OSError):
                # SO_LINGER with a zero timeout makes close() send RST, not FIN.
                stream.socket.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                stream.socket.close()
                count += 1
        self.connections.clear()
        return count

    async def _pump(self, source: trio.SocketStream, sink: trio.SocketStream) -> None:
        while True:
            data = await source.receive_some(CHUNK_BYTES)
            if not data:
                return
            if self.mode is Mode.BLACKHOLE:
                continue
            if self.mode is Mode.LATENCY and self.latency_s > 0:
                await trio.sleep(self.latency_s)
            await sink.send_all(data)

    async def _serve(self, client: trio.SocketStream) -> None:
        self.accepted += 1
        try:
            server = await trio.open_tcp_stream(*self.target)
        except OSError:
            await trio.aclose_forcefully(client)
            return
        self.connections.update((client, server))
        try:
            async with trio.open_nursery() as nursery:

                async def pump(source: trio.SocketStream, sink: trio.SocketStream) -> None:
                    with contextlib.suppress(
                        trio.BrokenResourceError, trio.ClosedResourceError, OSError
                    ):
                        await self._pump(source, sink)
                    nursery.cancel_scope.cancel()

                nursery.start_soon(pump, client, server)
                nursery.start_soon(pump, server, client)
        finally:
            self.connections.discard(client)
            self.connections.discard(server)
            await trio.aclose_forcefully(client)
            await trio.aclose_forcefully(server)


@contextlib.asynccontextmanager
async def open_fault_proxy(target: tuple[str, int]) -> AsyncIterator[FaultProxy]:
    """Run a proxy to ``target`` for the block; its ``port`` is set once it listens."""
    proxy = FaultProxy(target)
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            functools.partial(trio.serve_tcp, proxy._serve, 0, host="127.0.0.1")
        )
        proxy.port = int(listeners[0].socket.getsockname()[1])
        try:
            yield proxy
        finally:
            nursery.cancel_scope.cancel()
