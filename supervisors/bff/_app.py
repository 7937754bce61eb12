"""The BFF's HTTP API (Starlette on Trio): sessions, SSE turns, health, the page, errors.

Each request is authenticated here (the caller token), its body read with a bound and
parsed by the strict JSON reader, then checked against the OpenAPI document; the work is
done by the session actors (``_session.py``). Every error leaves as a problem document
(``_problems.py``); an unexpected failure is a 500 problem and a log line, never a
traceback to the client.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.resources
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

import attrs
import trio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from actors.policy import CallerRejected
from actors.strict_json import StrictJsonError
from actors.strict_json import loads as strict_loads
from actors.telemetry import new_traceparent, parse_traceparent
from contracts.generated.grpc.health.v1 import health_pb2
from supervisors.edges.grpc import CallError, ConnectError, GrpcChannel
from zl_actors import (
    ActorError,
    ActorRef,
    ActorSpec,
    ActorStopped,
    DuplicateName,
    MailboxFull,
    Restart,
    SupervisorRef,
    TooManyChildren,
)

from ._auth import Caller, CallerVerifier
from ._config import BffConfig
from ._events import SSE_HEARTBEAT, TERMINAL_KINDS, kind_of, sse_event
from ._openapi import check_body, load_validators
from ._problems import Problem, describe_code
from ._session import (
    ChatSession,
    SessionRequest,
    SessionSettings,
    open_host_session,
    session_lifetime_s,
)
from ._table import SessionTable
from .messages import (
    AbandonTurn,
    CancelCurrentTurn,
    CloseSession,
    GetSessionInfo,
    Refusal,
    SessionInfo,
    SessionMessage,
    StartTurn,
    TurnStream,
)

log = logging.getLogger("zl.bff.http")

HEALTH_CHECK = "/grpc.health.v1.Health/Check"
#: How long an endpoint waits for a session actor's answer (it answers from memory).
ASK_TIMEOUT_S: Final = 5.0
#: A disconnected reader's AbandonTurn waits this long for room in a full mailbox.
ABANDON_TIMEOUT_S: Final = 1.0
_JSON_TYPES: Final = ("application/json",)
#: Where RequestGuard leaves the server's send in the scope (for streamed bodies).
RAW_SEND_KEY: Final = "zl.server_send"
_STATIC: Final = {"chat.js": "text/javascript", "chat.css": "text/css"}
#: The page loads nothing from elsewhere and runs no inline code.
PAGE_CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@attrs.define
class BffState:
    """What every request handler shares."""

    config: BffConfig
    verifier: CallerVerifier
    channel: GrpcChannel
    sessions: SupervisorRef
    table: SessionTable

    @property
    def settings(self) -> SessionSettings:
        section = self.config.sessions
        return SessionSettings(
            turn_buffer_events=section.turn_buffer_events,
            stall_timeout_s=section.stall_timeout_s,
            idle_timeout_s=section.idle_timeout_s,
            close_timeout_s=section.close_timeout_s,
        )


# --- request helpers ------------------------------------------------------------------


def authenticate(state: BffState, request: Request) -> Caller:
    try:
        return state.verifier.verify_header(request.headers.get("authorization"))
    except CallerRejected as exc:
        raise Problem(exc.code, exc.message) from None


async def read_json(request: Request, schema: str, max_bytes: int) -> Any:
    """The request's body as JSON checked against the OpenAPI schema ``schema``.

    Raises:
        Problem: 415 (not JSON), 413 (too large), 408 (too slow), 400 (malformed, or not
            the schema).
    """
    timeout = _state(request).config.http.read_timeout_s
    with trio.move_on_after(timeout):
        return await _read_json(request, schema, max_bytes)
    raise Problem("invalid_request", f"the body did not arrive within {timeout:g} s", status=408)


async def _read_json(request: Request, schema: str, max_bytes: int) -> Any:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in _JSON_TYPES:
        raise Problem("invalid_request", "the body must be application/json", status=415)
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > max_bytes):
        raise Problem("message.too_large", f"the body is over {max_bytes} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise Problem("message.too_large", f"the body is over {max_bytes} bytes")
    try:
        value = strict_loads(bytes(body), max_bytes=max_bytes)
    except StrictJsonError as exc:
        raise Problem("invalid_request", f"the body is not valid JSON: {exc}") from None
    check_body(schema, value)
    return value


def traceparent_of(request: Request) -> str:
    """The caller's ``traceparent`` if it is valid, else a new one (every turn is traced)."""
    parsed = parse_traceparent(request.headers.get("traceparent"))
    return str(parsed if parsed is not None else new_traceparent())


