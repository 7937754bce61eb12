"""One tool call as an actor (``ToolCall``), and the per-session ``ToolRunner`` that starts it.

A ``ToolCall`` is a temporary child of the turn that asked for it, so cancelling the turn
(client cancel or disconnect) stops the call, which cancels it down the link. Whatever
happens, the call writes exactly one receipt before its final event goes out:

    parse args ─▶ policy ─▶ started ─▶ validate args ─▶ link.invoke ─▶ validate result ─▶ cap
       │            │          │              │                │                │
       └────────────┴──────────┴── denied / error / timeout / cancelled ────────┴─▶ receipt
                                                                                 ─▶ tool.call.delta

Policy is decided before anything leaves the host: the tenant's bundle must be there and
current (else ``policy.missing`` / ``policy.expired``), and ``actors.policy.decide`` must
allow the call for its tool, version, device, paths and egress (else ``tool.denied``). An
allowed call runs under the tightest caps of its rule, the tool's manifest and the host's
config, and carries the signed bundle to the device, which checks it again.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

import attrs
import trio

from actors.audit import (
    AppendReceipt,
    AuditError,
    AuditMessage,
    Outcome,
    Stopwatch,
    ToolReceipt,
    canonical_digest,
    new_receipt_id,
)
from actors.audit import Caps as ReceiptCaps
from actors.errors import PolicyError, ToolError, WireError, ZlError, internal_error
from actors.policy import CallRequest, Decision, PolicyBundle, PolicyView, decide, offers
from actors.policy import Caps as PolicyCaps
from actors.provider import ToolCallRequest, ToolSpec
from actors.session import ClientGone, Outbox, SessionContext
from actors.session.messages import ToolCallDeltaEvent, ToolCallStartedEvent
from actors.telemetry import (
    ATTR_ERROR_CODE,
    ATTR_POLICY_DECISION,
    ATTR_POLICY_REVISION,
    ATTR_POLICY_RULE,
    Telemetry,
    ToolCallScope,
)
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
from ._policy import PolicyGate
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
    """Caps the host applies to every call; policy and the tool's manifest may lower them."""

    timeout_ms: int = 5_000
    max_bytes: int = 1024 * 1024

    def caps_for(self, contract: ToolContract, policy: PolicyCaps | None = None) -> Caps:
        """The tightest of the host's caps, the manifest's and the policy rule's."""
        timeout_ms = min(self.timeout_ms, contract.default_caps.timeout_ms)
        max_bytes = min(self.max_bytes, contract.default_caps.max_bytes)
        if policy is not None:
            timeout_ms = min(timeout_ms, policy.timeout_ms)
            max_bytes = min(max_bytes, policy.max_bytes)
        return Caps(timeout_ms=timeout_ms, max_bytes=max_bytes)


@attrs.frozen(kw_only=True)
class _CallPlan:
    call: ToolCallRequest
    offered: OfferedTool | None
    session: SessionContext
    turn_id: str
    caps: Caps
    #: The receipt's id, known from the start: it travels down the line as the audit id.
    receipt_id: str = attrs.field(factory=new_receipt_id)
    #: The tenant's policy when the call was made (None: policy is off).
    policy: PolicyView | None = None


