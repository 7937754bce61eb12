"""One turn of a session: ask the model, stream its answer, run its tool call, finish.

A ``Turn`` is a temporary child of its ``Session``. It emits its events straight into the
session's outbox (so its deltas meet back-pressure from the client's socket), and reports
``TurnEnded`` to the session when it is done. When the session cancels it (client cancel or
disconnect), the turn is stopped and its provider stream is cancelled with it; the session
then reports what it knows.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

import attrs
import trio

from actors.audit import AppendTurn, AuditMessage, Stopwatch, TurnSummary
from actors.errors import (
    GuardrailBreached,
    ProviderError,
    ToolsUnreachable,
    ZlError,
    internal_error,
)
from actors.provider import (
    ChatMessage,
    CompletionRequest,
    Finished,
    LlmProvider,
    ProviderEvent,
    TextDelta,
    ToolCallRequest,
    ToolCallRequested,
    ToolSpec,
    Usage,
)
from actors.redaction import Redactor
from actors.telemetry import Phase, ProviderCallScope, Telemetry, traceparent_of
from zl_actors import ActorContext, ActorError, ActorRef, TaskActor

from ._outbox import ClientGone, Outbox
from ._redaction import redact_off_loop
from .messages import (
    AssistantDeltaEvent,
    AssistantDoneEvent,
    ErrorEvent,
    SessionInbound,
    SessionLimits,
    TurnEnded,
)
from .tools import ToolRunner

log = logging.getLogger("zl.session")

# The model may ask for at most this many tool calls per turn (the seed's max_tool_depth).
MAX_TOOL_DEPTH = 1
# Writing the turn's audit record survives the turn's cancellation, within this.
AUDIT_TIMEOUT_S = 5.0


@attrs.define(kw_only=True)
class TurnProgress:
    """What a turn has done so far; the session reads it after cancelling the turn."""

    text_parts: list[str] = attrs.Factory(list)
    input_tokens: int = 0
    output_tokens: int = 0
    estimated: bool = False
    cost_usd: float | None = None
    # Whether a provider round is in progress (its usage is not reported yet).
    streaming: bool = False
    #: The receipt ids of the tool calls this turn started (its audit record lists them).
    receipt_ids: list[str] = attrs.Factory(list)

    def usage(self) -> Usage:
        return Usage(
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            # A turn cut off mid-stream only knows the tokens it counted itself.
            estimated=self.estimated or self.streaming,
            cost_usd=self.cost_usd,
        )


@attrs.define(kw_only=True)
class _RoundSink:
    """One provider stream's events go here: handled by the turn as they are sent."""

    turn: Turn
    before: int
    finished: Finished | None = None
    call: ToolCallRequest | None = None
    span: ProviderCallScope | None = None

    async def send(self, value: ProviderEvent) -> None:
        await self.turn.on_provider_event(value, self)

    def send_nowait(self, value: ProviderEvent) -> None:
        self.turn.on_provider_event_nowait(value, self)


@attrs.frozen(kw_only=True)
class TurnPlan:
    """Everything one turn needs, decided by the session."""

    turn_id: str
    session_id: str
    tenant: str
    model: str
    history: tuple[ChatMessage, ...]
    limits: SessionLimits
    budget_remaining: int
    user: str = ""
    device_id: str = ""
    #: The id of this turn's audit record (and ``zl.audit.id`` on its span).
    audit_id: str = ""
    #: The caller's trace context: the turn's span is its child.
    traceparent: str | None = None


def first_leaf(group: BaseException) -> BaseException:
    while isinstance(group, BaseExceptionGroup):
        group = group.exceptions[0]
    return group