def session_json(info: SessionInfo) -> dict[str, Any]:
    return {
        "session_id": info.session_id,
        "tenant": info.tenant,
        "user": info.user,
        "device_id": info.device_id,
        "model": info.model,
        "limits": {
            "max_turn_ms": info.max_turn_ms,
            "token_budget": info.token_budget,
            "max_message_bytes": info.max_message_bytes,
        },
        "expires_at": dt.datetime.fromtimestamp(info.expires_at, dt.UTC)
        .isoformat(timespec="seconds")
        .replace("+00:00", "Z"),
        "turn_running": info.turn_running,
    }


async def ask_session(ref: ActorRef[SessionMessage], message: Any, *, timeout: float) -> Any:
    try:
        return await ref.ask(message, timeout=timeout)
    except ActorStopped:
        raise Problem("session.not_found", "the session has ended") from None
    except ActorError as exc:
        raise Problem("internal", f"the session failed: {type(exc).__name__}") from None


async def start_session(
    state: BffState, caller: Caller, request: SessionRequest, traceparent: str
) -> tuple[ActorRef[SessionMessage], SessionInfo]:
    """Reserve a place, start the session on the host, and hand its stream to an actor.

    Raises:
        Problem: a cap is reached (429/503), the device is not the caller's (403), or the
            host refused or failed (its code).
    """
    if not caller.may_use(request.device_id):
        raise Problem("forbidden", f"your token does not cover device {request.device_id!r}")
    reservation = state.table.reserve(caller.owner)
    stream = None
    try:
        stream, info = await open_host_session(
            state.channel,
            caller=caller,
            request=request,
            traceparent=traceparent,
            lifetime_s=session_lifetime_s(caller, state.config.sessions.max_session_s),
            start_timeout_s=state.config.host.start_timeout_s,
        )
        started_stream = stream
        table = state.table
        ref: ActorRef[SessionMessage] = await state.sessions.start_child(
            ActorSpec(
                name=f"session-{info.session_id}",
                factory=lambda: ChatSession(
                    stream=started_stream,
                    info=info,
                    settings=state.settings,
                    on_stopped=table.remove,
                ),
                restart=Restart.TEMPORARY,
            )
        )
    except TooManyChildren:
        if stream is not None:
            stream.cancel()
        state.table.release(reservation)
        raise Problem("overloaded", "the BFF is at its session limit") from None
    except DuplicateName:
        if stream is not None:
            stream.cancel()
        state.table.release(reservation)
        raise Problem("internal", "the host gave a session id already in use", status=502) from None
    except BaseException:
        if stream is not None:
            stream.cancel()
        state.table.release(reservation)
        raise
    state.table.add(info.session_id, reservation, ref)
    return ref, info


# --- SSE --------------------------------------------------------------------------------


class TurnEventStream:
    """The ASGI response of ``/v1/chat/stream``: a turn's events as SSE.

    Events that queued up while the client was slow go out in one write. A client that
    disconnects (``http.disconnect``, or a failed write) ends the response at once, and the
    session is told to cancel the turn on the host.
    """

    def __init__(
        self,
        turn: TurnStream,
        session: ActorRef[SessionMessage],
        *,
        heartbeat_s: float,
        render: Callable[[Any], bytes] = sse_event,
        closing: bytes = b"",
    ) -> None:
        self.turn = turn
        self.session = session
        self.heartbeat_s = heartbeat_s
        self.render = render
        self.closing = closing
        self.completed = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"text/event-stream; charset=utf-8"),
                        (b"cache-control", b"no-store"),
                        (b"x-accel-buffering", b"no"),
                    ],
                }
            )
            # The body goes to the server's own send: the framework's wrappers around it only
            # watch for the response's start, and each costs a coroutine layer per event.
            body_send: Send = scope.get(RAW_SEND_KEY, send)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_cancel_on_disconnect, receive, nursery.cancel_scope)
                await self._pump(body_send)
                nursery.cancel_scope.cancel()
        except OSError:
            pass  # the client went away mid-write
        finally:
            self.turn.events.close()
            if not self.completed:
                await _abandon(self.session, AbandonTurn(number=self.turn.number))

    async def _pump(self, send: Send) -> None:
        events = self.turn.events
        while True:
            try:
                first = events.receive_nowait()
            except trio.WouldBlock:
                # Only a wait gets a deadline (a scope per event would cost a heap update).
                with trio.move_on_after(self.heartbeat_s) as quiet:
                    try:
                        first = await events.receive()
                    except trio.EndOfChannel:
                        break
                if quiet.cancelled_caught:
                    await send(
                        {"type": "http.response.body", "body": SSE_HEARTBEAT, "more_body": True}
                    )
                    continue
            except trio.EndOfChannel:
                break
            batch = [first]
            while kind_of(batch[-1]) not in TERMINAL_KINDS:
                try:
                    batch.append(events.receive_nowait())
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
            if kind_of(batch[-1]) in TERMINAL_KINDS:
                self.completed = True
            body = b"".join(self.render(event) for event in batch)
            await send({"type": "http.response.body", "body": body, "more_body": True})
            if self.completed:
                break
        await send({"type": "http.response.body", "body": self.closing, "more_body": False})


