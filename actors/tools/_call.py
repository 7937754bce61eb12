"""One tool call as an actor (``ToolCall``), and the per-session ``ToolRunner`` that starts it.

A ``ToolCall`` is a temporary child of the turn that asked for it, so cancelling the turn
(client cancel or disconnect) stops the call, which cancels it down the link. Whatever
happens, the call writes exactly one receipt before its final event goes out:

    started ─▶ validate args ─▶ link.invoke ─▶ validate result ─▶ cap bytes
       │            │                │                │
       └────────────┴──── error / timeout / cancelled ┴──▶ receipt ─▶ tool.call.delta
"""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any

import attrs
import trio

from actors.audit import (
    AppendReceipt,
    AuditMessage,
    Outcome,
    Stopwatch,
    ToolReceipt,
    canonical_digest,
    new_receipt_id,
)
from actors.audit import Caps as ReceiptCaps
from actors.errors import ToolError, WireError, ZlError, internal_error
from actors.provider import ToolCallRequest, ToolSpec
from actors.session import ClientGone, Outbox, SessionContext
from actors.session.messages import ToolCallDeltaEvent, ToolCallStartedEvent
from actors.telemetry import ATTR_ERROR_CODE, ATTR_POLICY_DECISION, Telemetry, ToolCallScope
from contracts import error_catalog
from zl_actors import ActorContext, ActorError, ActorRef, ActorSpec, Restart, TaskActor

from ._contracts import (
    Caps,
    ToolContract,
    cap_arguments,
    enforce_result_caps,
    parse_arguments,
    validate_args,
    validate_result,
)
from .link import ToolInvocation, ToolLink
from .messages import GatewayMessage, GetOfferedTools, OfferedTool

log = logging.getLogger("zl.tools")

# Writing the receipt and the final event survives the call's cancellation, within this.
FINISH_TIMEOUT_S = 5.0
# Version reported for a tool the host has no contract for.
UNVERSIONED = "0.0.0"
# Asking the gateway which tools a session may offer.
OFFER_TIMEOUT_S = 10.0


@attrs.frozen(kw_only=True)
class ToolsConfig:
    """Caps the host applies to every call (the policy will supply them per tenant later)."""

    timeout_ms: int = 5_000
    max_bytes: int = 1024 * 1024

    def caps_for(self, contract: ToolContract) -> Caps:
        return Caps(
            timeout_ms=min(self.timeout_ms, contract.default_caps.timeout_ms),
            max_bytes=min(self.max_bytes, contract.default_caps.max_bytes),
        )


@attrs.frozen(kw_only=True)
class _CallPlan:
    call: ToolCallRequest
    offered: OfferedTool | None
    session: SessionContext
    turn_id: str
    caps: Caps
    #: The receipt's id, known from the start: it travels down the line as the audit id.
    receipt_id: str = attrs.field(factory=new_receipt_id)


def _outcome_of(code: str) -> Outcome:
    if code == "tool.timeout":
        return Outcome.TIMEOUT
    if code == "tool.cancelled":
        return Outcome.CANCELLED
    if code == "tool.denied":
        return Outcome.DENIED
    return Outcome.ERROR


