"""The adapter's sockets: an httpcore network backend that costs fewer Trio scheduling passes.

Why: under load every hand-over between Trio tasks waits for a whole pass of the run queue,
and Trio's socket calls yield to the scheduler after every send and receive even when they
did not have to wait. A completion's first token passes through several of those on its way
in (request headers, request body, response headers, first chunk). httpcore's own Trio
stream adds two context managers and a cancel scope to every read. Measured with
``python -m bench.provider`` (100 sessions, three full runs each): host CPU 75 % with
httpcore's backend, 66 to 71 % with this one; added TTFT p50 16 to 27 ms before, 11 to 15 ms
after (the p95 swings too much between runs on a shared machine to rank them).

What it does differently:

* **A socket call that does not have to wait does not yield** (``zl_actors.EagerSocketStream``,
  under TLS too).
* **Writes are coalesced until the next read.** httpcore writes the request head and body
  separately and then reads the response; they leave in one ``send``.
* **A free connection lock does not yield.** httpcore takes two locks per request on a
  kept-alive connection (the connection's request lock, then its HTTP/1.1 state lock, and the
  state lock again when the response closes), and ``trio.Lock`` yields to the scheduler on
  every acquire, even when nobody holds it. The pool here gives its connections locks that
  are taken at once when free (:class:`_FreeLock`). Those yields came before the request was
  written, so each put the turn behind the event loop's busiest passes: at 100 sessions
  (``python -m bench.provider``, seven alternating runs each) added TTFT p50 8.8 to 11.5 ms
  before, 5.4 to 8.8 ms after; p95 14.0 to 30.8 ms before, 7.8 to 19.1 ms after.

Errors: httpcore's own exceptions, which httpx maps to its own (``ConnectError``,
``ConnectTimeout``, ``ReadError``, ``WriteError``, ``ReadTimeout``, ``WriteTimeout``).
"""

from __future__ import annotations

import math
import select
import ssl
from collections.abc import Iterable
from typing import Any, Final

import httpcore
import httpx
import trio

from zl_actors import EagerSocketStream

#: A read asks the socket for at least this much (httpcore asks for less).
_RECEIVE_FLOOR: Final = 65_536


def _deadline(timeout: float | None) -> float:
    return math.inf if timeout is None else timeout


class _Stream(httpcore.AsyncNetworkStream):
    """An eager socket stream, or TLS over one, with writes coalesced until the next read."""

    def __init__(self, stream: EagerSocketStream | trio.SSLStream[EagerSocketStream]) -> None:
        self._stream = stream
        self._pending = bytearray()

    @property
    def _socket_stream(self) -> EagerSocketStream:
        stream = self._stream
        return stream.transport_stream if isinstance(stream, trio.SSLStream) else stream

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        # Sent by the next read (or dropped with the connection): httpcore always reads the
        # response after writing a request.
        self._pending += buffer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if timeout is None:
            # The adapter's case: its deadlines are Trio scopes around the whole stream.
            return await self._read(max_bytes)
        try:
            with trio.fail_after(timeout):
                return await self._read(max_bytes)
        except trio.TooSlowError:
            raise httpcore.ReadTimeout("read timed out") from None

    async def _read(self, max_bytes: int) -> bytes:
        if self._pending:
            data, self._pending = bytes(self._pending), bytearray()
            try:
                await self._stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise httpcore.WriteError(str(exc) or type(exc).__name__) from exc
        try:
            return bytes(await self._stream.receive_some(max(max_bytes, _RECEIVE_FLOOR)))
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise httpcore.ReadError(str(exc) or type(exc).__name__) from exc

    async def aclose(self) -> None:
        self._pending.clear()
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if isinstance(self._stream, trio.SSLStream):
            raise httpcore.UnsupportedProtocol("TLS inside TLS (an HTTPS proxy) is not supported")
        tls = trio.SSLStream(
            self._stream,
            ssl_context=ssl_context,
            server_hostname=server_hostname,
            https_compatible=True,
        )
        try:
            with trio.fail_after(_deadline(timeout)):
                await tls.do_handshake()
        except trio.TooSlowError:
            await trio.aclose_forcefully(tls)
            raise httpcore.ConnectTimeout("TLS handshake timed out") from None
        except (trio.BrokenResourceError, OSError) as exc:
            await trio.aclose_forcefully(tls)
            raise httpcore.ConnectError(str(exc)) from exc
        return _Stream(tls)

    def get_extra_info(self, info: str) -> Any:
        sock = self._socket_stream.socket
        if info == "ssl_object" and isinstance(self._stream, trio.SSLStream):
            # The stream answers the SSLObject's questions (selected_alpn_protocol, ...).
            return self._stream
        if info == "socket":
            return sock
        if info == "client_addr":
            return sock.getsockname()
        if info == "server_addr":
            return sock.getpeername()
        if info == "is_readable":
            # httpcore asks before reusing an idle connection: readable means closed (or junk).
            # poll, not select: a busy host's descriptors go past select's limit of 1024.
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        return None


