"""``serve_debug_http``: the debug endpoint's HTTP/1.1 server, on Trio streams and ``h11``.

Why ``h11``: the endpoint serves two read-only resources to a handful of engineers, so it
needs a correct HTTP/1.1 parser with a bounded buffer and nothing else. ``h11`` is that
parser (by Trio's author, already installed as httpx's transport dependency), does no I/O of
its own, and so leaves every wait to this module, where each one gets a deadline:

- TLS handshake: ``handshake_timeout_s``;
- a whole request (request line, headers, body): ``request_read_timeout_s`` from the moment
  the connection is accepted or a kept-alive request's first byte arrives; a slow-loris
  client gets 408 and is closed when it passes;
- a kept-alive connection idle between requests: ``keepalive_idle_timeout_s``;
- one response: ``write_timeout_s``; a client that does not read is dropped.

Size is bounded by ``max_header_bytes`` (h11's receive buffer; over it: 431) and
``MAX_BODY_BYTES`` (over it: 413); concurrency by ``max_connections``: one more connection
gets 503 and is closed (up to ``MAX_REJECTING_CONNECTIONS`` answered at once, the rest closed
without an answer). A full ASGI server (hypercorn) would bring its own config, lifespan and
logging for the same two routes, and its own timeouts to audit.
"""

from __future__ import annotations

import errno
import gc
import http
import logging
import ssl

import attrs
import h11
import trio

from actors.telemetry import Telemetry
from supervisors.edges._listen import ListenError, bind_listener
from zl_actors import ActorSystem

from ._app import Response, answer, plain_error
from ._config import (
    ACCEPT_BACKOFF_S,
    CLOSE_LINGER_BYTES,
    CLOSE_LINGER_S,
    LISTEN_BACKLOG,
    MAX_BODY_BYTES,
    MAX_REJECTING_CONNECTIONS,
    MIN_TOKEN_LENGTH,
    PLAINTEXT_SETTING,
    RECEIVE_CHUNK_BYTES,
    REJECT_DEADLINE_S,
    TOKEN_ENV,
    TOKEN_SETTING,
    DebugHttpConfig,
    is_loopback_host,
)
from ._errors import DebugHttpBindError, DebugHttpConfigError

log = logging.getLogger(__name__)

#: accept() errors that mean "out of resources for now", not "the listener is broken".
_ACCEPT_RESOURCE_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
#: What a broken or vanished client looks like on a Trio stream.
_STREAM_GONE = (trio.BrokenResourceError, trio.ClosedResourceError)


