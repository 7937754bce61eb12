"""``serve_grpc``: the gRPC server of the host, on Trio and ``h2``.

Why not purerpc's server: every defect measured in purerpc 0.8.0 (docs/architecture.md) lives in
its server loop (``purerpc.server.ConnectionHandler`` and ``purerpc.grpc_socket``): it drops
h2's StreamReset and end-of-connection instead of waking the handler, queues inbound messages
in an unbounded channel while granting a 2**30-byte connection window, binds all interfaces
with SO_REUSEPORT and no host, ignores ``grpc-timeout``, and patches h2 globally on import.
Fixing that means replacing the loop, and the rest of purerpc (its 5-byte message framing and
header parsing) is a few lines. So the edge speaks gRPC-over-HTTP/2 on ``h2`` (the same
library purerpc drives) directly and imports nothing from purerpc.

What each defect became here (and the test that holds it, in tests/grpc_edge/):

- RST_STREAM / dropped TCP wake and cancel the handler at once: ``Connection._on_event``,
  ``Connection._lose`` (test_grpc_cancel.py);
- nothing leaks after 200 cancelled or dropped streams (test_grpc_cancel.py);
- ``GrpcServerConfig.host`` (loopback default), SO_REUSEADDR only, and a clear
  :class:`BindError` naming host:port (test_grpc_server.py);
- ``grpc-timeout`` is the handler's cancel-scope deadline; the client gets DEADLINE_EXCEEDED;
- inbound bytes per stream are bounded by flow control (``_connection.py``'s notes);
- TLS: the context gets ALPN ``h2`` here, whoever built it;
- graceful shutdown: :meth:`GrpcServerHandle.shutdown`.
"""

from __future__ import annotations

import errno
import logging
import math
import socket
import ssl
from collections.abc import Iterable

import trio

from supervisors.edges._listen import ListenError, bind_listener
from zl_actors import EagerSocketStream

from ._config import ACCEPT_BACKOFF_S, LISTEN_BACKLOG, GrpcServerConfig
from ._connection import Connection
from ._errors import BindError, ConfigError
from ._reflection import reflection_services
from ._service import Method, Service

log = logging.getLogger(__name__)

#: TCP keepalive: how a silent dead peer is found on an idle connection (seconds, probes).
KEEPALIVE_IDLE_S = 60
KEEPALIVE_INTERVAL_S = 15
KEEPALIVE_PROBES = 4
#: accept() errors that mean "out of resources for now", not "the listener is broken".
_ACCEPT_RESOURCE_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}


class GrpcServerHandle:
    """What ``serve_grpc`` reports once it listens: the bound address and the shutdown switch."""

    def __init__(self, *, host: str, port: int, default_grace_s: float) -> None:
        self.host = host
        self.port = port
        self._default_grace_s = default_grace_s
        self.grace_s: float | None = None
        self._accept_scope = trio.CancelScope()
        self._stopped = trio.Event()

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    def shutdown(self, grace_s: float | None = None) -> None:
        """Begin a graceful shutdown and return at once.

        The server stops accepting, sends GOAWAY to every connection (new streams are
        refused, so clients retry elsewhere), lets running calls finish for ``grace_s``
        seconds, then cancels the rest (their clients see UNAVAILABLE) and returns from
        ``serve_grpc``. Calling it again does nothing.

        Args:
            grace_s: how long calls may run on; the config's ``shutdown_grace_s`` if None.
        """
        if self.grace_s is None:
            self.grace_s = self._default_grace_s if grace_s is None else grace_s
            self._accept_scope.cancel()

    async def wait_stopped(self) -> None:
        """Wait until ``serve_grpc`` has returned (every connection closed)."""
        await self._stopped.wait()


def _method_table(services: Iterable[Service], config: GrpcServerConfig) -> dict[str, Method]:
    services = list(services)
    if config.reflection:
        services += reflection_services(services)
    table: dict[str, Method] = {}
    for service in services:
        for method in service.methods:
            if method.path in table:
                raise ConfigError(f"two services define {method.path}")
            table[method.path] = method
    return table


async def _bind(host: str, port: int) -> trio.SocketListener:
    try:
        return await bind_listener(host, port, backlog=LISTEN_BACKLOG)
    except ListenError as error:
        raise BindError(host, port, error.reason) from error


def _set_keepalive(stream: trio.SocketStream) -> None:
    stream.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    if hasattr(socket, "TCP_KEEPIDLE"):
        stream.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, KEEPALIVE_IDLE_S)
        stream.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, KEEPALIVE_INTERVAL_S)
        stream.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, KEEPALIVE_PROBES)


