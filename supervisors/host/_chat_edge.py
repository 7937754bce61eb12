"""``StreamChat`` on the gRPC edge: protobuf in and out, one ``Session`` actor per stream.

The handler first proves who is calling (``CallerAuth``: the caller token in the call's
``authorization`` metadata; refused: an ``unauthenticated`` error event, grpc-status 16),
then validates each ``ChatRequest`` where it enters and hands the session a trusted
message; a ``start_session`` is held to the caller's token first (refused: a ``forbidden``
error event, grpc-status 7). It sends the session's events back as ``ChatEvent``s, numbering
them and merging assistant deltas that queued up behind a slow client. When the client goes
away (reset, dropped connection, deadline) the edge cancels this handler, and the
``finally`` stops the session and everything under it.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable
from typing import Any

import trio

from actors.errors import WireError
from actors.policy import CallerClaims, CallerRejected, CallerUnauthenticated
from actors.session import Outbox, Session, SessionDeps, open_outbox
from actors.session.messages import (
    AssistantDeltaEvent,
    AssistantDoneEvent,
    BadRequest,
    CancelTurn,
    ClientClosed,
    ErrorEvent,
    RequestedLimits,
    SessionEvent,
    SessionInbound,
    SessionStartedEvent,
    StartSession,
    ToolCallDeltaEvent,
    ToolCallStartedEvent,
    UserMessage,
)
from actors.telemetry import Telemetry, parse_traceparent
from contracts.generated import agent_pb2
from supervisors.edges.grpc import (
    BadMessage,
    EndOfStream,
    MessageTooLarge,
    RpcError,
    ServerStream,
    StatusCode,
    StreamClosed,
    StreamReset,
)
from zl_actors import (
    ActorError,
    ActorRef,
    ActorSpec,
    ActorStopped,
    MailboxFull,
    Restart,
    SupervisorRef,
    TooManyChildren,
)

from ._auth import CallerAuth

log = logging.getLogger("zl.host.chat")

# Longest identifier fields we accept from a client.
MAX_ID_CHARS = 256
# Stopping a session on disconnect is shielded from the cancellation that caused it, but
# bounded: a session that does not stop in time is cancelled by its supervisor's grace.
SESSION_STOP_TIMEOUT_S = 2.0


def _wire(code: str, message: str) -> WireError:
    from contracts import error_catalog

    return WireError(code=code, message=message, retryable=error_catalog()[code].retryable)


def request_to_inbound(request: agent_pb2.ChatRequest) -> SessionInbound:
    """Validate one request from the network and turn it into a session message."""
    kind = request.WhichOneof("request")
    if kind == "start_session":
        start = request.start_session
        for field in ("tenant", "user", "device_id", "model"):
            if len(getattr(start, field)) > MAX_ID_CHARS:
                return BadRequest(
                    error=_wire(
                        "invalid_request", f"start_session.{field} is over {MAX_ID_CHARS} chars"
                    )
                )
        return StartSession(
            tenant=start.tenant,
            user=start.user,
            device_id=start.device_id,
            model=start.model,
            limits=RequestedLimits(
                max_turn_ms=start.limits.max_turn_ms,
                token_budget=start.limits.token_budget,
                max_message_bytes=start.limits.max_message_bytes,
            ),
        )
    if kind == "user_message":
        return UserMessage(text=request.user_message.text)
    if kind == "cancel_turn":
        return CancelTurn()
    return BadRequest(
        error=_wire("invalid_request", "empty or unknown request (no known oneof case is set)")
    )


def _usage(event: AssistantDoneEvent) -> agent_pb2.Usage:
    return agent_pb2.Usage(
        input_tokens=event.usage.input_tokens,
        output_tokens=event.usage.output_tokens,
        estimated=event.usage.estimated,
        cost_usd=event.usage.cost_usd or 0.0,
    )


def _error(error: WireError) -> agent_pb2.Error:
    return agent_pb2.Error(code=error.code, message=error.message, retryable=error.retryable)


def event_to_proto(event: SessionEvent, *, session_id: str, seq: int) -> agent_pb2.ChatEvent:
    """One session event as the ``ChatEvent`` the client sees."""
    out = agent_pb2.ChatEvent(session_id=session_id, seq=seq)
    match event:
        case SessionStartedEvent(limits=limits):
            out.session_started.session_id = event.session_id
            out.session_started.limits.max_turn_ms = limits.max_turn_ms
            out.session_started.limits.token_budget = limits.token_budget
            out.session_started.limits.max_message_bytes = limits.max_message_bytes
        case AssistantDeltaEvent():
            out.turn_id = event.turn_id
            out.assistant_delta.text = event.text
        case AssistantDoneEvent():
            out.turn_id = event.turn_id
            out.assistant_done.finish_reason = event.finish_reason
            out.assistant_done.usage.CopyFrom(_usage(event))
        case ToolCallStartedEvent():
            out.turn_id = event.turn_id
            started = out.tool_call_started
            started.call_id = event.call_id
            started.tool = event.tool
            started.version = event.version
            started.args_json = event.args_json
            started.device_id = event.device_id
        case ToolCallDeltaEvent():
            out.turn_id = event.turn_id
            delta = out.tool_call_delta
            delta.call_id = event.call_id
            delta.status = event.status
            delta.result_json = event.result_json
            delta.receipt_id = event.receipt_id
            if event.error is not None:
                delta.error.CopyFrom(_error(event.error))
        case ErrorEvent():
            out.turn_id = event.turn_id
            out.error.CopyFrom(_error(event.error))
    return out


class _StreamSender:
    """Numbers the session's events and sends them on the stream, two ways, in order.

    ``offer`` (the outbox's direct way, :class:`actors.session.DirectSink`) sends in the
    emitting task when the stream can take the event at once. ``run`` drains the outbox's
    channel, where events go when it cannot, and waits for the client as needed; it merges
    assistant deltas that queued up behind a slow client. While anything is queued ``offer``
    refuses, so nothing overtakes an event waiting in the channel.
    """

    def __init__(self, stream: ServerStream[Any, Any], telemetry: Telemetry | None = None) -> None:
        self._stream = stream
        self._telemetry = telemetry
        self._session_id = ""
        self._seq = 0
        # True from the first refusal until the channel is found empty again.
        self._queued = False

    def _to_proto(self, event: SessionEvent) -> agent_pb2.ChatEvent:
        if isinstance(event, SessionStartedEvent):
            self._session_id = event.session_id
        return event_to_proto(event, session_id=self._session_id, seq=self._seq + 1)

    async def send_last(self, event: SessionEvent) -> None:
        """Send one more event after the session has gone (the refusal that ends a call)."""
        with contextlib.suppress(StreamClosed, RpcError):
            await self._stream.send(self._to_proto(event))
            self._seq += 1

    def offer(self, event: SessionEvent) -> bool:
        if self._queued:
            return False
        if not self._stream.try_send(self._to_proto(event)):
            self._queued = True
            return False
        self._sent(event)
        return True

    def _sent(self, event: SessionEvent) -> None:
        self._seq += 1
        if isinstance(event, ErrorEvent) and self._telemetry is not None:
            self._telemetry.metrics.add_error(event.error.code)

    async def run(self, events: trio.MemoryReceiveChannel[SessionEvent]) -> None:
        """Send what comes through the channel until the session closes its outbox.

        A slow client makes ``stream.send`` wait, the outbox fill and the session's turn
        wait: back-pressure, not buffering.
        """
        pending: SessionEvent | None = None
        async with events:
            while True:
                if pending is not None:
                    event, pending = pending, None
                else:
                    try:
                        event = events.receive_nowait()
                    except trio.WouldBlock:
                        # Everything refused so far is sent: the direct way may open again.
                        self._queued = False
                        try:
                            event = await events.receive()
                        except trio.EndOfChannel:
                            return
                    except trio.EndOfChannel:
                        return
                if isinstance(event, AssistantDeltaEvent):
                    event, pending = _merge_deltas(event, events)
                try:
                    await self._stream.send(self._to_proto(event))
                except (StreamClosed, RpcError):
                    # The client is gone (or stopped reading for too long); closing
                    # ``events`` tells the session (ClientGone).
                    return
                self._sent(event)


def _merge_deltas(
    first: AssistantDeltaEvent, events: trio.MemoryReceiveChannel[SessionEvent]
) -> tuple[AssistantDeltaEvent, SessionEvent | None]:
    """``first`` joined with the deltas of the same turn queued behind it; the next other event."""
    texts = [first.text]
    following: SessionEvent | None = None
    while True:
        try:
            queued = events.receive_nowait()
        except (trio.WouldBlock, trio.EndOfChannel):
            break
        if isinstance(queued, AssistantDeltaEvent) and queued.turn_id == first.turn_id:
            texts.append(queued.text)
        else:
            following = queued
            break
    if len(texts) == 1:
        return first, following
    return AssistantDeltaEvent(turn_id=first.turn_id, text="".join(texts)), following


async def _receive_requests(
    stream: ServerStream[Any, Any],
    session: ActorRef[SessionInbound],
    authorize: Callable[[StartSession], StartSession],
) -> CallerRejected | None:
    """Feed the session until the client is done; a refused ``start_session`` ends it early."""

    def accept(request: agent_pb2.ChatRequest) -> bool:
        # Straight into the session's mailbox from the connection's task when it has room;
        # otherwise the loop below takes the message and waits for room. A start_session
        # always goes the slow way: it is held to the caller's token first.
        if request.WhichOneof("request") == "start_session":
            return False
        try:
            session.send_nowait(request_to_inbound(request))
        except (MailboxFull, ActorStopped):
            return False
        return True

    stream.deliver_to(accept)
    while True:
        try:
            request = await stream.receive()
        except StreamReset:
            return None  # The edge cancels this call; the ``finally`` stops the session.
        except EndOfStream:
            await session.tell(ClientClosed())
            return None
        except MessageTooLarge as exc:
            await session.tell(BadRequest(error=_wire("message.too_large", str(exc))))
            continue
        except BadMessage as exc:
            await session.tell(BadRequest(error=_wire("invalid_request", str(exc))))
            continue
        inbound = request_to_inbound(request)
        if isinstance(inbound, StartSession):
            try:
                inbound = authorize(inbound)
            except CallerRejected as exc:
                return exc
        await session.tell(inbound)


_STATUS_OF = {
    "unauthenticated": StatusCode.UNAUTHENTICATED,
    "forbidden": StatusCode.PERMISSION_DENIED,
}


def _traceparent(metadata: tuple[tuple[str, str | bytes], ...]) -> str | None:
    """The caller's ``traceparent`` metadata, if it is a valid W3C value (else a new trace)."""
    for key, value in metadata:
        if key == "traceparent" and isinstance(value, str):
            parsed = parse_traceparent(value)
            return None if parsed is None else str(parsed)
    return None


def make_stream_chat_handler(
    sessions: SupervisorRef,
    deps: SessionDeps,
    *,
    auth: CallerAuth,
) -> Any:
    """The ``StreamChat`` handler: one session under ``sessions`` per proven caller."""

    async def stream_chat(stream: ServerStream[Any, Any]) -> None:
        session_id = uuid.uuid4().hex[:16]
        sender = _StreamSender(stream, telemetry=deps.telemetry)
        traceparent = _traceparent(stream.metadata)
        outbox, events = open_outbox(direct=sender)
        try:
            caller: CallerClaims | None = auth.authenticate(stream.metadata)
        except CallerUnauthenticated as exc:
            log.info("StreamChat from %s refused: %s", stream.peer, exc.message)
            await _refuse(stream, outbox, events, exc.to_wire())
            raise RpcError(StatusCode.UNAUTHENTICATED, exc.message) from None

        def authorize(start: StartSession) -> StartSession:
            return auth.authorize(caller, start, deps.default_device)

        refusal: CallerRejected | None = None
        try:
            session = await sessions.start_child(
                ActorSpec(
                    name=f"session-{session_id}",
                    factory=lambda: Session(
                        session_id=session_id,
                        deps=deps,
                        outbox=outbox,
                        traceparent=traceparent,
                    ),
                    restart=Restart.TEMPORARY,
                )
            )
        except TooManyChildren:
            await _refuse(stream, outbox, events, _wire("overloaded", "too many sessions"))
            return
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(sender.run, events)
                # If the session ends under us (it failed), its events say why.
                with contextlib.suppress(ActorError):
                    refusal = await _receive_requests(stream, session, authorize)
                if refusal is not None:
                    nursery.cancel_scope.cancel()
        finally:
            with trio.move_on_after(SESSION_STOP_TIMEOUT_S, shield=True):
                with contextlib.suppress(ActorError):
                    await sessions.stop_child(f"session-{session_id}")
            outbox.close()
        if refusal is not None:
            log.info("StreamChat from %s refused: %s", stream.peer, refusal.message)
            await sender.send_last(ErrorEvent(turn_id="", error=refusal.to_wire()))
            raise RpcError(_STATUS_OF[refusal.code], refusal.message)

    return stream_chat


async def _refuse(
    stream: ServerStream[Any, Any],
    outbox: Outbox,
    events: trio.MemoryReceiveChannel[SessionEvent],
    error: WireError,
) -> None:
    outbox.close()
    events.close()
    await stream.send(event_to_proto(ErrorEvent(turn_id="", error=error), session_id="", seq=1))