@attrs.frozen(kw_only=True)
class DebugHttpBinding:
    """Where ``serve_debug_http`` listens, reported once the socket is bound."""

    host: str
    port: int
    tls: bool

    @property
    def url(self) -> str:
        """Base URL of the endpoint, e.g. ``http://127.0.0.1:40123``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"


def check_config(config: DebugHttpConfig, *, tls: bool) -> bool:
    """Refuse configurations that would expose the tree; return whether ``host`` is loopback.

    Raises:
        DebugHttpConfigError: a non-loopback host without ``token``, or without TLS and
            without ``allow_plaintext``. The message names the setting to change.
    """
    loopback = is_loopback_host(config.host)
    if not loopback and config.token is None:
        raise DebugHttpConfigError(
            f"the debug HTTP endpoint is configured to listen on {config.host!r}, which is not "
            f"a loopback address, so it requires a bearer token: set {TOKEN_SETTING} "
            f"(or {TOKEN_ENV}) to at least {MIN_TOKEN_LENGTH} random characters, or bind 127.0.0.1"
        )
    if not loopback and not tls and not config.allow_plaintext:
        raise DebugHttpConfigError(
            f"the debug HTTP endpoint on non-loopback {config.host!r} would send its bearer "
            f"token in clear text: give it a TLS context, or set {PLAINTEXT_SETTING} "
            "(development only)"
        )
    return loopback


async def _bind(host: str, port: int) -> trio.SocketListener:
    try:
        return await bind_listener(host, port, backlog=LISTEN_BACKLOG)
    except ListenError as error:
        raise DebugHttpBindError(host, port, error.reason) from error


class _Drop(Exception):
    """The connection is to be closed at once (client gone, or a deadline passed)."""


class _Connection:
    """One client connection: a loop of read request, answer, keep alive or close."""

    def __init__(
        self,
        *,
        transport: trio.abc.Stream,
        peer: str,
        system: ActorSystem,
        config: DebugHttpConfig,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.transport = transport
        self.peer = peer
        self.system = system
        self.config = config
        self.telemetry = telemetry
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=config.max_header_bytes)
        self.eof = False
        self.started = False
        #: The current request is HEAD: its answer carries headers only (RFC 9110 9.3.2).
        self.head = False

    async def serve(self, *, overloaded: bool) -> None:
        """Answer requests until the client leaves, a deadline passes, or one must close.

        With ``overloaded`` the first request is answered 503 and the connection closed.
        """
        first = True
        try:
            while True:
                request = await self._read_request(first=first)
                if request is None:
                    return
                first = False
                self.head = request.method == b"HEAD"
                if overloaded:
                    response = plain_error(503, "too many connections", ("Retry-After", "1"))
                else:
                    response = self._respond(request)
                await self._send(response, close=overloaded)
                if self.h11.our_state is not h11.DONE or self.h11.their_state is not h11.DONE:
                    await self._linger()
                    return
                self.h11.start_next_cycle()
        except _Drop:
            return

    def _runtime(self) -> dict[str, int]:
        tasks = 0
        root = trio.lowlevel.current_root_task()
        stack = [] if root is None else [root]
        while stack:
            task = stack.pop()
            tasks += 1
            for nursery in task.child_nurseries:
                stack.extend(nursery.child_tasks)
        return {
            "tasks": tasks,
            "actors": len(self.system.snapshot().walk()),
            "failures": self.system.failure_log.total,
            # Collections so far: pending cyclic garbage (an RSS that climbs until the next
            # collection) is told apart from a leak by these.
            "gc_collections": sum(stats["collections"] for stats in gc.get_stats()),
        }

    def _inject(self, action: str, path: str, seconds: float) -> None:
        faults = self.system.faults
        log.warning("debug endpoint: fault injection: %s %s", action, path)
        if action == "crash":
            faults.crash(path)
        elif action == "hang":
            faults.hang(path)
        elif action == "slow":
            faults.slow(path, seconds)
        else:
            faults.clear(path)

    def _respond(self, request: h11.Request) -> Response:
        try:
            response = answer(
                method=request.method,
                target=request.target,
                headers=list(request.headers),
                token=self.config.token,
                snapshot=self.system.snapshot,
                faults=self._inject if self.system.faults_enabled else None,
                label=self.config.label,
                runtime=self._runtime,
                telemetry=self.telemetry,
                title=self.system.root.name,
            )
        except Exception:
            # A bug here must cost one answer, not the endpoint (the tree may be mid-change).
            log.exception("debug endpoint failed to answer %r", request.target)
            response = plain_error(500, "internal error")
        log.debug(
            "debug %s %s %s -> %d",
            self.peer,
            request.method.decode("latin-1"),
            request.target.decode("latin-1"),
            response.status,
        )
        if response.status == 401:
            log.info("debug endpoint: unauthorised request from %s", self.peer)
        return response

    async def _read_request(self, *, first: bool) -> h11.Request | None:
        """The next complete request, or None when the connection is to close.

        Answers 408 (deadline), 431 (headers too large), 413 (body too large) and 400
        (malformed) itself before returning None.
        """
        # A request that has begun (bytes buffered, or a fresh connection that has to speak
        # first) gets the request deadline; an idle kept-alive connection the idle one.
        self.started = first or bool(self.h11.trailing_data[0])
        timeout = (
            self.config.request_read_timeout_s
            if self.started
            else self.config.keepalive_idle_timeout_s
        )
        failure: Response | None = None
        with trio.CancelScope(deadline=trio.current_time() + timeout) as scope:
            try:
                return await self._receive_request(scope)
            except h11.RemoteProtocolError as error:
                if self.eof:
                    return None  # the client closed mid-request: nobody to answer
                status = error.error_status_hint
                failure = plain_error(status, http.HTTPStatus(status).phrase.lower())
            except _BodyTooLarge:
                failure = plain_error(413, f"request body over {MAX_BODY_BYTES} bytes")
        if scope.cancelled_caught:
            if not self.started:
                return None  # idle keep-alive ran out: close quietly, as clients expect
            log.info("debug endpoint: request from %s too slow; closing", self.peer)
            failure = plain_error(408, "request timeout")
        if failure is not None and self.h11.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            await self._send(failure, close=True)
            await self._linger()
        return None

    async def _receive_request(self, scope: trio.CancelScope) -> h11.Request | None:
        request: h11.Request | None = None
        body_bytes = 0
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                try:
                    data = await self.transport.receive_some(RECEIVE_CHUNK_BYTES)
                except _STREAM_GONE:
                    return None
                if not self.started and data:
                    self.started = True
                    scope.deadline = trio.current_time() + self.config.request_read_timeout_s
                self.eof = not data
                self.h11.receive_data(bytes(data))
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body_bytes += len(event.data)
                if body_bytes > MAX_BODY_BYTES:
                    raise _BodyTooLarge
            elif isinstance(event, h11.EndOfMessage):
                return request
            else:  # ConnectionClosed (or PAUSED, which cannot happen before EndOfMessage)
                return None

    async def _send(self, response: Response, *, close: bool) -> None:
        headers = [(name.encode(), value.encode()) for name, value in response.headers]
        headers.append((b"content-length", str(len(response.body)).encode()))
        if close:
            headers.append((b"connection", b"close"))
        reason = http.HTTPStatus(response.status).phrase.encode()
        wire = b"".join(
            part or b""
            for part in (
                self.h11.send(
                    h11.Response(status_code=response.status, headers=headers, reason=reason)
                ),
                self.h11.send(h11.Data(data=b"" if self.head else response.body)),
                self.h11.send(h11.EndOfMessage()),
            )
        )
        with trio.move_on_after(self.config.write_timeout_s) as scope:
            try:
                await self.transport.send_all(wire)
            except _STREAM_GONE as error:
                raise _Drop from error
        if scope.cancelled_caught:
            log.info("debug endpoint: %s did not read its response in time; closing", self.peer)
            raise _Drop

    async def _linger(self) -> None:
        # Closing with unread client bytes makes the kernel send RST, which can destroy the
        # response still in flight; so say EOF, then read (bounded) until the client closes.
        with trio.move_on_after(CLOSE_LINGER_S):
            try:
                if isinstance(self.transport, trio.SocketStream):
                    await self.transport.send_eof()
                drained = 0
                while drained < CLOSE_LINGER_BYTES:
                    data = await self.transport.receive_some(RECEIVE_CHUNK_BYTES)
                    if not data:
                        return
                    drained += len(data)
            except _STREAM_GONE:
                return


class _BodyTooLarge(Exception):
    pass


class _Server:
    """The accept loop and the connection counts of one ``serve_debug_http`` call."""

    def __init__(
        self,
        *,
        system: ActorSystem,
        config: DebugHttpConfig,
        ssl_context: ssl.SSLContext | None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.system = system
        self.config = config
        self.telemetry = telemetry
        self.ssl_context = ssl_context
        self.active = 0
        self.rejecting = 0

    async def accept_loop(self, listener: trio.SocketListener, nursery: trio.Nursery) -> None:
        while True:
            try:
                raw = await listener.accept()
            except OSError as error:
                if error.errno not in _ACCEPT_RESOURCE_ERRNOS:
                    raise
                log.warning("debug endpoint accept failed (%s); retrying shortly", error)
                await trio.sleep(ACCEPT_BACKOFF_S)
                continue
            if self.active < self.config.max_connections:
                self.active += 1
                nursery.start_soon(self.handle, raw, False)
            elif self.rejecting < MAX_REJECTING_CONNECTIONS:
                self.rejecting += 1
                nursery.start_soon(self.handle, raw, True)
            else:
                await trio.aclose_forcefully(raw)

    async def handle(self, raw: trio.SocketStream, overloaded: bool) -> None:
        transport: trio.abc.Stream = raw
        try:
            host, port, *_ = raw.socket.getpeername()
            # Over the cap the whole exchange gets one short deadline: it must stay cheap.
            with trio.move_on_after(REJECT_DEADLINE_S if overloaded else float("inf")):
                if self.ssl_context is not None:
                    tls = trio.SSLStream(
                        raw, self.ssl_context, server_side=True, https_compatible=True
                    )
                    transport = tls
                    with trio.move_on_after(self.config.handshake_timeout_s) as scope:
                        await tls.do_handshake()
                    if scope.cancelled_caught:
                        log.info("debug endpoint: TLS handshake with %s:%s timed out", host, port)
                        return
                connection = _Connection(
                    transport=transport,
                    peer=f"{host}:{port}",
                    system=self.system,
                    config=self.config,
                    telemetry=self.telemetry,
                )
                await connection.serve(overloaded=overloaded)
        except (*_STREAM_GONE, OSError) as error:
            log.debug("debug endpoint connection ended: %r", error)
        except Exception:
            # One connection's bug must not take the endpoint (and its nursery) down.
            log.exception("debug endpoint connection failed")
        finally:
            if overloaded:
                self.rejecting -= 1
            else:
                self.active -= 1
            await trio.aclose_forcefully(transport)


async def serve_debug_http(
    system: ActorSystem,
    *,
    config: DebugHttpConfig,
    ssl_context: ssl.SSLContext | None = None,
    telemetry: Telemetry | None = None,
    task_status: trio.TaskStatus[DebugHttpBinding] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the debug endpoint until cancelled.

    ``GET /debug/actors`` answers the live tree (``system.snapshot()``) as JSON when asked
    (``?format=json`` or an ``Accept`` preferring ``application/json``), else as an HTML page
    (``?refresh=SECONDS`` makes it reload itself); ``GET /debug/health`` answers 200 ``ok``;
    with ``telemetry``, ``GET /metrics`` is the Prometheus scrape and ``GET /debug/dashboard``
    draws the same figures as charts.
    Other paths get 404, other methods on these paths 405. With ``config.token`` every
    request must carry ``Authorization: Bearer <token>`` or gets 401.

    Args:
        system: the running actor system whose tree is served.
        config: address, token, limits and timeouts.
        ssl_context: the server's TLS context (see ``supervisors.tls.server_ssl_context``);
            ALPN ``http/1.1`` is set on it here. None serves plaintext, which a non-loopback
            address allows only with ``config.allow_plaintext``.
        task_status: receives a :class:`DebugHttpBinding` (bound host, port, URL) once the
            socket listens.

    Raises:
        DebugHttpConfigError: a non-loopback host without a token (or without TLS and
            ``allow_plaintext``); raised before any socket is opened.
        DebugHttpBindError: the address cannot be bound (e.g. the port is taken).

    On cancellation every connection is closed at once and the listener with it.
    """
    loopback = check_config(config, tls=ssl_context is not None)
    if ssl_context is not None:
        ssl_context.set_alpn_protocols(["http/1.1"])
    listener = await _bind(config.host, config.port)
    try:
        bound_host, bound_port, *_ = listener.socket.getsockname()
        binding = DebugHttpBinding(host=bound_host, port=bound_port, tls=ssl_context is not None)
        if ssl_context is None and not loopback:
            log.warning(
                "PLAINTEXT (NO TLS): debug endpoint %s is not encrypted because "
                f"{PLAINTEXT_SETTING} is set; its bearer token is readable on the "
                "network. Development only.",
                binding.url,
            )
        log.info("debug endpoint listening on %s", binding.url)
        server = _Server(system=system, config=config, ssl_context=ssl_context, telemetry=telemetry)
        async with trio.open_nursery() as nursery:
            task_status.started(binding)
            await server.accept_loop(listener, nursery)
    finally:
        with trio.move_on_after(1) as scope:
            scope.shield = True
            await listener.aclose()