class _FreeLock:
    """A Trio lock taken without a scheduling point when it is free (module docstring).

    Has the async context manager interface of httpcore's own lock, which is all httpcore
    uses. Waiting for a held lock is a checkpoint as usual.
    """

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = trio.Lock()

    async def __aenter__(self) -> _FreeLock:
        try:
            self._lock.acquire_nowait()
        except trio.WouldBlock:
            await self._lock.acquire()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._lock.release()


def _free_lock(owner: object, name: str) -> None:
    """Give ``owner`` a :class:`_FreeLock` as its lock attribute ``name``.

    Raises:
        TypeError: httpcore no longer has that lock (a new httpcore version: update this).
    """
    if not hasattr(owner, name):
        raise TypeError(f"{type(owner).__name__} has no {name}; update actors/provider/_net.py")
    setattr(owner, name, _FreeLock())


class _Connection(httpcore.AsyncHTTPConnection):
    """httpcore's connection, HTTP/1.1, with :class:`_FreeLock` for its locks."""

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        _free_lock(self, "_request_lock")
        self._inner_freed = False

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        response = await super().handle_async_request(request)
        if not self._inner_freed:
            # The HTTP/1.1 connection inside is made by the first request; from the next one
            # on its state lock is free too (it is not held between requests).
            inner = getattr(self, "_connection", None)
            if isinstance(inner, httpcore.AsyncHTTP11Connection):
                _free_lock(inner, "_state_lock")
                self._inner_freed = True
        return response


class _Pool(httpcore.AsyncConnectionPool):
    """httpcore's pool (no proxy) whose connections are :class:`_Connection`."""

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext,
        limits: httpx.Limits,
        network_backend: httpcore.AsyncNetworkBackend,
    ) -> None:
        super().__init__(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=network_backend,
        )
        self._connection_settings: dict[str, Any] = {
            "ssl_context": ssl_context,
            "keepalive_expiry": limits.keepalive_expiry,
            "network_backend": network_backend,
        }

    def create_connection(self, origin: httpcore.Origin) -> httpcore.AsyncConnectionInterface:
        return _Connection(origin=origin, **self._connection_settings)


class FewerPassesBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend for the adapter (see the module docstring)."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            with trio.fail_after(_deadline(timeout)):
                # Trio's connect: address resolution, happy eyeballs, TCP_NODELAY.
                stream = await trio.open_tcp_stream(host, port, local_address=local_address)
        except trio.TooSlowError:
            raise httpcore.ConnectTimeout(f"connecting to {host}:{port} timed out") from None
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        for option in socket_options or ():
            stream.setsockopt(*option)
        return _Stream(EagerSocketStream.from_trio(stream))

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.UnsupportedProtocol("the adapter does not use Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await trio.sleep(seconds)


class FewerPassesTransport(httpx.AsyncHTTPTransport):
    """``httpx.AsyncHTTPTransport`` whose pool uses :class:`FewerPassesBackend` and free locks.

    httpx takes no network backend, so the transport's pool is rebuilt with the same
    settings, the backend and :class:`_Connection`; everything else (request and response
    mapping, exception mapping) is httpx's own.
    """

    def __init__(self, *, limits: httpx.Limits, ssl_context: ssl.SSLContext | None = None) -> None:
        # httpx's default: the system's (or certifi's) CA bundle, hostname checked. Loading
        # it takes ~25 ms of the event loop's thread: pass one context to many transports.
        if ssl_context is None:
            ssl_context = httpx.create_ssl_context()
        super().__init__(limits=limits, verify=ssl_context)
        if not isinstance(getattr(self, "_pool", None), httpcore.AsyncConnectionPool):
            raise TypeError("this httpx version keeps its pool elsewhere; update _net.py")
        self._pool = _Pool(
            ssl_context=ssl_context,
            limits=limits,
            network_backend=FewerPassesBackend(),
        )
