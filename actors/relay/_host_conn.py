"""One actor per connected host: authorises each call's tenant, routes calls and cancels.

A host may serve only the tenants its token lists (``authorize``): a call for any other
tenant's device ends at once with ``relay.forbidden`` and never reaches the router.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from typing import Final

import attrs
import trio
from opentelemetry.trace import Span, Status, StatusCode

from actors.errors import WireError
from actors.telemetry import (
    ATTR_AUDIT,
    ATTR_CALL,
    ATTR_DEVICE,
    ATTR_ERROR_CODE,
    ATTR_OUTCOME,
    ATTR_TENANT,
    ATTR_TOOL,
    Telemetry,
    traceparent_of,
)
from zl_actors import Actor, ActorContext, ActorRef, ActorStopped, AskTimeout, MailboxFull

from ._codec import JSON_CODEC, FrameCodec, FrameWriter, WriterClosed
from ._device_conn import expire_at, read_frames, token_expired_error
from ._errors import BadFrame, Forbidden
from ._frames import (
    CatalogGet,
    ErrorFrame,
    Frame,
    Ping,
    Pong,
    ToolCall,
    ToolCancel,
    ToolResult,
)
from ._limits import RelayLimits
from ._router import error_result
from ._shards import Shard, redirect_for
from ._tokens import HostClaims, authorize
from ._wire import (
    CLOSE_BAD_FRAME,
    CLOSE_GOING_AWAY,
    CLOSE_UNAUTHENTICATED,
    WsPeer,
    close_quietly,
)
from .messages import (
    BadCallFrame,
    CallEnded,
    FromPeer,
    GetCatalog,
    HostMessage,
    PeerGone,
    RouteCall,
    RouteCancel,
    RouterMessage,
    TokenExpired,
)

log = logging.getLogger("zl.relay.host")

#: Results from many devices converge here; devices hand them over with send_nowait.
HOST_MAILBOX_CAPACITY: Final = 4096
CATALOG_TIMEOUT_S: Final = 5.0
#: How long a stopping connection lets its writer send what is queued before closing.
CLOSE_FLUSH_S: Final = 1.0
_LINK: Final = "the host link"
ATTR_SHARD: Final = "zl.relay.shard"


@attrs.define
class RelayStats:
    """Figures one shard's connections keep up to date (sampled into gauges)."""

    #: Calls accepted from hosts and not yet answered.
    calls_in_flight: int = 0