class ToolCall(TaskActor):
    """Runs one call; delivers the text for the model on ``result``."""

    def __init__(
        self,
        *,
        plan: _CallPlan,
        link: ToolLink,
        audit: ActorRef[AuditMessage] | None,
        outbox: Outbox,
        result: trio.MemorySendChannel[str],
        telemetry: Telemetry | None = None,
    ) -> None:
        self.telemetry = telemetry
        self.scope: ToolCallScope | None = None
        self.plan = plan
        self.link = link
        self.audit = audit
        self.outbox = outbox
        self.result = result

    async def run(self, ctx: ActorContext[Any]) -> None:
        plan = self.plan
        telemetry = self.telemetry
        if telemetry is None:
            await self._run()
            return
        with telemetry.tool_call_span(
            tool=plan.call.name,
            tool_version=plan.offered.descriptor.version if plan.offered else UNVERSIONED,
            call_id=self.audit_call_id,
            device_id=plan.session.device_id or None,
            tenant=plan.session.tenant,
            audit_id=plan.receipt_id,
        ) as scope:
            self.scope = scope
            await self._run()

    @property
    def audit_call_id(self) -> str:
        """The call's id in receipts, spans and on the wire: unique across sessions."""
        plan = self.plan
        return f"{plan.session.session_id}.{plan.turn_id}.{plan.call.call_id}"

    async def _run(self) -> None:
        plan = self.plan
        call = plan.call
        version = plan.offered.descriptor.version if plan.offered else UNVERSIONED
        watch = Stopwatch()
        args: Any = call.arguments_json
        result: dict[str, Any] | None = None
        truncated = False
        error: WireError | None = None
        cancelled = False
        try:
            try:
                args = parse_arguments(call.arguments_json)
                contract = self._decide()
                args = cap_arguments(contract, args, plan.caps)
            except ToolError as exc:
                error = exc.to_wire()
            await self.outbox.emit(
                ToolCallStartedEvent(
                    turn_id=plan.turn_id,
                    call_id=call.call_id,
                    tool=call.name,
                    version=version,
                    args_json=json.dumps(args) if not isinstance(args, str) else args,
                    device_id=plan.session.device_id,
                )
            )
            if error is None:
                result, truncated = await self._execute(contract, args, watch)
        except ClientGone:
            cancelled = True
            error = ToolError("tool.cancelled", "the client went away").to_wire()
        except ZlError as exc:
            error = exc.to_wire()
        except trio.Cancelled:
            cancelled = True
            error = ToolError("tool.cancelled", "the turn was cancelled").to_wire()
            raise
        except Exception as exc:
            log.exception("tool call %s failed", call.call_id)
            error = internal_error(exc)
        finally:
            with trio.move_on_after(FINISH_TIMEOUT_S, shield=True):
                await self._finish(args, result, truncated, error, version, watch, cancelled)

    def _decide(self) -> ToolContract:
        """Whether this call may run here (its own span): the tool must be offered."""
        telemetry = self.telemetry
        if telemetry is None:
            return self._contract()
        with telemetry.policy_span(
            tool=self.plan.call.name, tenant=self.plan.session.tenant
        ) as span:
            try:
                contract = self._contract()
            except ToolError as exc:
                span.set_attribute(ATTR_POLICY_DECISION, "deny")
                span.set_attribute(ATTR_ERROR_CODE, exc.code)
                raise
            span.set_attribute(ATTR_POLICY_DECISION, "allow")
            return contract

    def _contract(self) -> ToolContract:
        offered = self.plan.offered
        if offered is None:
            raise ToolError("tool.not_found", f"{self.plan.call.name} is not offered here")
        return offered.contract

    async def _execute(
        self, contract: ToolContract, args: dict[str, Any], watch: Stopwatch
    ) -> tuple[dict[str, Any], bool]:
        plan = self.plan
        validate_args(contract, args)
        output = await self.link.invoke(
            ToolInvocation(
                call_id=self.audit_call_id,
                tenant=plan.session.tenant,
                device_id=plan.session.device_id,
                tool=contract.name,
                version=contract.version,
                arguments=args,
                timeout_s=plan.caps.timeout_ms / 1000,
                max_bytes=plan.caps.max_bytes,
                # The tool call's span is the parent of whatever the device does.
                traceparent=self.scope.traceparent if self.scope is not None else None,
                audit_id=plan.receipt_id,
            )
        )
        if output.is_error:
            code = output.error_code or "tool.failed"
            if code not in error_catalog():
                code = "tool.failed"
            raise ToolError(code, output.error_message or output.text or "the tool failed")
        if output.structured is None:
            raise ToolError("tool.invalid_result", f"{contract.name} sent no structuredContent")
        validate_result(contract, output.structured)
        return enforce_result_caps(contract, output.structured, plan.caps)

    async def _finish(
        self,
        args: Any,
        result: dict[str, Any] | None,
        truncated: bool,
        error: WireError | None,
        version: str,
        watch: Stopwatch,
        cancelled: bool,
    ) -> None:
        """Receipt first (flushed), then the final event, then the answer for the model."""
        plan = self.plan
        receipt = ToolReceipt(
            receipt_id=plan.receipt_id,
            tool=plan.call.name,
            tool_version=version,
            call_id=self.audit_call_id,
            session_id=plan.session.session_id,
            turn_id=plan.turn_id,
            tenant=plan.session.tenant,
            device_id=plan.session.device_id or None,
            args_digest=canonical_digest(args),
            result_digest=canonical_digest(result) if result is not None else None,
            caps=ReceiptCaps(timeout_ms=plan.caps.timeout_ms, max_bytes=plan.caps.max_bytes),
            timing=watch.stop(),
            outcome=Outcome.OK if error is None else _outcome_of(error.code),
            error_code=None if error is None else error.code,
            truncated=truncated,
            traceparent=self.scope.traceparent if self.scope is not None else None,
        )
        if self.audit is not None:
            try:
                await self.audit.ask(AppendReceipt(receipt=receipt), timeout=FINISH_TIMEOUT_S)
            except ActorError:
                log.exception("receipt for %s could not be written", receipt.call_id)
        if self.scope is not None:
            self.scope.set_outcome(receipt.outcome.value, receipt.error_code)
        status = "ok" if error is None else receipt.outcome.value
        result_json = json.dumps(result) if result is not None else ""
        with contextlib.suppress(ClientGone):
            await self.outbox.emit(
                ToolCallDeltaEvent(
                    turn_id=plan.turn_id,
                    call_id=plan.call.call_id,
                    status=status,
                    result_json=result_json,
                    error=error,
                )
            )
        if not cancelled:
            for_model = (
                result_json
                if error is None
                else json.dumps({"error": {"code": error.code, "message": error.message}})
            )
            self.result.send_nowait(for_model)