class _Server:
    """The accept loop and the set of live connections of one ``serve_grpc`` call."""

    def __init__(
        self,
        *,
        methods: dict[str, Method],
        config: GrpcServerConfig,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        self.methods = methods
        self.config = config
        self.ssl_context = ssl_context
        self.connections: set[Connection] = set()
        self.draining = False
        self.all_closed = trio.Event()

    async def accept_loop(self, listener: trio.SocketListener, nursery: trio.Nursery) -> None:
        while True:
            try:
                raw = await listener.accept()
            except OSError as error:
                if error.errno not in _ACCEPT_RESOURCE_ERRNOS:
                    raise
                log.warning("gRPC accept failed (%s); retrying shortly", error)
                await trio.sleep(ACCEPT_BACKOFF_S)
                continue
            nursery.start_soon(self.handle_connection, raw)

    async def handle_connection(self, raw: trio.SocketStream) -> None:
        host, port, *_ = raw.socket.getpeername()
        peer = f"{host}:{port}"
        _set_keepalive(raw)
        # The writer sends once per pass with tokens for the connection's streams, and the
        # reader wakes per client message: neither should spend a second scheduler step on
        # a socket call that did not wait (zl_actors.EagerSocketStream).
        socket_stream = EagerSocketStream.from_trio(raw)
        transport: trio.abc.Stream = socket_stream
        if self.ssl_context is not None:
            tls = trio.SSLStream(
                socket_stream, self.ssl_context, server_side=True, https_compatible=True
            )
            try:
                with trio.fail_after(self.config.handshake_timeout_s):
                    await tls.do_handshake()
            except (trio.TooSlowError, trio.BrokenResourceError) as error:
                log.info("gRPC TLS handshake with %s failed: %r", peer, error)
                await trio.aclose_forcefully(socket_stream)
                return
            if tls.selected_alpn_protocol() != "h2":
                log.info("gRPC client %s did not negotiate ALPN h2; trying HTTP/2 anyway", peer)
            transport = tls
        connection = Connection(
            transport=transport, peer=peer, methods=self.methods, config=self.config
        )
        self.connections.add(connection)
        if self.draining:
            connection.drain()
        try:
            await connection.serve()
        finally:
            self.connections.discard(connection)
            if self.draining and not self.connections:
                self.all_closed.set()

    async def drain(self, grace_s: float) -> None:
        self.draining = True
        for connection in list(self.connections):
            connection.drain()
        if not self.connections:
            self.all_closed.set()
        with trio.move_on_after(grace_s):
            await self.all_closed.wait()
        for connection in list(self.connections):
            connection.cancel_calls()


async def serve_grpc(
    services: Iterable[Service],
    *,
    config: GrpcServerConfig,
    ssl_context: ssl.SSLContext | None,
    task_status: trio.TaskStatus[GrpcServerHandle] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve gRPC until cancelled or until a graceful shutdown completes.

    Args:
        services: the services to serve (see ``service_from_descriptor``); with
            ``config.reflection`` the reflection services (v1alpha and v1) are added.
        config: address, limits and timeouts.
        ssl_context: the server's TLS context; ALPN ``h2`` is set on it here (grpcio clients
            refuse a server without it). None serves plaintext, allowed only with
            ``config.allow_plaintext``, and logged as a warning.
        task_status: receives a :class:`GrpcServerHandle` (bound host and port, shutdown)
            once the socket listens.

    Raises:
        BindError: the address cannot be bound (e.g. the port is taken); names host:port.
        ConfigError: plaintext without ``allow_plaintext``, or two services share a method.

    On cancellation every call is cancelled at once (their clients see the stream reset)
    and every socket is closed before this returns.
    """
    if ssl_context is None and not config.allow_plaintext:
        raise ConfigError("gRPC without TLS needs allow_plaintext (a development setting)")
    if ssl_context is not None:
        ssl_context.set_alpn_protocols(["h2"])
    server = _Server(
        methods=_method_table(services, config), config=config, ssl_context=ssl_context
    )
    listener = await _bind(config.host, config.port)
    bound_host, bound_port, *_ = listener.socket.getsockname()
    handle = GrpcServerHandle(
        host=bound_host, port=bound_port, default_grace_s=config.shutdown_grace_s
    )
    if ssl_context is None:
        log.warning("gRPC serving PLAINTEXT on %s:%s (allow_plaintext)", bound_host, bound_port)
    try:
        async with trio.open_nursery() as nursery:
            with handle._accept_scope:
                task_status.started(handle)
                await server.accept_loop(listener, nursery)
            await listener.aclose()
            await server.drain(handle.grace_s if handle.grace_s is not None else math.inf)
    finally:
        with trio.move_on_after(1) as scope:
            scope.shield = True
            await listener.aclose()
        handle._stopped.set()