async def _cancel_on_disconnect(receive: Receive, scope: trio.CancelScope) -> None:
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            scope.cancel()
            return


async def _abandon(session: ActorRef[SessionMessage], message: AbandonTurn) -> None:
    try:
        session.send_nowait(message)
    except MailboxFull:
        with trio.move_on_after(ABANDON_TIMEOUT_S, shield=True):
            with contextlib.suppress(ActorStopped):
                await session.send(message)
    except ActorStopped:
        pass


# --- endpoints --------------------------------------------------------------------------


def _state(request: Request) -> BffState:
    state: BffState = request.app.state.bff
    return state


async def create_session(request: Request) -> Response:
    state = _state(request)
    caller = authenticate(state, request)
    body = await read_json(request, "CreateSession", state.config.http.max_body_bytes)
    limits = body.get("limits") or {}
    wanted = SessionRequest(
        device_id=body.get("device_id", ""),
        model=body.get("model", ""),
        max_turn_ms=int(limits.get("max_turn_ms", 0)),  # JSON Schema integers include 1.0
        token_budget=int(limits.get("token_budget", 0)),
        max_message_bytes=int(limits.get("max_message_bytes", 0)),
    )
    _, info = await start_session(state, caller, wanted, traceparent_of(request))
    return JSONResponse(
        session_json(info),
        status_code=201,
        headers={"location": f"/v1/sessions/{info.session_id}", "cache-control": "no-store"},
    )


async def get_session(request: Request) -> Response:
    state = _state(request)
    caller = authenticate(state, request)
    ref = state.table.lookup(request.path_params["session_id"], caller.owner)
    info = await ask_session(ref, GetSessionInfo(), timeout=ASK_TIMEOUT_S)
    return JSONResponse(session_json(info), headers={"cache-control": "no-store"})


async def delete_session(request: Request) -> Response:
    state = _state(request)
    caller = authenticate(state, request)
    ref = state.table.lookup(request.path_params["session_id"], caller.owner)
    timeout = state.config.sessions.close_timeout_s + ASK_TIMEOUT_S
    await ask_session(ref, CloseSession(), timeout=timeout)
    return Response(status_code=204)


async def cancel_turn(request: Request) -> Response:
    state = _state(request)
    caller = authenticate(state, request)
    session_id = request.path_params["session_id"]
    ref = state.table.lookup(session_id, caller.owner)
    cancelled = await ask_session(ref, CancelCurrentTurn(), timeout=ASK_TIMEOUT_S)
    return JSONResponse({"session_id": session_id, "cancelled": cancelled})


async def chat_stream(request: Request) -> Response | TurnEventStream:
    state = _state(request)
    caller = authenticate(state, request)
    body = await read_json(request, "ChatStreamRequest", state.config.http.max_body_bytes)
    ref = state.table.lookup(body["session_id"], caller.owner)
    answer = await ask_session(ref, StartTurn(text=body["message"]), timeout=ASK_TIMEOUT_S)
    if isinstance(answer, Refusal):
        raise Problem(answer.code, answer.detail)
    return TurnEventStream(answer, ref, heartbeat_s=state.config.sessions.sse_heartbeat_s)


