"""A real HTTP/1.1 server on loopback that plays the OpenAI chat-completions stream.

It is written on Trio with ``h11`` directly (no ASGI server) because its job is to
misbehave at the socket level: hang before the status line, stop mid-body, cut the TCP
connection inside a chunked body, and count connections as the kernel sees them. An ASGI
server would hide exactly those things behind its own connection handling.

Errors: this module raises nothing of its own. A request it cannot parse gets a 400 and the
connection is closed; a client that leaves mid-response just ends that connection.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any

import attrs
import h11
import trio

from ._script import Cut, Hang, ResponsePlan, Script, Send, plan_response

# Bytes read from the socket at a time; requests here are small JSON bodies.
_RECEIVE_SIZE = 65_536
# Requests larger than this are refused: the fake is for tests, not for uploads.
_MAX_REQUEST_BYTES = 4 * 1024 * 1024
# How long a client may take to send a whole request before the fake gives up on it.
_REQUEST_DEADLINE = 10.0
# One-shot scripts queued ahead of the default; a test that queues more is a bug.
_MAX_QUEUED_SCRIPTS = 1024
# Requests (and connection closes) remembered by default: every test's, not a benchmark's.
DEFAULT_KEEP = 1000


@attrs.frozen(kw_only=True)
class RecordedRequest:
    """One request as the fake upstream received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class FakeUpstream:
    """The fake upstream's state: what it will answer, and what it has seen.

    The script for a request is, in order: the next one-shot script queued with
    :meth:`push`, else the script registered for the request's ``model`` in
    ``by_model``, else ``default``. All three may be changed while the server runs.

    Args:
        default: the script used when nothing more specific applies.
        by_model: scripts chosen by the request's ``model`` field.
        keep: how many of the latest requests and connection closes are remembered (0 for
            none, as a long benchmark run wants: it would otherwise grow without bound).
    """

    def __init__(
        self,
        default: Script | None = None,
        *,
        by_model: dict[str, Script] | None = None,
        keep: int = DEFAULT_KEEP,
    ) -> None:
        self.default = default if default is not None else Script()
        self.by_model: dict[str, Script] = dict(by_model or {})
        #: The latest ``keep`` requests, oldest first.
        self.requests: deque[RecordedRequest] = deque(maxlen=keep)
        #: How many requests were received in all.
        self.request_count = 0
        self.open_connections = 0
        self.total_connections = 0
        # trio.current_time() of the latest connection closes, for "closed within X ms".
        self.closed_at: deque[float] = deque(maxlen=keep)
        self.url = ""
        self._queued: deque[Script] = deque()
        self._changed = trio.Event()

    def push(self, *scripts: Script) -> None:
        """Queue one-shot scripts: each answers exactly one future request, in order.

        Raises:
            OverflowError: if more than the queue's capacity would be waiting.
        """
        if len(self._queued) + len(scripts) > _MAX_QUEUED_SCRIPTS:
            raise OverflowError("too many queued scripts")
        self._queued.extend(scripts)

    def choose(self, body: dict[str, Any]) -> Script:
        """The script for a request with this body (consumes a queued one-shot script)."""
        if self._queued:
            return self._queued.popleft()
        return self.by_model.get(str(body.get("model")), self.default)

    async def wait_until(self, *, open_connections: int | None = None, requests: int = 0) -> None:
        """Wait until the fake has seen ``requests`` requests and has ``open_connections`` open.

        Cancellation: plain; callers bound it with ``trio.fail_after``.
        """
        while not (
            self.request_count >= requests
            and (open_connections is None or self.open_connections == open_connections)
        ):
            await self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def _connection_opened(self) -> None:
        self.open_connections += 1
        self.total_connections += 1
        self._notify()

    def _connection_closed(self) -> None:
        self.open_connections -= 1
        self.closed_at.append(trio.current_time())
        self._notify()

    def _record(self, request: RecordedRequest) -> None:
        self.requests.append(request)
        self.request_count += 1
        self._notify()


async def _read_request(
    conn: h11.Connection, stream: trio.SocketStream
) -> tuple[h11.Request, bytes] | None:
    """Read one whole request; None when the client closed the connection between requests."""
    request: h11.Request | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await stream.receive_some(_RECEIVE_SIZE)
            conn.receive_data(data)
            continue
        if isinstance(event, h11.ConnectionClosed):
            return None
        if isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > _MAX_REQUEST_BYTES:
                raise h11.RemoteProtocolError("request too large")
        elif isinstance(event, h11.EndOfMessage):
            assert request is not None  # h11 guarantees Request comes first
            return request, bytes(body)


async def _send(conn: h11.Connection, stream: trio.SocketStream, event: h11.Event) -> None:
    data = conn.send(event)
    if data:
        await stream.send_all(data)