class HostConnection(Actor[HostMessage]):
    """The relay's side of one host's WebSocket (multiplexed: many calls, many tenants).

    Args:
        ws: the accepted WebSocket.
        claims: the verified host token.
        router: the shard's router.
        shards: the configured shard list; ``local_shard_id`` names this shard.
        limits: bounds and timers.
        done: set when the connection has ended.
        codec: the connection's negotiated frame codec.
    """

    mailbox_capacity = HOST_MAILBOX_CAPACITY

    def __init__(
        self,
        *,
        ws: WsPeer,
        claims: HostClaims,
        router: ActorRef[RouterMessage],
        shards: Sequence[Shard],
        local_shard_id: str,
        limits: RelayLimits,
        done: trio.Event,
        telemetry: Telemetry | None = None,
        stats: RelayStats | None = None,
        codec: FrameCodec = JSON_CODEC,
    ) -> None:
        self.codec = codec
        self.writer: FrameWriter | None = None
        self.telemetry = telemetry
        self.stats = stats if stats is not None else RelayStats()
        #: The span of each call in flight (ended when its result goes back to the host).
        self.spans: dict[str, Span] = {}
        self.ws = ws
        self.claims = claims
        self.router = router
        self.shards = tuple(shards)
        self.local_shard_id = local_shard_id
        self.limits = limits
        self.done = done
        self.calls: dict[str, tuple[str, str]] = {}
        self.gone = False
        self.close_code = CLOSE_GOING_AWAY
        self.close_reason = "relay shutting down"
        self.close_error: WireError | None = None

    async def on_start(self, ctx: ActorContext[HostMessage]) -> None:
        self_ref = ctx.self_ref

        def writer_failed(reason: str) -> None:
            with contextlib.suppress(MailboxFull, ActorStopped):
                self_ref.send_nowait(PeerGone(reason=reason))

        # Results from many devices converge on this connection: its writer sends those
        # that are ready together as one message (binary subprotocol).
        self.writer = FrameWriter(
            self.ws,
            self.codec,
            limit=self.limits.max_host_frame_bytes,
            link=_LINK,
            timeout_s=self.limits.send_timeout_s,
            on_failure=writer_failed,
        )
        ctx.nursery.start_soon(self.writer.run)
        ctx.nursery.start_soon(
            lambda: read_frames(
                self.ws,
                ctx.self_ref,
                idle_s=self.limits.host_idle_s,
                max_bytes=self.limits.max_host_frame_bytes,
                codec=self.codec,
            )
        )
        ctx.nursery.start_soon(expire_at, self.claims.expires_at, ctx.self_ref)
        log.info(
            "host %s connected to shard %s (%d tenants)",
            self.claims.host_id,
            self.local_shard_id,
            len(self.claims.tenants),
        )

    async def _send(self, frame: Frame, ctx: ActorContext[HostMessage]) -> None:
        """Send a frame; one that cannot go on this link fails only its own call.

        The connection is shared by every tenant the host serves: a device's result that
        re-encodes larger than the host link's frame limit (in whichever codec this link
        speaks) must never close it.
        """
        assert self.writer is not None
        try:
            try:
                await self.writer.send(frame)
            except BadFrame as exc:
                if exc.call_id is None or not isinstance(frame, ToolResult):
                    log.warning(
                        "host %s: not sending a %s frame: %s",
                        self.claims.host_id,
                        frame.TYPE,
                        exc.message,
                    )
                    return
                log.info(
                    "host %s: call %s fails: %s", self.claims.host_id, exc.call_id, exc.message
                )
                await self.writer.send(ToolResult(call_id=exc.call_id, error=exc.to_wire()))
        except WriterClosed as exc:
            log.info("host %s: send failed (%s)", self.claims.host_id, exc)
            self.gone = True
            ctx.stop()

    async def handle(self, message: HostMessage, ctx: ActorContext[HostMessage]) -> None:
        match message:
            case CallEnded(frame=frame):
                if isinstance(frame, ToolResult):
                    if self.calls.pop(frame.call_id, None) is None:
                        return  # the host already gave up on it (cancel raced the result)
                    self.stats.calls_in_flight -= 1
                    self._end_span(frame.call_id, frame)
                await self._send(frame, ctx)
            case PeerGone(reason=reason):
                self.gone = True
                self.close_reason = reason
                ctx.stop()
            case TokenExpired():
                self.close_code = CLOSE_UNAUTHENTICATED
                self.close_error = token_expired_error("host")
                self.close_reason = f"{self.close_error.code}: the host token has expired"
                ctx.stop()
            case BadCallFrame(call_id=call_id, error=error):
                if call_id not in self.calls:
                    # The host's own frame for a new call: only that call fails.
                    await self._send(ToolResult(call_id=call_id, error=error), ctx)
            case FromPeer(frame=frame):
                await self._from_host(frame, ctx)

    def _refusal(self, tenant: str) -> Frame | None:
        """A ``redirect`` or ``relay.forbidden`` error for ``tenant``; None if it is served here."""
        try:
            authorize(self.claims, tenant)
        except Forbidden as exc:
            return ErrorFrame.from_wire(exc.to_wire())
        redirect = redirect_for(tenant, self.shards, local_shard_id=self.local_shard_id)
        if redirect is not None:
            log.info(
                "host %s: tenant %s redirected to shard %s",
                self.claims.host_id,
                tenant,
                redirect.shard_id,
            )
        return redirect

    def _start_span(self, frame: ToolCall) -> ToolCall:
        """The call's span on this shard (a child of the host's); the frame goes on naming it."""
        if self.telemetry is None:
            return frame
        attributes = {
            ATTR_CALL: frame.call_id,
            ATTR_TENANT: frame.tenant,
            ATTR_DEVICE: frame.device_id,
            ATTR_TOOL: frame.tool,
            ATTR_SHARD: self.local_shard_id,
        }
        if frame.audit_id is not None:
            attributes[ATTR_AUDIT] = frame.audit_id
        span = self.telemetry.start_hop_span(
            "relay tool.call", traceparent=frame.traceparent, attributes=attributes
        )
        self.spans[frame.call_id] = span
        return attrs.evolve(frame, traceparent=traceparent_of(span) or frame.traceparent)

    def _end_span(self, call_id: str, result: ToolResult | None, reason: str = "") -> None:
        span = self.spans.pop(call_id, None)
        if span is None:
            return
        if result is not None and result.error is None:
            span.set_attribute(ATTR_OUTCOME, "ok")
        else:
            code = result.error.code if result is not None and result.error else "cancelled"
            span.set_attribute(ATTR_OUTCOME, "error")
            span.set_attribute(ATTR_ERROR_CODE, code)
            span.set_status(Status(StatusCode.ERROR, reason or code))
        span.end()

    async def _from_host(self, frame: Frame, ctx: ActorContext[HostMessage]) -> None:
        match frame:
            case ToolCall(call_id=call_id, tenant=tenant, device_id=device_id):
                if call_id not in self.calls:
                    frame = self._start_span(frame)
                refusal = self._refusal(tenant)
                if isinstance(refusal, ErrorFrame):
                    error = ToolResult(call_id=call_id, error=refusal.to_wire())
                    self._end_span(call_id, error)
                    await self._send(error, ctx)
                elif refusal is not None:
                    self._end_span(call_id, None, "redirected")
                    await self._send(refusal, ctx)
                elif call_id in self.calls:
                    await self._send(
                        error_result(
                            call_id, "invalid_request", "call id already in flight", retryable=False
                        ),
                        ctx,
                    )
                elif len(self.calls) >= self.limits.max_host_in_flight:
                    overloaded = error_result(
                        call_id,
                        "relay.overloaded",
                        "too many calls on this connection",
                        retryable=True,
                    )
                    self._end_span(call_id, overloaded)
                    await self._send(overloaded, ctx)
                else:
                    self.calls[call_id] = (tenant, device_id)
                    self.stats.calls_in_flight += 1
                    await self.router.tell(RouteCall(frame=frame, reply_to=ctx.self_ref))
            case ToolCancel(call_id=call_id, reason=reason):
                target = self.calls.get(call_id)
                if target is not None:
                    await self.router.tell(
                        RouteCancel(
                            tenant=target[0], device_id=target[1], call_id=call_id, reason=reason
                        )
                    )
            case CatalogGet(request_id=request_id, tenant=tenant, device_id=device_id):
                refusal = self._refusal(tenant)
                if isinstance(refusal, ErrorFrame):
                    await self._send(
                        ErrorFrame(
                            code=refusal.code,
                            message=refusal.message,
                            retryable=False,
                            call_id=request_id,
                        ),
                        ctx,
                    )
                    return
                if refusal is not None:
                    await self._send(refusal, ctx)
                    return
                try:
                    catalog = await self.router.ask(
                        GetCatalog(request_id=request_id, tenant=tenant, device_id=device_id),
                        timeout=CATALOG_TIMEOUT_S,
                    )
                except (AskTimeout, ActorStopped):
                    await self._send(
                        ErrorFrame(
                            code="unavailable",
                            message="router busy",
                            retryable=True,
                            call_id=request_id,
                        ),
                        ctx,
                    )
                    return
                await self._send(catalog, ctx)
            case Ping(nonce=nonce, sent_at_ms=sent_at_ms):
                await self._send(Pong(nonce=nonce, sent_at_ms=sent_at_ms), ctx)
            case Pong():
                pass
            case _:
                self.close_code = CLOSE_BAD_FRAME
                self.close_reason = f"unexpected {frame.TYPE} frame from a host"
                ctx.stop()

    async def on_stop(self, ctx: ActorContext[HostMessage]) -> None:
        # The host is gone: its calls will never be read, so the devices are told to stop.
        for call_id, (tenant, device_id) in self.calls.items():
            with contextlib.suppress(MailboxFull, ActorStopped):
                self.router.send_nowait(
                    RouteCancel(
                        tenant=tenant,
                        device_id=device_id,
                        call_id=call_id,
                        reason="host disconnected",
                    )
                )
            self._end_span(call_id, None, "host disconnected")
        self.stats.calls_in_flight -= len(self.calls)
        self.calls.clear()
        log.info(
            "host %s disconnected from shard %s: %s",
            self.claims.host_id,
            self.local_shard_id,
            self.close_reason,
        )
        if self.writer is not None:
            await self.writer.flush(timeout_s=CLOSE_FLUSH_S)
            self.writer.close()
        if not self.gone:
            last = None if self.close_error is None else ErrorFrame.from_wire(self.close_error)
            await close_quietly(self.ws, self.close_code, self.close_reason, last)
        self.done.set()
