"""One actor per connected device: calls in flight, heartbeats, catalog, replacement.

The reader task turns socket messages into ``FromPeer`` (or ``PeerGone``) in the
actor's own mailbox, so every state change happens in ``handle``, one at a time.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import time
from typing import Final

import attrs
import trio

from actors.errors import WireError
from zl_actors import Actor, ActorContext, ActorRef, ActorStopped, MailboxFull

from ._errors import BadFrame
from ._frames import (
    DeviceHello,
    DeviceHelloAck,
    ErrorFrame,
    Frame,
    Ping,
    Pong,
    ToolCancel,
    ToolProgress,
    ToolResult,
    decode_frame,
)
from ._limits import RelayLimits
from ._router import error_result, reply_nowait
from ._tokens import CLOCK_LEEWAY_S
from ._wire import (
    CLOSE_BAD_FRAME,
    CLOSE_GOING_AWAY,
    CLOSE_HEARTBEAT,
    CLOSE_REPLACED,
    CLOSE_UNAUTHENTICATED,
    WsPeer,
    close_quietly,
    encode_for_link,
    send_frame,
    send_text,
)
from .messages import (
    BadCallFrame,
    CallEnded,
    DeliverCall,
    DeliverCancel,
    DeviceMessage,
    FromPeer,
    HostMessage,
    PeerGone,
    RegisterDevice,
    Replace,
    RouterMessage,
    TokenExpired,
    UnregisterDevice,
    UpdateRtt,
)

log = logging.getLogger("zl.relay.device")

#: Mailbox of a device connection: its own frames plus calls routed to it. The router
#: uses send_nowait, so a full mailbox is a typed ``relay.overloaded`` to the host.
DEVICE_MAILBOX_CAPACITY: Final = 64
#: Registration with the router is in-process; a router this slow is broken.
REGISTER_TIMEOUT_S: Final = 5.0


async def read_frames(
    ws: WsPeer,
    self_ref: ActorRef[DeviceMessage] | ActorRef[HostMessage],
    *,
    idle_s: float,
    max_bytes: int,
) -> None:
    """Feed decoded frames into the actor's mailbox until the peer goes or goes silent.

    Ends by sending ``PeerGone``. A bad frame that names a call becomes ``BadCallFrame``
    (only that call fails); any other bad frame is answered with an ``error`` frame and a
    4400 close. Waits for mailbox room (back-pressure on the socket).
    """
    from trio_websocket import ConnectionClosed  # the edge library, only at the edge

    reason, code = "connection closed", None
    try:
        while True:
            with trio.move_on_after(idle_s) as idle:
                data = await ws.get_message()
            if idle.cancelled_caught:
                reason, code = f"no frame for {idle_s:g} s (missed heartbeats)", CLOSE_HEARTBEAT
                await close_quietly(ws, CLOSE_HEARTBEAT, "missed heartbeats")
                break
            try:
                frame = decode_frame(data, max_bytes=max_bytes)
            except BadFrame as exc:
                if exc.call_id is not None:
                    # One call's frame is bad (a result nested too deep, a number out of
                    # range): that call fails, the connection and its other calls go on.
                    await self_ref.tell(BadCallFrame(call_id=exc.call_id, error=exc.to_wire()))
                    continue
                reason, code = str(exc), CLOSE_BAD_FRAME
                await close_quietly(
                    ws,
                    CLOSE_BAD_FRAME,
                    f"relay.bad_frame: {exc.message}",
                    ErrorFrame.from_wire(exc.to_wire(), call_id=exc.call_id),
                )
                break
            await self_ref.tell(FromPeer(frame=frame))
    except ConnectionClosed as exc:
        if exc.reason is not None:
            reason, code = f"closed by peer ({exc.reason.code})", exc.reason.code
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        reason = "connection broken"
    except ActorStopped:
        return
    with contextlib.suppress(MailboxFull, ActorStopped):
        self_ref.send_nowait(PeerGone(reason=reason, code=code))


class DeviceConnection(Actor[DeviceMessage]):
    """The relay's side of one bridge's WebSocket.

    Args:
        ws: the accepted WebSocket (the listener's handler task keeps it open until
            ``done`` is set).
        tenant: from the verified device token.
        hello: the bridge's ``device.hello`` (its device id was checked against the token).
        router: where the device registers.
        limits: heartbeats and bounds.
        done: set when this connection has ended, so the handler task can return.
        expires_at: when the device token expires (Unix time); the connection is closed
            with 4401 then (after the same clock leeway the token check allows).
    """

    mailbox_capacity = DEVICE_MAILBOX_CAPACITY

    def __init__(
        self,
        *,
        ws: WsPeer,
        tenant: str,
        hello: DeviceHello,
        router: ActorRef[RouterMessage],
        limits: RelayLimits,
        done: trio.Event,
        expires_at: float | None = None,
    ) -> None:
        self.ws = ws
        self.expires_at = expires_at
        self.tenant = tenant
        self.hello = hello
        self.device_id = hello.device_id
        self.router = router
        self.limits = limits
        self.done = done
        self.tools = {tool.name for tool in hello.tools}
        self.in_flight: dict[str, ActorRef[HostMessage]] = {}
        self.nonces = itertools.count()
        #: The last relay↔device round trip in milliseconds (None before the first pong).
        self.rtt_ms: float | None = None
        self.close_code = CLOSE_GOING_AWAY
        self.close_reason = "relay shutting down"
        self.close_error: WireError | None = None
        self.gone = False

    @property
    def who(self) -> str:
        return f"device {self.tenant}/{self.device_id}"

    async def on_start(self, ctx: ActorContext[DeviceMessage]) -> None:
        await self.router.ask(
            RegisterDevice(
                tenant=self.tenant, device_id=self.device_id, hello=self.hello, ref=ctx.self_ref
            ),
            timeout=REGISTER_TIMEOUT_S,
        )
        ack = DeviceHelloAck(
            device_id=self.device_id,
            heartbeat_ms=round(self.limits.heartbeat_s * 1000),
            max_frame_bytes=self.limits.max_frame_bytes,
            max_in_flight=self.limits.max_in_flight,
        )
        await send_frame(self.ws, ack, timeout_s=self.limits.send_timeout_s)
        ctx.nursery.start_soon(
            lambda: read_frames(
                self.ws,
                ctx.self_ref,
                idle_s=self.limits.device_dead_after_s,
                max_bytes=self.limits.max_frame_bytes,
            )
        )
        ctx.nursery.start_soon(self._heartbeat)
        if self.expires_at is not None:
            ctx.nursery.start_soon(expire_at, self.expires_at, ctx.self_ref)
        log.info(
            "%s connected (bridge %s, %d tools)",
            self.who,
            self.hello.bridge_version,
            len(self.hello.tools),
        )

    async def _heartbeat(self) -> None:
        while True:
            await trio.sleep(self.limits.heartbeat_s)
            ping = Ping(nonce=f"r{next(self.nonces)}", sent_at_ms=trio.current_time() * 1000)
            if not await self._send(ping):
                return

    async def _send(self, frame: Frame) -> bool:
        try:
            text = encode_for_link(frame, limit=self.limits.max_frame_bytes, link="the device link")
        except BadFrame as exc:
            # Only frames the relay makes itself come here (pings, cancels, errors): one that
            # cannot be sent is dropped and logged, never a reason to close the connection.
            log.warning("%s: not sending a %s frame: %s", self.who, frame.TYPE, exc.message)
            return True
        return await self._send_text(text)

    async def _send_text(self, text: str) -> bool:
        try:
            await send_text(self.ws, text, timeout_s=self.limits.send_timeout_s)
        except Exception as exc:
            log.info("%s: send failed (%s)", self.who, type(exc).__name__)
            self.gone = True
            return False
        return True

    async def handle(self, message: DeviceMessage, ctx: ActorContext[DeviceMessage]) -> None:
        match message:
            case DeliverCall(frame=frame, reply_to=reply_to):
                if frame.tool not in self.tools:
                    reply_nowait(
                        reply_to,
                        error_result(
                            frame.call_id,
                            "tool.not_found",
                            f"device {self.device_id!r} has no tool {frame.tool!r}",
                            retryable=False,
                        ),
                    )
                elif frame.call_id in self.in_flight:
                    reply_nowait(
                        reply_to,
                        error_result(
                            frame.call_id,
                            "invalid_request",
                            "call id already in flight",
                            retryable=False,
                        ),
                    )
                elif len(self.in_flight) >= self.limits.max_in_flight:
                    reply_nowait(
                        reply_to,
                        error_result(
                            frame.call_id,
                            "relay.overloaded",
                            f"device {self.device_id!r} has {len(self.in_flight)} calls in flight",
                            retryable=True,
                        ),
                    )
                else:
                    try:
                        text = encode_for_link(
                            frame, limit=self.limits.max_frame_bytes, link="the device link"
                        )
                    except BadFrame as exc:
                        reply_nowait(
                            reply_to, ToolResult(call_id=frame.call_id, error=exc.to_wire())
                        )
                        return
                    self.in_flight[frame.call_id] = reply_to
                    if not await self._send_text(text):
                        ctx.stop()
            case DeliverCancel(call_id=call_id, reason=reason):
                if call_id in self.in_flight and not await self._send(
                    ToolCancel(call_id=call_id, reason=reason)
                ):
                    ctx.stop()
            case Replace():
                self.close_code, self.close_reason = (
                    CLOSE_REPLACED,
                    "replaced by a newer connection",
                )
                ctx.stop()
            case PeerGone(reason=reason):
                self.gone = True
                self.close_reason = reason
                ctx.stop()
            case TokenExpired():
                self.close_code = CLOSE_UNAUTHENTICATED
                self.close_reason = "relay.unauthenticated: the device token has expired"
                self.close_error = WireError(
                    code="relay.unauthenticated",
                    message="the device token has expired; connect again with a fresh one",
                    retryable=False,
                )
                ctx.stop()
            case BadCallFrame(call_id=call_id, error=error):
                waiting = self.in_flight.pop(call_id, None)
                log.info("%s sent a bad frame for call %s: %s", self.who, call_id, error.message)
                if waiting is not None:
                    reply_nowait(
                        waiting,
                        ToolResult(
                            call_id=call_id,
                            error=attrs.evolve(
                                error, message=f"the device's answer was refused: {error.message}"
                            ),
                        ),
                    )
                if not await self._send(ErrorFrame.from_wire(error, call_id=call_id)):
                    ctx.stop()
            case FromPeer(frame=frame):
                await self._from_device(frame, ctx)

    async def _from_device(self, frame: object, ctx: ActorContext[DeviceMessage]) -> None:
        match frame:
            case ToolResult(call_id=call_id):
                reply_to = self.in_flight.pop(call_id, None)
                if reply_to is not None:
                    # The relay is the one that measured it: a device's own figure is replaced.
                    if frame.device_rtt_ms != self.rtt_ms:
                        frame = attrs.evolve(frame, device_rtt_ms=self.rtt_ms)
                    reply_nowait(reply_to, frame)
            case ToolProgress(call_id=call_id):
                progress_to = self.in_flight.get(call_id)
                if progress_to is not None:
                    with contextlib.suppress(MailboxFull, ActorStopped):
                        progress_to.send_nowait(CallEnded(frame=frame))
            case ErrorFrame(call_id=str(call_id)) if call_id in self.in_flight:
                reply_nowait(
                    self.in_flight.pop(call_id), ToolResult(call_id=call_id, error=frame.to_wire())
                )
            case ErrorFrame():
                log.info(
                    "device %s/%s reports %s: %s",
                    self.tenant,
                    self.device_id,
                    frame.code,
                    frame.message,
                )
            case Ping(nonce=nonce, sent_at_ms=sent_at_ms):
                if not await self._send(Pong(nonce=nonce, sent_at_ms=sent_at_ms)):
                    ctx.stop()
            case Pong(sent_at_ms=sent_at_ms):
                self.rtt_ms = max(0.0, trio.current_time() * 1000 - sent_at_ms)
                with contextlib.suppress(MailboxFull, ActorStopped):
                    self.router.send_nowait(
                        UpdateRtt(tenant=self.tenant, device_id=self.device_id, rtt_ms=self.rtt_ms)
                    )
            case _:
                kind = getattr(frame, "TYPE", "?")
                self.close_code, self.close_reason = (
                    CLOSE_BAD_FRAME,
                    f"unexpected {kind} frame from a device",
                )
                ctx.stop()

    async def on_stop(self, ctx: ActorContext[DeviceMessage]) -> None:
        # Calls in flight fail now, not at their deadlines: the host can retry elsewhere.
        for call_id, reply_to in self.in_flight.items():
            reply_nowait(
                reply_to,
                ToolResult(
                    call_id=call_id,
                    error=WireError(
                        code="relay.device_offline",
                        message=(
                            f"device {self.device_id!r} disconnected mid-call ({self.close_reason})"
                        ),
                        retryable=True,
                    ),
                ),
            )
        self.in_flight.clear()
        with contextlib.suppress(MailboxFull, ActorStopped):
            self.router.send_nowait(
                UnregisterDevice(tenant=self.tenant, device_id=self.device_id, ref=ctx.self_ref)
            )
        log.info("%s disconnected: %s", self.who, self.close_reason)
        if not self.gone:
            last = None if self.close_error is None else ErrorFrame.from_wire(self.close_error)
            await close_quietly(self.ws, self.close_code, self.close_reason, last)
        self.done.set()


async def expire_at(
    expires_at: float, self_ref: ActorRef[DeviceMessage] | ActorRef[HostMessage]
) -> None:
    """Tell the connection actor when its token expires (Unix time, with the token leeway).

    Expiry was checked when the peer connected; this holds it to it for as long as the
    connection lasts.
    """
    await trio.sleep(max(0.0, expires_at + CLOCK_LEEWAY_S - time.time()))
    with contextlib.suppress(ActorStopped):
        await self_ref.send(TokenExpired())