def _outcome_of(code: str) -> Outcome:
    if code == "internal":
        return Outcome.INTERNAL
    if code == "tool.timeout":
        return Outcome.TIMEOUT
    if code == "tool.cancelled":
        return Outcome.CANCELLED
    if code == "tool.denied" or code.startswith("policy."):
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
        gate: PolicyGate,
        config: ToolsConfig,
    ) -> None:
        self.telemetry = telemetry
        self.scope: ToolCallScope | None = None
        self.plan = plan
        self.link = link
        self.audit = audit
        self.outbox = outbox
        self.result = result
        self.gate = gate
        self.config = config
        self.caps = plan.caps
        #: The bundle the call was decided under, and the decision (None: not decided).
        self.bundle: PolicyBundle | None = plan.policy.bundle if plan.policy else None
        self.decision: Decision | None = None
        self.policy_denied = False

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
                self._decided(args, version)
                contract = self._contract()
                self.caps = self.config.caps_for(
                    contract, self.decision.caps if self.decision is not None else None
                )
                args = cap_arguments(contract, args, self.caps)
            except (ToolError, PolicyError) as exc:
                error = exc.to_wire()
            await self.outbox.emit(
                ToolCallStartedEvent(
                    turn_id=plan.turn_id,
                    call_id=call.call_id,
                    tool=call.name,
                    version=version,
                    args_json=json.dumps(args) if not isinstance(args, str) else _printable(args),
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

    def _decide(self, args: dict[str, Any], version: str) -> None:
        """Decide the call under the tenant's policy (nothing when policy is off).

        Raises:
            PolicyError: ``policy.missing`` or ``policy.expired``.
            ToolError: ``tool.denied``, naming the rule (or ``default-deny``) and why.
        """
        view = self.plan.policy
        if not self.gate.enabled or view is None:
            return
        try:
            bundle = self.gate.usable(view)
        except PolicyError:
            self.policy_denied = True
            raise
        if self.telemetry is not None:
            self.telemetry.metrics.record_policy_bundle_age(bundle.age_s(self.gate.now()))
        plan = self.plan
        self.decision = decide(
            bundle,
            CallRequest.of(
                tool=plan.call.name,
                version=version,
                device_id=plan.session.device_id,
                args=args,
            ),
        )
        if not self.decision.allowed:
            log.info(
                "tool call %s denied by policy %s r%d rule %s: %s",
                self.audit_call_id,
                bundle.policy_id,
                bundle.revision,
                self.decision.rule_id,
                self.decision.reason,
            )
            raise ToolError("tool.denied", f"{self.decision.reason} (rule {self.decision.rule_id})")

    def _decided(self, args: dict[str, Any], version: str) -> None:
        """``_decide`` in its own span (``policy.decide``): decision, rule and revision."""
        telemetry = self.telemetry
        if telemetry is None:
            self._decide(args, version)
            return
        plan = self.plan
        with telemetry.policy_span(tool=plan.call.name, tenant=plan.session.tenant) as span:
            try:
                self._decide(args, version)
            except (ToolError, PolicyError) as exc:
                span.set_attribute(ATTR_POLICY_DECISION, "deny")
                span.set_attribute(ATTR_ERROR_CODE, exc.code)
                raise
            finally:
                decision = self.decision
                if decision is not None and decision.rule_id:
                    span.set_attribute(ATTR_POLICY_RULE, decision.rule_id)
                if self.bundle is not None:
                    span.set_attribute(ATTR_POLICY_REVISION, str(self.bundle.revision))
            span.set_attribute(ATTR_POLICY_DECISION, "allow")

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
                timeout_s=self.caps.timeout_ms / 1000,
                max_bytes=self.caps.max_bytes,
                # The tool call's span is the parent of whatever the device does.
                traceparent=self.scope.traceparent if self.scope is not None else None,
                audit_id=plan.receipt_id,
                policy=self.bundle.jws if self.decision is not None and self.bundle else None,
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
        return enforce_result_caps(contract, output.structured, self.caps)

    def _receipt(
        self,
        args: Any,
        result: dict[str, Any] | None,
        truncated: bool,
        error: WireError | None,
        version: str,
        watch: Stopwatch,
    ) -> tuple[ToolReceipt, dict[str, Any] | None, WireError | None]:
        """The call's receipt, and the result and error the call ends with.

        Never raises: if the receipt cannot be made from what the call saw (a value with
        no canonical form, a field a receipt refuses), the call ends ``internal``, with a
        receipt of outcome ``internal`` whose digests are of what can be digested.
        """
        plan = self.plan
        bundle, decision = self.bundle, self.decision
        if decision is not None:
            effect: str | None = decision.effect
        else:
            effect = "deny" if self.policy_denied else None
        fields: dict[str, Any] = {
            "receipt_id": plan.receipt_id,
            "tool": plan.call.name or "?",
            "tool_version": version,
            "call_id": self.audit_call_id,
            "session_id": plan.session.session_id,
            "turn_id": plan.turn_id,
            "tenant": plan.session.tenant,
            "device_id": plan.session.device_id or None,
            "policy_id": bundle.policy_id if bundle is not None and effect else None,
            "policy_revision": bundle.revision if bundle is not None and effect else None,
            "decision": effect,
            "rule_id": decision.rule_id if decision is not None else None,
            "caps": ReceiptCaps(
                timeout_ms=max(1, self.caps.timeout_ms), max_bytes=max(1, self.caps.max_bytes)
            ),
            "timing": watch.stop(),
            "truncated": truncated,
            "traceparent": self.scope.traceparent if self.scope is not None else None,
        }
        try:
            receipt = ToolReceipt(
                **fields,
                args_digest=canonical_digest(args),
                result_digest=canonical_digest(result) if result is not None else None,
                outcome=Outcome.OK if error is None else _outcome_of(error.code),
                error_code=None if error is None else error.code,
            )
            return receipt, result, error
        except Exception as exc:
            log.exception(
                "tool call %s: its receipt cannot be made (%s); it ends as internal",
                self.audit_call_id,
                type(exc).__name__,
            )
            failure = internal_error(exc)
            receipt = ToolReceipt(
                **fields,
                args_digest=_fallback_digest(args),
                result_digest=None,
                outcome=Outcome.INTERNAL,
                error_code=failure.code,
            )
            return receipt, None, failure

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
        """Receipt first (flushed), then the final event, then the answer for the model.

        None of it can fail silently: each step that fails is logged, and the call still
        ends with a typed ``tool.call.delta`` and an answer for the model.
        """
        plan = self.plan
        receipt, result, error = self._receipt(args, result, truncated, error, version, watch)
        if self.audit is not None:
            try:
                await self.audit.ask(AppendReceipt(receipt=receipt), timeout=FINISH_TIMEOUT_S)
            except (ActorError, AuditError, OSError) as exc:
                log.error(  # noqa: TRY400 - one line; the writer logs its own failure
                    "receipt for %s could not be written (%s: %s); its result is withheld",
                    receipt.call_id,
                    type(exc).__name__,
                    exc,
                )
                # Nothing unaudited reaches the model or the client: fail closed.
                if error is None:
                    result, error = (
                        None,
                        WireError(
                            code="internal",
                            message="the call's receipt could not be written (audit unavailable)",
                            retryable=True,
                        ),
                    )
        if self.scope is not None:
            self.scope.set_outcome(receipt.outcome.value, receipt.error_code)
        status = "ok" if error is None else _outcome_of(error.code).value
        result_json = json.dumps(result) if result is not None else ""
        try:
            await self.outbox.emit(
                ToolCallDeltaEvent(
                    turn_id=plan.turn_id,
                    call_id=plan.call.call_id,
                    status=status,
                    result_json=result_json,
                    error=error,
                    receipt_id=receipt.receipt_id,
                )
            )
        except ClientGone:
            pass
        except Exception:
            log.exception("tool call %s: its final event could not be sent", receipt.call_id)
        if not cancelled:
            for_model = (
                result_json
                if error is None
                else json.dumps({"error": {"code": error.code, "message": error.message}})
            )
            self.result.send_nowait(for_model)


def _printable(text: str) -> str:
    """``text`` with any lone surrogate replaced, so that it can travel as UTF-8."""
    return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def _fallback_digest(value: Any) -> str:
    """A digest for a receipt when ``value`` has no canonical JSON form.

    The raw text for arguments the model sent that did not parse (its lone surrogates
    kept as their UTF-8 form), else the digest of an empty object: a receipt always has one.
    """
    if isinstance(value, str):
        return "sha256:" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    return canonical_digest({})


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
        policy: PolicyGate,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.telemetry = telemetry
        self.policy = policy
        self.session = session
        self.outbox = outbox
        self.gateway = gateway
        self.link = link
        self.audit = audit
        self.config = config
        self._offered: dict[str, OfferedTool] = {}
        self._view: PolicyView | None = None

    async def offered_tools(self) -> tuple[ToolSpec, ...]:
        self._view = None  # a turn never decides under an older turn's view
        try:
            offered = await self.gateway.ask(
                GetOfferedTools(tenant=self.session.tenant, device_id=self.session.device_id),
                timeout=OFFER_TIMEOUT_S,
            )
        except ActorError as exc:
            raise ToolError("tool.unavailable", f"the tool gateway did not answer: {exc}") from None
        view = await self.policy.view(self.session.tenant)
        if view is not None:
            offered = self._allowed(offered, view)
        # The turn's calls are decided under this view (expiry is checked at each call):
        # asking the cache again per call would cost two hand-overs between tasks.
        self._view = view
        self._offered = {tool.descriptor.name: tool for tool in offered}
        return tuple(
            ToolSpec(
                name=tool.descriptor.name,
                description=tool.contract.description,
                parameters=tool.contract.args_schema,
            )
            for tool in offered
        )

    @property
    def policy_in_force(self) -> tuple[str, int] | None:
        """The policy id and revision the last ``offered_tools`` decided under (None: none)."""
        bundle = self._view.bundle if self._view is not None else None
        return None if bundle is None else (bundle.policy_id, bundle.revision)

    def _allowed(
        self, offered: tuple[OfferedTool, ...], view: PolicyView
    ) -> tuple[OfferedTool, ...]:
        """The tools the tenant's newest bundle allows on the session's device.

        None without a bundle. An expired bundle still decides what is offered: calls are
        then denied ``policy.expired``, which tells the model and the client why.
        """
        bundle = view.bundle
        if bundle is None:
            return ()
        device = self.session.device_id
        return tuple(
            tool
            for tool in offered
            if offers(
                bundle, tool=tool.descriptor.name, version=tool.descriptor.version, device_id=device
            )
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
        view = self._view
        if view is None and self.policy.enabled:
            try:
                view = await self.policy.view(self.session.tenant)
            except PolicyError as exc:
                view = PolicyView(tenant=self.session.tenant, bundle=None, problem=exc.message)
        plan = _CallPlan(
            call=call,
            offered=offered,
            session=self.session,
            turn_id=turn_id,
            caps=caps,
            policy=view,
        )
        if receipts is not None:
            receipts.append(plan.receipt_id)
        send, receive = trio.open_memory_channel[str](1)
        # run_child: a call that dies is seen here at once (ActorCrashed), never waited on.
        await turn.run_child(
            ActorSpec(
                name=f"tool_call-{call.call_id}",
                factory=lambda: ToolCall(
                    plan=plan,
                    link=self.link,
                    audit=self.audit,
                    outbox=self.outbox,
                    result=send,
                    telemetry=self.telemetry,
                    gate=self.policy,
                    config=self.config,
                ),
                restart=Restart.TEMPORARY,
            )
        )
        with receive:
            try:
                return receive.receive_nowait()
            except trio.WouldBlock:
                # It ended without an answer: it was stopped before it could finish.
                raise ToolError("tool.cancelled", "the tool call was stopped") from None