async def health(request: Request) -> Response:
    state = _state(request)
    headers = {"cache-control": "no-store"}
    try:
        answer = await state.channel.unary(
            HEALTH_CHECK,
            health_pb2.HealthCheckRequest(),
            health_pb2.HealthCheckResponse,
            timeout_s=state.config.host.health_timeout_s,
        )
    except (ConnectError, CallError) as exc:
        body = {"status": "unavailable", "host": "UNREACHABLE", "detail": str(exc)}
        return JSONResponse(body, status_code=503, headers=headers)
    name = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
    ok = answer.status == health_pb2.HealthCheckResponse.SERVING
    return JSONResponse(
        {"status": "ok" if ok else "unavailable", "host": name},
        status_code=200 if ok else 503,
        headers=headers,
    )


async def problem_type(request: Request) -> Response:
    described = describe_code(request.path_params["code"])
    if described is None:
        raise Problem("not_found", "no such error code")
    return JSONResponse(described)


def _asset(name: str) -> bytes:
    return importlib.resources.files("supervisors.bff").joinpath("static", name).read_bytes()


async def chat_page(request: Request) -> Response:
    return Response(
        _asset("index.html"),
        media_type="text/html; charset=utf-8",
        headers={"content-security-policy": PAGE_CSP, "cache-control": "no-cache"},
    )


async def static_asset(request: Request) -> Response:
    name = request.path_params["asset"]
    media_type = _STATIC.get(name)
    if media_type is None:
        raise Problem("not_found", "no such file")
    return Response(
        _asset(name),
        media_type=f"{media_type}; charset=utf-8",
        headers={"cache-control": "no-cache"},
    )


# --- errors and limits -----------------------------------------------------------------


async def _problem_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return exc.response()


async def _http_exception_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return Problem("not_found", f"no such path: {request.url.path[:200]}").response()
    if exc.status_code == 405:
        problem = Problem(
            "invalid_request",
            f"method {request.method} is not allowed here",
            status=405,
            headers=exc.headers,
        )
        return problem.response()
    code = "invalid_request" if exc.status_code < 500 else "internal"
    return Problem(code, str(exc.detail), status=exc.status_code).response()


async def _internal_error_handler(request: Request, exc: Exception) -> Response:
    log.error("BFF %s %s failed", request.method, request.url.path, exc_info=exc)
    return Problem("internal", "an unexpected failure in the BFF").response()


class RequestGuard:
    """Caps requests in flight (one more gets a 503 problem) and sets security headers."""

    def __init__(self, app: ASGIApp, *, max_in_flight: int, tls: bool) -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self.extra_headers: list[tuple[bytes, bytes]] = [
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"),
        ]
        if tls:
            self.extra_headers.append((b"strict-transport-security", b"max-age=31536000"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            response = Problem("overloaded", "too many requests in flight").response()
            await response(scope, receive, send)
            return
        self.in_flight += 1

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *self.extra_headers]}
            await send(message)

        try:
            await self.app({**scope, RAW_SEND_KEY: send}, receive, send_with_headers)
        finally:
            self.in_flight -= 1


def make_app(state: BffState, *, extra_routes: list[Route] | None = None) -> RequestGuard:
    """The ASGI app of the BFF for ``state``."""
    from ._openai import chat_completions

    load_validators()
    routes = [
        Route("/", chat_page, methods=["GET"]),
        Route("/static/{asset}", static_asset, methods=["GET"]),
        Route("/v1/health", health, methods=["GET"]),
        Route("/v1/problems/{code}", problem_type, methods=["GET"]),
        Route("/v1/sessions", create_session, methods=["POST"]),
        Route("/v1/sessions/{session_id}", get_session, methods=["GET"]),
        Route("/v1/sessions/{session_id}", delete_session, methods=["DELETE"]),
        Route("/v1/sessions/{session_id}/cancel", cancel_turn, methods=["POST"]),
        Route("/v1/chat/stream", chat_stream, methods=["POST"]),
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        *(extra_routes or []),
    ]
    handlers: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
        Problem: _problem_handler,
        HTTPException: _http_exception_handler,
        Exception: _internal_error_handler,
    }
    app = Starlette(routes=routes, exception_handlers=handlers)
    app.state.bff = state
    return RequestGuard(
        app,
        max_in_flight=state.config.http.max_concurrent_requests,
        tls=not state.config.http.insecure_dev_plaintext,
    )
