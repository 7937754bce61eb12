"""Opening a listening TCP socket the same way for every edge."""

from __future__ import annotations

import socket

import trio


class ListenError(Exception):
    """The address cannot be resolved or bound; each edge re-raises its own typed error."""

    def __init__(self, host: str, port: int, reason: str) -> None:
        super().__init__(f"cannot listen on {host}:{port}: {reason}")
        self.host = host
        self.port = port
        self.reason = reason


async def bind_listener(host: str, port: int, *, backlog: int) -> trio.SocketListener:
    """Bind ``host:port`` (port 0 picks one) and listen.

    Raises:
        ListenError: the host does not resolve or the address is taken or not ours.
    """
    try:
        infos = await trio.socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as error:
        raise ListenError(host, port, f"cannot resolve host: {error}") from error
    family, kind, proto, _, sockaddr = infos[0]
    sock = trio.socket.socket(family, kind, proto)
    try:
        # SO_REUSEADDR lets a restarted process bind past TIME_WAIT; on Linux it never lets
        # two live listeners share a port (SO_REUSEPORT would, and is deliberately never set).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        await sock.bind(sockaddr)
        sock.listen(backlog)
    except OSError as error:
        sock.close()
        raise ListenError(host, port, error.strerror or str(error)) from error
    return trio.SocketListener(sock)