async def _play(conn: h11.Connection, stream: trio.SocketStream, plan: ResponsePlan) -> bool:
    """Send one response; returns False when the connection must be dropped afterwards."""
    if plan.steps and isinstance(plan.steps[0], Hang):
        await trio.sleep_forever()
    headers = [(k.encode(), v.encode()) for k, v in plan.headers]
    reason = HTTPStatus(plan.status).phrase.encode()
    response = h11.Response(status_code=plan.status, headers=headers, reason=reason)
    await _send(conn, stream, response)
    for step in plan.steps:
        if isinstance(step, Send):
            if step.delay > 0:
                await trio.sleep(step.delay)
            await _send(conn, stream, h11.Data(data=step.data))
        elif isinstance(step, Hang):
            await trio.sleep_forever()
        elif isinstance(step, Cut):
            return False
    await _send(conn, stream, h11.EndOfMessage())
    return True


async def _watch_peer(
    conn: h11.Connection, stream: trio.SocketStream, scope: trio.CancelScope
) -> None:
    """While a response plays, notice the client leaving and stop the response at once."""
    while True:
        try:
            data = await stream.receive_some(_RECEIVE_SIZE)
        except trio.BrokenResourceError:
            data = b""
        if not data:
            scope.cancel()
            return
        # A pipelined next request: h11 buffers it until this response is done.
        conn.receive_data(data)


async def _respond_bad_request(conn: h11.Connection, stream: trio.SocketStream) -> None:
    payload = b'{"error": {"message": "bad request", "type": "invalid_request_error"}}'
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))]
    await _send(conn, stream, h11.Response(status_code=400, headers=headers, reason=b"Bad Request"))
    await _send(conn, stream, h11.Data(data=payload))
    await _send(conn, stream, h11.EndOfMessage())


def _parse_body(raw: bytes) -> dict[str, Any] | None:
    """The request body as a JSON object, or None when it is not one."""
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


async def _serve_connection(upstream: FakeUpstream, stream: trio.SocketStream) -> None:
    upstream._connection_opened()
    conn = h11.Connection(h11.SERVER)
    try:
        while True:
            got = None
            with trio.move_on_after(_REQUEST_DEADLINE):
                got = await _read_request(conn, stream)
            if got is None:
                return
            request, raw = got
            body = _parse_body(raw)
            if body is None:
                await _respond_bad_request(conn, stream)
                return
            upstream._record(
                RecordedRequest(
                    method=request.method.decode(),
                    path=request.target.decode(),
                    headers={k.decode().lower(): v.decode() for k, v in request.headers},
                    body=body,
                )
            )
            plan = plan_response(upstream.choose(body), body)
            keep = False
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_watch_peer, conn, stream, nursery.cancel_scope)
                try:
                    keep = await _play(conn, stream, plan)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    # The client left mid-response (a reset can beat _watch_peer to it);
                    # caught here, inside the nursery, so it ends this connection quietly.
                    keep = False
                nursery.cancel_scope.cancel()
            if not keep or conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return
            conn.start_next_cycle()
    except (h11.ProtocolError, trio.BrokenResourceError, trio.ClosedResourceError):
        # The client sent garbage or vanished; either way this connection is over.
        return
    finally:
        # aclose on a trio socket closes at once, even when cancelled: no shield needed.
        await stream.aclose()
        upstream._connection_closed()


async def serve_fake_upstream(
    upstream: FakeUpstream,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the fake upstream until cancelled; never returns.

    Args:
        upstream: the scripts to play and the place to record requests and connections.
        host: the address to bind; loopback unless a demo needs otherwise.
        port: the port to bind; 0 picks a free one.
        task_status: receives the base URL (``http://127.0.0.1:PORT/v1``) once listening.

    Cancellation: closes the listener and every open connection.
    """
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound_port = listeners[0].socket.getsockname()[1]
    upstream.url = f"http://{host}:{bound_port}/v1"

    async def handler(stream: trio.SocketStream) -> None:
        await _serve_connection(upstream, stream)

    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, handler, listeners)
        task_status.started(upstream.url)
        await trio.sleep_forever()


@asynccontextmanager
async def open_fake_upstream(
    default: Script | None = None,
    *,
    by_model: dict[str, Script] | None = None,
    keep: int = DEFAULT_KEEP,
) -> AsyncIterator[FakeUpstream]:
    """Run a fake upstream on 127.0.0.1 for the body of the ``async with``.

    Yields:
        The :class:`FakeUpstream`, with ``url`` set to its base URL.

    Cancellation: leaving the block stops the server and closes its connections.
    """
    upstream = FakeUpstream(default, by_model=by_model, keep=keep)
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_fake_upstream, upstream)
        try:
            yield upstream
        finally:
            nursery.cancel_scope.cancel()