class Turn(TaskActor):
    """Runs one turn (see the module docstring)."""

    def __init__(
        self,
        *,
        plan: TurnPlan,
        provider: LlmProvider,
        outbox: Outbox,
        session: ActorRef[SessionInbound],
        progress: TurnProgress,
        tool_runner: ToolRunner | None,
        telemetry: Telemetry | None = None,
        audit: ActorRef[AuditMessage] | None = None,
        provider_name: str = "",
        redactor: Redactor | None = None,
    ) -> None:
        self.telemetry = telemetry
        #: Redacts tool results before the model reads them (None: they go as they are).
        self.redactor = redactor
        self.audit = audit
        self.provider_name = provider_name or provider.name
        self.audited = False
        self.watch = Stopwatch()
        self.traceparent: str | None = None
        self.started = time.monotonic()
        self.plan = plan
        self.provider = provider
        self.outbox = outbox
        self.session = session
        self.progress = progress
        self.tool_runner = tool_runner

    async def run(self, ctx: ActorContext[Any]) -> None:
        plan = self.plan
        telemetry = self.telemetry
        self.started = time.monotonic()
        try:
            if telemetry is None:
                await self._run(ctx)
                return
            if not telemetry.recording and plan.traceparent is None:
                # No span to keep: the turn's own span would only parent its tool calls.
                await self._run(ctx)
                self._count_tokens(telemetry)
                return
            with telemetry.turn_span(
                session_id=plan.session_id,
                turn_id=plan.turn_id,
                tenant=plan.tenant,
                traceparent=plan.traceparent,
                audit_id=plan.audit_id or None,
                device_id=plan.device_id or None,
            ) as span:
                self.traceparent = traceparent_of(span)
                await self._run(ctx)
            self._count_tokens(telemetry)
        finally:
            if not self.audited:
                # Cancelled (the client cancelled or left): the record is still written,
                # before the session sends the turn's final event.
                with trio.move_on_after(AUDIT_TIMEOUT_S, shield=True):
                    await self._audit("cancelled", None)

    async def _audit(self, finish_reason: str, error_code: str | None) -> None:
        """Write this turn's ``turn.summary`` record (once), before its final event."""
        if self.audited:
            return
        self.audited = True
        if self.audit is None:
            return
        plan, progress = self.plan, self.progress
        usage = progress.usage()
        policy = self.tool_runner.policy_in_force if self.tool_runner is not None else None
        summary = TurnSummary(
            session_id=plan.session_id,
            turn_id=plan.turn_id,
            tenant=plan.tenant,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            usage_estimated=usage.estimated,
            finish_reason=finish_reason,
            tool_calls=len(progress.receipt_ids),
            timing=self.watch.stop(),
            error_code=error_code,
            traceparent=self.traceparent,
            audit_id=plan.audit_id or None,
            user=plan.user or None,
            device_id=plan.device_id or None,
            model=plan.model,
            cost_usd=usage.cost_usd,
            receipt_ids=progress.receipt_ids,
            policy_id=policy[0] if policy is not None else None,
            policy_revision=policy[1] if policy is not None else None,
        )
        try:
            await self.audit.ask(AppendTurn(summary=summary), timeout=AUDIT_TIMEOUT_S)
        except (ActorError, ValueError):
            log.exception("turn %s: its audit record could not be written", plan.turn_id)

    def _count_tokens(self, telemetry: Telemetry) -> None:
        usage = self.progress.usage()
        telemetry.metrics.add_tokens(
            input_tokens=usage.input_tokens, output_tokens=usage.output_tokens
        )

    async def _run(self, ctx: ActorContext[Any]) -> None:
        plan = self.plan
        try:
            with trio.move_on_after(plan.limits.max_turn_ms / 1000) as deadline:
                await self._converse(ctx)
            if deadline.cancelled_caught:
                await self._fail(
                    GuardrailBreached(
                        "turn.timeout", f"the turn ran past its {plan.limits.max_turn_ms} ms limit"
                    )
                )
        except ClientGone:
            await self._audit("client_gone", None)
        except ZlError as exc:
            await self._fail(exc)
        except Exception as exc:
            log.exception("turn %s failed", plan.turn_id)
            await self._fail_wire(internal_error(exc))
        text = "".join(self.progress.text_parts)
        await self.session.send(
            TurnEnded(turn_id=plan.turn_id, assistant_text=text, usage=self.progress.usage())
        )

    async def _fail(self, exc: ZlError) -> None:
        await self._fail_wire(exc.to_wire())

    async def _fail_wire(self, error: Any) -> None:
        await self._audit("error", error.code)
        with contextlib.suppress(ClientGone):
            await self.outbox.emit(ErrorEvent(turn_id=self.plan.turn_id, error=error))

    async def _converse(self, ctx: ActorContext[Any]) -> None:
        plan = self.plan
        history = list(plan.history)
        offered = await self._offered_tools()
        tool_calls = 0
        while True:
            tools = offered if tool_calls < MAX_TOOL_DEPTH else ()
            request = CompletionRequest(
                model=plan.model,
                messages=tuple(history),
                tools=tools,
                max_output_tokens=max(0, plan.budget_remaining - self.progress.output_tokens),
            )
            phase = Phase.PLAN if tool_calls == 0 else Phase.RESPOND
            with self._phase(phase):
                finished, call = await self._stream_once(request)
            if finished.finish_reason == "length" and (
                self.progress.output_tokens >= plan.budget_remaining
            ):
                # The model was cut off by the session's budget, not by its own limit.
                raise GuardrailBreached(
                    "budget.exhausted",
                    f"the session's token budget ran out after {self.progress.output_tokens} "
                    "tokens of this answer",
                )
            if call is None:
                # The audit record first: the client sees assistant.done only once it is written.
                await self._audit(finished.finish_reason, None)
                await self.outbox.emit(
                    AssistantDoneEvent(
                        turn_id=plan.turn_id,
                        finish_reason=finished.finish_reason,
                        usage=self.progress.usage(),
                    )
                )
                return
            tool_calls += 1
            if self.tool_runner is None or tool_calls > MAX_TOOL_DEPTH:
                raise GuardrailBreached(
                    "tool.depth_exceeded",
                    f"the model asked for more than {MAX_TOOL_DEPTH} tool call(s) in one turn",
                )
            with self._phase(Phase.ACT):
                result_json = await self.tool_runner.run(
                    call, turn_id=plan.turn_id, turn=ctx, receipts=self.progress.receipt_ids
                )
            for_model = await self._redact_result(result_json)
            history.append(ChatMessage(role="assistant", content=None, tool_calls=(call,)))
            history.append(ChatMessage(role="tool", content=for_model, tool_call_id=call.call_id))

    async def _redact_result(self, result_json: str) -> str:
        """The tool result as the model may see it (the client got it unredacted)."""
        if self.redactor is None:
            return result_json
        redacted = await redact_off_loop(self.redactor.redact_json, result_json)
        if redacted.spans and self.telemetry is not None:
            self.telemetry.metrics.add_redactions(redacted.counts, site="model")
        return redacted.text

    def _phase(self, phase: Phase) -> contextlib.AbstractContextManager[Any]:
        telemetry = self.telemetry
        return contextlib.nullcontext() if telemetry is None else telemetry.phase_span(phase)

    async def _offered_tools(self) -> tuple[ToolSpec, ...]:
        if self.tool_runner is None:
            return ()
        try:
            return await self.tool_runner.offered_tools()
        except ToolsUnreachable:
            raise  # the turn ends with it: the client must hear, not get an answer without tools
        except ZlError as exc:
            # The model answers without tools rather than the turn failing.
            log.warning("turn %s: no tools offered: %s", self.plan.turn_id, exc)
            return ()

    async def _stream_once(self, request: CompletionRequest) -> tuple[Finished, Any]:
        """One provider stream; returns its Finished and the tool call it asked for, if any.

        The provider sends each event straight into this turn's handling (``_RoundSink``),
        in its own call, with no channel and no second task between them: under load every
        hand-over between tasks waits for a scheduling pass, and a token already takes two
        more on its way to the socket. Back-pressure holds: the sink waits when the outbox
        is full, so the provider waits too.
        """
        progress = self.progress
        round_ = _RoundSink(turn=self, before=progress.output_tokens)
        progress.streaming = True
        telemetry = self.telemetry
        try:
            if telemetry is None:
                await self.provider.stream(request, round_)
            else:
                with telemetry.provider_span(
                    provider=self.provider_name,
                    model=request.model,
                    max_tokens=request.max_output_tokens,
                ) as round_.span:
                    await self.provider.stream(request, round_)
                    if round_.finished is not None:
                        round_.span.finish(
                            input_tokens=round_.finished.usage.input_tokens,
                            output_tokens=max(
                                progress.output_tokens - round_.before,
                                round_.finished.usage.output_tokens,
                            ),
                            finish_reason=round_.finished.finish_reason,
                        )
        except* ZlError as group:
            # A provider that relays through a task of its own (the fallback chain) hands
            # our guardrail, or its typed error, back wrapped in a group: unwrap it.
            raise first_leaf(group) from None
        except* ClientGone:
            raise ClientGone from None
        finished = round_.finished
        if finished is None:
            raise ProviderError("provider.bad_response", "the provider ended without finishing")
        # The upstream's usage, when it gives one, is the count: a chunk may carry several
        # tokens, so the running count (one per delta, for the budget while streaming) is
        # only an estimate, used (and marked) when the upstream reports none.
        usage = finished.usage
        progress.input_tokens += usage.input_tokens
        if usage.estimated:
            streamed = progress.output_tokens - round_.before
            progress.output_tokens = round_.before + max(streamed, usage.output_tokens)
        else:
            progress.output_tokens = round_.before + usage.output_tokens
        progress.estimated = progress.estimated or usage.estimated
        progress.streaming = False
        if finished.usage.cost_usd is not None:
            progress.cost_usd = (progress.cost_usd or 0.0) + finished.usage.cost_usd
        return finished, round_.call

    async def on_provider_event(self, event: ProviderEvent, round_: _RoundSink) -> None:
        """Forward the provider's text to the client; keep its tool call and its finish.

        Raises:
            GuardrailBreached: ``budget.exhausted`` (the provider lets it through and stops).
            ClientGone: the client is gone.
        """
        if round_.span is not None:
            round_.span.first_chunk()
        if isinstance(event, TextDelta):
            self._check_budget()
            self._count(event)
            await self.outbox.emit(AssistantDeltaEvent(turn_id=self.plan.turn_id, text=event.text))
        else:
            _keep(event, round_)

    def on_provider_event_nowait(self, event: ProviderEvent, round_: _RoundSink) -> None:
        """``on_provider_event`` when the outbox takes the delta at once.

        Raises:
            trio.WouldBlock: it would have to wait; nothing was sent or counted.
            GuardrailBreached, ClientGone: as ``on_provider_event``.
        """
        if round_.span is not None:
            round_.span.first_chunk()
        if isinstance(event, TextDelta):
            self._check_budget()
            delta = AssistantDeltaEvent(turn_id=self.plan.turn_id, text=event.text)
            if not self.outbox.try_emit(delta):
                raise trio.WouldBlock
            self._count(event)
        else:
            _keep(event, round_)

    def _check_budget(self) -> None:
        if self.progress.output_tokens >= self.plan.budget_remaining:
            raise GuardrailBreached("budget.exhausted", "the session's token budget is spent")

    def _count(self, delta: TextDelta) -> None:
        progress = self.progress
        if not progress.text_parts and self.telemetry is not None:
            self.telemetry.metrics.record_ttft((time.monotonic() - self.started) * 1000)
        progress.output_tokens += 1
        progress.text_parts.append(delta.text)


def _keep(event: ToolCallRequested | Finished, round_: _RoundSink) -> None:
    """The round's tool call and its finish: kept for the turn, nothing sent yet."""
    if isinstance(event, ToolCallRequested):
        round_.call = event.call
    else:
        round_.finished = event
