"""The ``Session`` actor: one per ``StreamChat`` stream.

It keeps the conversation and the token budget, applies the guardrails, runs one
``Turn`` child at a time, and emits the session-level events. Bad input is answered with a
typed ``ErrorEvent`` and the session carries on; it never crashes on what a client sends.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable

import attrs

from actors.audit import AuditMessage, new_turn_id
from actors.errors import GuardrailBreached, InvalidRequest, WireError, ZlError, internal_error
from actors.provider import ChatMessage, LlmProvider, Usage
from actors.redaction import Redacted, Redactor, TenantRedaction
from actors.telemetry import Telemetry
from zl_actors import Actor, ActorContext, ActorRef, ActorSpec, NoSuchActor, Restart

from ._guardrails import LimitPolicy, TokenBudget, resolve_limits
from ._outbox import ClientGone, Outbox
from ._redaction import REDACT_INLINE_BYTES, redact_off_loop
from ._turn import Turn, TurnPlan, TurnProgress
from .messages import (
    AssistantDoneEvent,
    BadRequest,
    CancelTurn,
    ClientClosed,
    ErrorEvent,
    SessionInbound,
    SessionLimits,
    SessionStartedEvent,
    StartSession,
    TurnEnded,
    UserMessage,
)
from .tools import ToolRunner

log = logging.getLogger("zl.session")

# Messages from the edge waiting for the session; the edge waits when it is full, which
# stops reading the client's stream (HTTP/2 flow control takes it from there).
SESSION_MAILBOX = 8


@attrs.frozen(kw_only=True)
class SessionContext:
    """Who the session is for, once started."""

    session_id: str
    tenant: str
    user: str
    device_id: str
    model: str
    limits: SessionLimits


# Makes the tool runner for a started session (None: no tools for this session).
ToolRunnerFactory = Callable[[SessionContext, Outbox], "ToolRunner | None"]


@attrs.frozen(kw_only=True)
class SessionDeps:
    """What every session of a host shares."""

    provider: LlmProvider
    limits: LimitPolicy
    default_model: str = "mock"
    tool_runner_factory: ToolRunnerFactory | None = None
    #: Spans for turns, the time-to-first-token histogram and token counters (None: off).
    telemetry: Telemetry | None = None
    #: Where each turn's ``turn.summary`` record goes, before its final event (None: nowhere).
    audit: ActorRef[AuditMessage] | None = None
    #: ``gen_ai.provider.name`` on the model request's span (empty: the provider's own name).
    provider_name: str = ""
    #: Where each session's redactor comes from (the tenant's settings from its policy
    #: bundle; every built-in class by default): what the model sees is redacted.
    redaction: TenantRedaction = attrs.Factory(TenantRedaction)
    #: Awaited with the tenant before a session takes its redactor: the host loads the
    #: tenant's policy bundle there, which carries its redaction settings (None: nothing).
    load_tenant: Callable[[str], Awaitable[None]] | None = None
    #: The device of a session that names none ("local": the host's own MCP server).
    default_device: str = ""


class Session(Actor[SessionInbound]):
    """See the module docstring."""

    mailbox_capacity = SESSION_MAILBOX

    def __init__(
        self,
        *,
        session_id: str,
        deps: SessionDeps,
        outbox: Outbox,
        traceparent: str | None = None,
    ) -> None:
        self.session_id = session_id
        #: The caller's trace context (gRPC metadata): every turn's span is its child.
        self.traceparent = traceparent
        self.deps = deps
        self.outbox = outbox
        self.context: SessionContext | None = None
        self.budget: TokenBudget | None = None
        self.history: list[ChatMessage] = []
        self.turns = 0
        self.turn_id: str | None = None
        self.progress: TurnProgress | None = None
        self.closing = False
        self.tool_runner: ToolRunner | None = None
        self.redactor: Redactor | None = None

    async def handle(self, message: SessionInbound, ctx: ActorContext[SessionInbound]) -> None:
        try:
            await self._dispatch(message, ctx)
        except ClientGone:
            # Nobody reads the events any more: the session has nothing left to do.
            ctx.stop()
        except Exception as exc:
            # A bug must not cost the client its stream: report it as a typed error.
            log.exception("session %s failed handling %s", self.session_id, type(message).__name__)
            with contextlib.suppress(ClientGone):
                await self.outbox.emit(ErrorEvent(turn_id="", error=internal_error(exc)))

    async def on_stop(self, ctx: ActorContext[SessionInbound]) -> None:
        self.outbox.close()

    async def _dispatch(self, message: SessionInbound, ctx: ActorContext[SessionInbound]) -> None:
        match message:
            case StartSession():
                await self._start(message)
            case UserMessage(text=text):
                await self._user_message(text, ctx)
            case CancelTurn():
                await self._cancel(ctx)
            case BadRequest(error=error):
                await self._error("", error)
            case ClientClosed():
                self.closing = True
                if self.turn_id is None:
                    ctx.stop()
            case TurnEnded():
                self._turn_ended(message)
                if self.closing:
                    ctx.stop()

    async def _error(self, turn_id: str, error: WireError | ZlError) -> None:
        wire = error.to_wire() if isinstance(error, ZlError) else error
        await self.outbox.emit(ErrorEvent(turn_id=turn_id, error=wire))

    async def _start(self, start: StartSession) -> None:
        if self.context is not None:
            await self._error(
                "", InvalidRequest("session.already_started", "this stream's session is started")
            )
            return
        if not start.tenant:
            await self._error(
                "", InvalidRequest("invalid_request", "start_session.tenant is empty")
            )
            return
        limits = resolve_limits(start.limits, self.deps.limits)
        self.context = SessionContext(
            session_id=self.session_id,
            tenant=start.tenant,
            user=start.user,
            device_id=start.device_id or self.deps.default_device,
            model=start.model or self.deps.default_model,
            limits=limits,
        )
        self.budget = TokenBudget(limits.token_budget)
        if self.deps.load_tenant is not None:
            await self.deps.load_tenant(start.tenant)
        self.redactor = self.deps.redaction.session_redactor(start.tenant)
        factory = self.deps.tool_runner_factory
        self.tool_runner = factory(self.context, self.outbox) if factory is not None else None
        await self.outbox.emit(SessionStartedEvent(session_id=self.session_id, limits=limits))

    def handle_inline(self, message: SessionInbound, ctx: ActorContext[SessionInbound]) -> bool:
        """A user message that starts a turn starts it here, in the edge's task.

        It saves the message a hand-over to the session's task before the turn's request
        can go out (see ``Actor.handle_inline``). Anything else, including a user message
        that is refused, goes through ``handle``.
        """
        if (
            isinstance(message, UserMessage)
            and len(message.text) <= REDACT_INLINE_BYTES
            and self._refusal(message.text) is None
        ):
            self._begin_turn(self._for_model(self._redact(message.text)), ctx)
            return True
        return False

    def _redact(self, text: str) -> Redacted:
        assert self.redactor is not None
        return self.redactor.redact(text)

    def _for_model(self, redacted: Redacted) -> str:
        """The text the model may see; the redactions are counted, never logged."""
        telemetry = self.deps.telemetry
        if redacted.spans and telemetry is not None:
            telemetry.metrics.add_redactions(redacted.counts, site="model")
        return redacted.text

    async def _user_message(self, text: str, ctx: ActorContext[SessionInbound]) -> None:
        refusal = self._refusal(text)
        if refusal is not None:
            turn_id, error = refusal
            await self._error(turn_id, error)
            return
        self._begin_turn(self._for_model(await redact_off_loop(self._redact, text)), ctx)

    def _refusal(self, text: str) -> tuple[str, ZlError] | None:
        """Why this user message cannot start a turn now (turn id, error), or None."""
        context, budget = self.context, self.budget
        if context is None or budget is None:
            return "", InvalidRequest("session.not_started", "send start_session first")
        size = len(text.encode("utf-8"))
        if size > context.limits.max_message_bytes:
            return "", InvalidRequest(
                "message.too_large",
                f"the message has {size} bytes; the limit is {context.limits.max_message_bytes}",
            )
        if self.turn_id is not None:
            return self.turn_id, InvalidRequest(
                "session.busy", "a turn is running; cancel it or wait for it"
            )
        if budget.exhausted:
            return "", GuardrailBreached("budget.exhausted", "the session's token budget is spent")
        return None

    def _begin_turn(self, text: str, ctx: ActorContext[SessionInbound]) -> None:
        """Start the turn for ``text``, which ``_refusal`` let through."""
        context, budget = self.context, self.budget
        assert context is not None
        assert budget is not None
        self.turns += 1
        turn_id = f"t{self.turns}"
        self.history.append(ChatMessage(role="user", content=text))
        self.turn_id = turn_id
        self.progress = TurnProgress()
        runner = self.tool_runner
        plan = TurnPlan(
            turn_id=turn_id,
            session_id=self.session_id,
            tenant=context.tenant,
            user=context.user,
            device_id=context.device_id,
            audit_id=new_turn_id(),
            traceparent=self.traceparent,
            model=context.model,
            history=tuple(self.history),
            limits=context.limits,
            budget_remaining=budget.remaining,
        )
        progress = self.progress
        session_ref: ActorRef[SessionInbound] = ctx.self_ref
        # Soon, not awaited: the turn cannot fail to start (no on_start; its constructor only
        # stores what it is given), and its request should go out in the next pass.
        ctx.start_child_soon(
            ActorSpec(
                name=turn_id,
                factory=lambda: Turn(
                    plan=plan,
                    provider=self.deps.provider,
                    outbox=self.outbox,
                    session=session_ref,
                    progress=progress,
                    tool_runner=runner,
                    telemetry=self.deps.telemetry,
                    audit=self.deps.audit,
                    provider_name=self.deps.provider_name,
                    redactor=self.redactor,
                ),
                restart=Restart.TEMPORARY,
            )
        )

    async def _cancel(self, ctx: ActorContext[SessionInbound]) -> None:
        if self.context is None:
            await self._error("", InvalidRequest("session.not_started", "send start_session first"))
            return
        turn_id, progress = self.turn_id, self.progress
        if turn_id is None or progress is None:
            await self._error("", InvalidRequest("invalid_request", "no turn is running"))
            return
        # If it ended on its own, its TurnEnded is in the mailbox and will be ignored.
        with contextlib.suppress(NoSuchActor):
            await ctx.stop_child(turn_id)
        usage = progress.usage()
        self._turn_ended_with(turn_id, "".join(progress.text_parts), usage)
        await self.outbox.emit(
            AssistantDoneEvent(turn_id=turn_id, finish_reason="cancelled", usage=usage)
        )

    def _turn_ended(self, ended: TurnEnded) -> None:
        if ended.turn_id != self.turn_id:
            return  # A turn we cancelled already.
        self._turn_ended_with(ended.turn_id, ended.assistant_text, ended.usage)

    def _turn_ended_with(self, turn_id: str, text: str, usage: Usage) -> None:
        if self.budget is not None:
            self.budget.charge(usage.input_tokens + usage.output_tokens)
        if text:
            self.history.append(ChatMessage(role="assistant", content=text))
        self.turn_id = None
        self.progress = None
