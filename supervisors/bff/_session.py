"""``ChatSession``: one BFF session, the actor that owns one ``StreamChat`` stream to the host.

::

    HTTP request ──StartTurn──▶ ChatSession ──user_message──▶ host
                 ◀─TurnStream── │  _read_events (its nursery): host events ──▶ the turn's
                                │  channel (turn_buffer_events) ──▶ the SSE response
    SSE gone ────AbandonTurn──▶ │  ──cancel_turn──▶ host

Back-pressure: when the SSE response does not take events, the turn's channel fills, the
reader stops receiving from the host's stream, the stream's HTTP/2 window is not topped up
and the host's own sending waits (and its turn with it). An SSE reader that takes nothing
for ``stall_timeout_s`` while events wait loses its turn (cancelled on the host).

The host answers a ``cancel_turn`` with ``assistant.done`` (finish_reason "cancelled") or,
when the turn had already ended, a session-level ``invalid_request`` error; until one of them
has come, no new turn starts (``session.busy``), so that an answer is never taken for the
next turn's.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import attrs
import trio

from contracts.generated import agent_pb2
from supervisors.edges.grpc import CallError, ClientStream, ConnectError, GrpcChannel, StatusCode
from zl_actors import Actor, ActorContext

from ._auth import Caller
from ._events import TERMINAL_KINDS, kind_of
from ._problems import Problem, known_code, status_for_host_code
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

log = logging.getLogger("zl.bff.session")

STREAM_CHAT = "/zl.agent.v0.Agent/StreamChat"
#: The HTTP edge's requests to one session wait in its mailbox up to this many.
SESSION_MAILBOX = 8
#: gRPC statuses that end a session, as the catalog code a client sees.
_CODE_OF_STATUS = {
    StatusCode.UNAUTHENTICATED: "unauthenticated",
    StatusCode.PERMISSION_DENIED: "forbidden",
    StatusCode.DEADLINE_EXCEEDED: "deadline_exceeded",
    StatusCode.RESOURCE_EXHAUSTED: "overloaded",
    StatusCode.INVALID_ARGUMENT: "invalid_request",
}


@attrs.frozen(kw_only=True)
class SessionSettings:
    turn_buffer_events: int
    stall_timeout_s: float
    idle_timeout_s: float
    close_timeout_s: float


@attrs.frozen(kw_only=True)
class SessionRequest:
    """What ``POST /v1/sessions`` (or the OpenAI endpoint) asks the host for."""

    device_id: str = ""
    model: str = ""
    max_turn_ms: int = 0
    token_budget: int = 0
    max_message_bytes: int = 0


def code_of_status(status: StatusCode) -> str:
    return _CODE_OF_STATUS.get(status, "unavailable")


def problem_of_call_error(error: CallError, *, doing: str) -> Problem:
    code = code_of_status(error.status)
    status = 502 if code == "unavailable" and error.status is not StatusCode.UNAVAILABLE else None
    return Problem(
        code, f"{doing}: the host answered {error.status.name}: {error.message}", status=status
    )


async def open_host_session(
    channel: GrpcChannel,
    *,
    caller: Caller,
    request: SessionRequest,
    traceparent: str | None,
    lifetime_s: float,
    start_timeout_s: float,
) -> tuple[ClientStream[Any, agent_pb2.ChatEvent], SessionInfo]:
    """Open a ``StreamChat`` call with the caller's token and start its session.

    Returns:
        The call (its session started) and what the host applied.

    Raises:
        Problem: the host refused (its code: ``unauthenticated``, ``forbidden``,
            ``overloaded``, ...), is unreachable (``unavailable``) or too slow
            (``deadline_exceeded``).
    """
    metadata: list[tuple[str, str]] = [("authorization", f"Bearer {caller.token}")]
    if traceparent:
        metadata.append(("traceparent", traceparent))
    try:
        stream = await channel.open_stream(
            STREAM_CHAT, agent_pb2.ChatEvent, metadata=metadata, timeout_s=lifetime_s
        )
    except ConnectError as exc:
        raise Problem("unavailable", f"the host is not reachable: {exc.reason}") from None
    except CallError as exc:
        raise problem_of_call_error(exc, doing="starting the session") from None
    ok = False
    try:
        start = agent_pb2.StartSession(
            tenant=caller.tenant,
            user=caller.user,
            device_id=request.device_id,
            model=request.model,
            limits=agent_pb2.Limits(
                max_turn_ms=request.max_turn_ms,
                token_budget=request.token_budget,
                max_message_bytes=request.max_message_bytes,
            ),
        )
        with trio.move_on_after(start_timeout_s) as waited:
            await stream.send(agent_pb2.ChatRequest(start_session=start))
            first = await stream.receive()
        if waited.cancelled_caught:
            raise Problem(
                "deadline_exceeded",
                f"the host did not start the session within {start_timeout_s:g} s",
            )
        kind = kind_of(first)
        if kind == "error":
            code = first.error.code or "internal"
            raise Problem(
                known_code(code),
                f"the host refused the session: {first.error.message}",
                status=status_for_host_code(code),
            )
        if kind != "session_started":
            raise Problem(
                "internal", f"the host answered start_session with {kind or 'nothing'}", status=502
            )
        limits = first.session_started.limits
        info = SessionInfo(
            session_id=first.session_started.session_id,
            tenant=caller.tenant,
            user=caller.user,
            device_id=request.device_id,
            model=request.model,
            max_turn_ms=limits.max_turn_ms,
            token_budget=limits.token_budget,
            max_message_bytes=limits.max_message_bytes,
            expires_at=time.time() + lifetime_s,
        )
        ok = True
        return stream, info
    except CallError as exc:
        raise problem_of_call_error(exc, doing="starting the session") from None
    except trio.EndOfChannel:
        raise Problem(
            "unavailable", "the host ended the call before starting the session", status=502
        ) from None
    finally:
        if not ok:
            stream.cancel()


@attrs.define
class _Turn:
    number: int
    send: trio.MemorySendChannel[agent_pb2.ChatEvent]
    #: The host's turn id, from its first turn event.
    host_id: str = ""
    seen: int = 0
    cancel_sent: bool = False
    #: Nobody reads the turn's events any more; they are dropped until its last one.
    abandoned: bool = False


class ChatSession(Actor[SessionMessage]):
    """See the module docstring."""

    mailbox_capacity = SESSION_MAILBOX

    def __init__(
        self,
        *,
        stream: ClientStream[Any, agent_pb2.ChatEvent],
        info: SessionInfo,
        settings: SessionSettings,
        on_stopped: Callable[[str], None],
    ) -> None:
        self.stream = stream
        self.info = info
        self.settings = settings
        self.on_stopped = on_stopped
        self.turn: _Turn | None = None
        self.turns = 0
        self.cancel_outstanding = False
        self.closing = False
        self.last_active = trio.current_time()
        self.ended = trio.Event()
        self.end_reason: tuple[str, str] | None = None
        self._send_lock = trio.Lock()

    async def on_start(self, ctx: ActorContext[SessionMessage]) -> None:
        ctx.nursery.start_soon(self._read_events, ctx)
        ctx.nursery.start_soon(self._watch_idle, ctx)

    async def on_stop(self, ctx: ActorContext[SessionMessage]) -> None:
        self.stream.cancel("the session ended")
        if self.turn is not None:
            self.turn.send.close()
            self.turn = None
        self.on_stopped(self.info.session_id)

    async def handle(self, message: SessionMessage, ctx: ActorContext[SessionMessage]) -> Any:
        if not isinstance(message, GetSessionInfo):
            # Looking at a session is not using it: only turns keep it from idling out.
            self.last_active = trio.current_time()
        match message:
            case StartTurn(text=text):
                return await self._start_turn(text)
            case CancelCurrentTurn():
                turn = self.turn
                if turn is None or turn.cancel_sent:
                    return False
                await self._send_cancel(turn)
                return True
            case AbandonTurn(number=number):
                turn = self.turn
                if turn is not None and turn.number == number:
                    turn.abandoned = True
                    turn.send.close()
                    if not turn.cancel_sent:
                        await self._send_cancel(turn)
            case CloseSession():
                await self._close(ctx)
            case GetSessionInfo():
                return attrs.evolve(self.info, turn_running=self.turn is not None)
        return None

    async def _start_turn(self, text: str) -> TurnStream | Refusal:
        if self.closing or self.ended.is_set():
            return Refusal(code="session.not_found", detail="the session has ended")
        if self.turn is not None or self.cancel_outstanding:
            return Refusal(
                code="session.busy", detail="a turn is running; cancel it or wait for it"
            )
        send, receive = trio.open_memory_channel[agent_pb2.ChatEvent](
            self.settings.turn_buffer_events
        )
        self.turns += 1
        turn = _Turn(number=self.turns, send=send)
        self.turn = turn
        try:
            await self._send(agent_pb2.ChatRequest(user_message=agent_pb2.UserMessage(text=text)))
        except CallError as exc:
            self.turn = None
            send.close()
            receive.close()
            return Refusal(
                code=code_of_status(exc.status), detail=f"the host's stream ended: {exc.message}"
            )
        return TurnStream(number=turn.number, events=receive)

    async def _send(self, request: agent_pb2.ChatRequest) -> None:
        # Two tasks may send (the mailbox and the reader, on a stall): a message that has to
        # wait for the window part-way must not be interleaved with another.
        async with self._send_lock:
            await self.stream.send(request)

    async def _send_cancel(self, turn: _Turn) -> None:
        turn.cancel_sent = True
        self.cancel_outstanding = True
        with contextlib.suppress(CallError):
            await self._send(agent_pb2.ChatRequest(cancel_turn=agent_pb2.CancelTurn()))

    async def _close(self, ctx: ActorContext[SessionMessage]) -> None:
        self.closing = True
        self.stream.close_send()
        with trio.move_on_after(self.settings.close_timeout_s):
            await self.ended.wait()
        ctx.stop()

    # --- the host's events ---------------------------------------------------------------

    async def _read_events(self, ctx: ActorContext[SessionMessage]) -> None:
        reason: tuple[str, str]
        try:
            while True:
                event = await self.stream.receive()
                await self._route(event)
        except trio.EndOfChannel:
            reason = ("unavailable", "the host ended the session")
        except CallError as exc:
            reason = (
                code_of_status(exc.status),
                f"the host's stream ended: {exc.status.name}: {exc.message}",
            )
        self.end_reason = reason
        self.ended.set()
        turn, self.turn = self.turn, None
        if turn is not None and not turn.abandoned:
            code, detail = reason
            from contracts import error_catalog

            error = agent_pb2.ChatEvent(session_id=self.info.session_id, turn_id=turn.host_id)
            error.error.code = code
            error.error.message = detail
            error.error.retryable = error_catalog()[code].retryable
            with contextlib.suppress(
                trio.BrokenResourceError, trio.ClosedResourceError, trio.WouldBlock
            ):
                turn.send.send_nowait(error)
            turn.send.close()
        if not self.closing:
            log.info("session %s: %s", self.info.session_id, reason[1])
        ctx.stop()

    async def _route(self, event: agent_pb2.ChatEvent) -> None:
        kind = kind_of(event)
        turn = self.turn
        if kind == "session_started":
            return
        if not event.turn_id:
            if (
                kind == "error"
                and self.cancel_outstanding
                and event.error.code == "invalid_request"
            ):
                self.cancel_outstanding = False  # "no turn is running": the turn ended first
                return
            if turn is None:
                return
            # A refusal of the user message (too large, budget spent) ends the turn.
            terminal = kind == "error" and turn.seen == 0
        else:
            if kind == "assistant_done" and event.assistant_done.finish_reason == "cancelled":
                self.cancel_outstanding = False
            if turn is None or (turn.host_id and event.turn_id != turn.host_id):
                return  # an earlier turn's late event
            turn.host_id = event.turn_id
            terminal = kind in TERMINAL_KINDS
        turn.seen += 1
        if not turn.abandoned:
            await self._deliver(turn, event)
        if terminal:
            turn.send.close()
            self.turn = None
            self.last_active = trio.current_time()

    async def _deliver(self, turn: _Turn, event: agent_pb2.ChatEvent) -> None:
        try:
            turn.send.send_nowait(event)
            return
        except trio.WouldBlock:
            pass
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            await self._abandon(turn)
            return
        with trio.move_on_after(self.settings.stall_timeout_s) as stall:
            try:
                await turn.send.send(event)
                return
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
        if stall.cancelled_caught:
            log.info(
                "session %s: the turn's reader took nothing for %.0f s; cancelling the turn",
                self.info.session_id,
                self.settings.stall_timeout_s,
            )
        await self._abandon(turn)

    async def _abandon(self, turn: _Turn) -> None:
        turn.abandoned = True
        turn.send.close()
        if not turn.cancel_sent:
            await self._send_cancel(turn)

    async def _watch_idle(self, ctx: ActorContext[SessionMessage]) -> None:
        idle = self.settings.idle_timeout_s
        while True:
            await trio.sleep(min(idle, max(idle / 4, 1.0)))
            if self.turn is None and trio.current_time() - self.last_active >= idle:
                log.info("session %s: idle for %.0f s; closing", self.info.session_id, idle)
                self.closing = True
                self.stream.close_send()
                with trio.move_on_after(self.settings.close_timeout_s):
                    await self.ended.wait()
                ctx.stop()
                return


def session_lifetime_s(caller: Caller, max_session_s: float, now: float | None = None) -> float:
    """How long a session may live: never past the token that opened it."""
    current = time.time() if now is None else now
    return max(1.0, min(max_session_s, caller.expires_at - current))