class SessionTools:
    """The ``ToolRunner`` of one session: offers the gateway's tools, runs calls as actors."""

    def __init__(
        self,
        *,
        session: SessionContext,
        outbox: Outbox,
        gateway: ActorRef[GatewayMessage],
        link: ToolLink,
        audit: ActorRef[AuditMessage] | None,
        config: ToolsConfig,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.telemetry = telemetry
        self.session = session
        self.outbox = outbox
        self.gateway = gateway
        self.link = link
        self.audit = audit
        self.config = config
        self._offered: dict[str, OfferedTool] = {}

    async def offered_tools(self) -> tuple[ToolSpec, ...]:
        try:
            offered = await self.gateway.ask(
                GetOfferedTools(tenant=self.session.tenant, device_id=self.session.device_id),
                timeout=OFFER_TIMEOUT_S,
            )
        except ActorError as exc:
            raise ToolError("tool.unavailable", f"the tool gateway did not answer: {exc}") from None
        self._offered = {tool.descriptor.name: tool for tool in offered}
        return tuple(
            ToolSpec(
                name=tool.descriptor.name,
                description=tool.contract.description,
                parameters=tool.contract.args_schema,
            )
            for tool in offered
        )

    async def run(
        self,
        call: ToolCallRequest,
        *,
        turn_id: str,
        turn: ActorContext[Any],
        receipts: list[str] | None = None,
    ) -> str:
        offered = self._offered.get(call.name)
        caps = (
            self.config.caps_for(offered.contract)
            if offered is not None
            else Caps(timeout_ms=self.config.timeout_ms, max_bytes=self.config.max_bytes)
        )
        plan = _CallPlan(
            call=call, offered=offered, session=self.session, turn_id=turn_id, caps=caps
        )
        if receipts is not None:
            receipts.append(plan.receipt_id)
        send, receive = trio.open_memory_channel[str](1)
        await turn.start_child(
            ActorSpec(
                name=f"tool_call-{call.call_id}",
                factory=lambda: ToolCall(
                    plan=plan,
                    link=self.link,
                    audit=self.audit,
                    outbox=self.outbox,
                    result=send,
                    telemetry=self.telemetry,
                ),
                restart=Restart.TEMPORARY,
            )
        )
        async with receive:
            return await receive.receive()
