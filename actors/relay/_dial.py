"""Dialling a relay endpoint as a WebSocket client, with the socket closed on every path.

``trio_websocket.open_websocket_url`` leaves the TCP (or TLS) stream open when the opening
handshake does not finish: a relay that drops the connection mid-handshake (it is being
restarted), a ``ConnectionRejected`` raised by its reader task, the connect timeout, or
the caller being cancelled while it waits. Reconnecting clients hit those paths often,
so here the stream is opened by us and closed in a ``finally`` whatever happened.
"""

from __future__ import annotations

import contextlib
import ssl
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Final, cast

import trio
from trio_websocket import CloseReason, ConnectionClosed, WebSocketConnection, wrap_client_stream

from zl_actors import EagerSocketStream

from ._frames import SUBPROTOCOL
from ._wire import CLOSE_TIMEOUT_S

#: Default ports when a relay URL names none.
DEFAULT_PORTS: Final = {"ws": 80, "wss": 443}
#: What trio-websocket reads from the socket at a time (its default, 4 KiB, takes two reads
#: and two passes of the event loop for a 4 KiB tool result).
RECEIVE_BUFFER_BYTES: Final = 65_536
#: RFC 6455 code for a connection that ended without a close frame.
ABNORMAL_CLOSURE: Final = 1006
HANDSHAKE_LOST: Final = "connection lost during the opening handshake"


class _Watched:
    """A nursery stand-in for ``wrap_client_stream``: runs ``on_exit`` when its task ends.

    ``wrap_client_stream`` starts the connection's reader task and then waits for the
    relay's answer; if the connection dies first, only the reader task knows, and the
    wait would last until the connect timeout.
    """

    def __init__(self, nursery: trio.Nursery, on_exit: Callable[[], None]) -> None:
        self.nursery = nursery
        self.on_exit = on_exit

    def start_soon(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        async def watched() -> None:
            try:
                await fn(*args)
            finally:
                self.on_exit()

        self.nursery.start_soon(watched)


def split_url(url: str) -> tuple[str, int, str, bool]:
    """``(host, port, resource, tls)`` of a ``ws://`` or ``wss://`` URL.

    Raises:
        ValueError: another scheme, or no host.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"not a ws:// or wss:// URL: {url!r}")
    port = parts.port or DEFAULT_PORTS[parts.scheme]
    resource = parts.path or "/"
    if parts.query:
        resource = f"{resource}?{parts.query}"
    return parts.hostname, port, resource, parts.scheme == "wss"


@contextlib.asynccontextmanager
async def open_relay_websocket(
    url: str,
    ssl_context: ssl.SSLContext | None,
    *,
    token: str | None,
    message_queue_size: int,
    max_message_size: int,
    connect_timeout_s: float,
    extra_headers: Sequence[tuple[bytes, bytes]] = (),
    subprotocols: Sequence[str] = (SUBPROTOCOL,),
) -> AsyncIterator[WebSocketConnection]:
    """Connect to a relay endpoint with the relay subprotocol and a bearer token.

    Args:
        url: ``wss://host:port/v1/device`` or ``.../v1/host`` (``ws://`` only in development).
        ssl_context: verifies the relay (and may carry a client certificate); required for
            ``wss://``, ignored for ``ws://``.
        token: the bearer token sent in ``Authorization`` (None: no such header).
        message_queue_size: messages buffered before the reader stops reading the socket.
        max_message_size: larger messages close the connection with 1009.
        connect_timeout_s: TCP + TLS + WebSocket opening handshake.
        extra_headers: more request headers.
        subprotocols: what to offer, most preferred first; ``ws.subprotocol`` is what the
            relay chose (``_codec.codec_for`` gives its codec).

    Yields:
        the open connection; on leaving, it is closed (bounded by ``CLOSE_TIMEOUT_S``) and
        the socket is closed in every case.

    Raises:
        trio.TooSlowError: the connection was not open within ``connect_timeout_s``.
        OSError: TCP connect failed (refused, unreachable).
        trio_websocket.HandshakeError: the relay rejected the opening handshake.
        trio_websocket.ConnectionClosed: the relay closed the connection, or TLS failed
            (e.g. a client certificate it does not accept), during the handshake.
        ValueError: ``url`` is not a WebSocket URL, or ``wss://`` without a context.

    On cancellation the socket is closed before the cancellation propagates.
    """
    host, port, resource, tls = split_url(url)
    if tls and ssl_context is None:
        raise ValueError(f"{url} needs an SSL context")
    headers = list(extra_headers)
    if token is not None:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    host_header = host if port in (80, 443) else f"{host}:{port}"
    stream: EagerSocketStream | trio.SSLStream[EagerSocketStream] | None = None
    try:
        with trio.fail_after(connect_timeout_s):
            # Socket calls that yield only when they wait (zl_actors.EagerSocketStream): a
            # relayed call crosses this socket four times, each a pass of the loop saved.
            tcp = EagerSocketStream.from_trio(await trio.open_tcp_stream(host, port))
            if tls:
                assert ssl_context is not None
                stream = trio.SSLStream(
                    tcp, ssl_context, server_hostname=host, https_compatible=True
                )
            else:
                stream = tcp
        try:
            async with trio.open_nursery() as nursery:
                handshake = trio.CancelScope()
                reader_nursery = cast(trio.Nursery, _Watched(nursery, handshake.cancel))
                with trio.fail_after(connect_timeout_s), handshake:
                    ws = await wrap_client_stream(
                        reader_nursery,
                        stream,  # type: ignore[arg-type]  # any trio stream will do
                        host_header,
                        resource,
                        subprotocols=list(subprotocols),
                        extra_headers=headers,
                        message_queue_size=message_queue_size,
                        max_message_size=max_message_size,
                        receive_buffer_size=RECEIVE_BUFFER_BYTES,
                    )
                if handshake.cancelled_caught:
                    # The reader task ended first: the relay dropped the connection (or the
                    # TLS handshake failed) before answering; waiting on would only time out.
                    raise ConnectionClosed(CloseReason(ABNORMAL_CLOSURE, HANDSHAKE_LOST))
                try:
                    yield ws
                finally:
                    with trio.move_on_after(CLOSE_TIMEOUT_S) as scope:
                        scope.shield = True
                        with contextlib.suppress(Exception):
                            await ws.aclose()
                    # The reader task ends once the stream is closed; do not wait for it.
                    nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            # Only one task can fail (the body or the reader task, which then cancels the
            # other): callers catch the exception itself, as from ``open_websocket_url``.
            failures = [e for e in group.exceptions if not isinstance(e, trio.Cancelled)]
            if len(failures) == 1:
                raise failures[0] from None
            raise
    finally:
        if stream is not None:
            # Closes the socket at once, even when this task is being cancelled.
            await trio.aclose_forcefully(stream)
