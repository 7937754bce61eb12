"""One actor per connected device: calls in flight, heartbeats, catalog, replacement.

The connection's reader (:func:`read_frames`, run by the listener's task that accepted the
connection) turns socket messages into ``FromPeer`` (or ``PeerGone``) in the actor's own
mailbox, so every state change happens in ``handle``, one at a time; the router's
``Heartbeat`` says when to ping, and when to check that the device token has not expired.
So a connected device costs the relay three tasks (the listener's, trio-websocket's reader
and the actor's) and no timer of its own: what an idle device holds is most of what a
shard's memory is spent on (``bench.bridge --idle-only``).
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

from ._codec import JSON_CODEC, FrameCodec
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
)
from ._limits import RelayLimits
from ._router import RttMeter, error_result, reply_nowait
from ._tokens import CLOCK_LEEWAY_S
from ._wire import (
    CLOSE_BAD_FRAME,
    CLOSE_GOING_AWAY,
    CLOSE_HEARTBEAT,
    CLOSE_REPLACED,
    CLOSE_UNAUTHENTICATED,
    WsPeer,
    close_quietly,
    send_message,
)
from .messages import (
    BadCallFrame,
    CallEnded,
    DeliverCall,
    DeliverCancel,
    DeviceMessage,
    FromPeer,
    Heartbeat,
    HostMessage,
    PeerGone,
    RegisterDevice,
    Replace,
    RouterMessage,
    TokenExpired,
    UnregisterDevice,
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
    codec: FrameCodec = JSON_CODEC,
    rtt: RttMeter | None = None,
) -> None:
    """Feed decoded frames into the actor's mailbox until the peer goes or goes silent.

    Ends by sending ``PeerGone``. A bad frame that names a call becomes ``BadCallFrame``
    (only that call fails; in a binary message the other frames are still delivered); any
    other bad frame is answered with an ``error`` frame and a 4400 close. Waits for mailbox
    room (back-pressure on the socket). A binary message's frames are checked all together
    before any is delivered. With ``rtt``, pongs go to it and not to the actor.
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
                frames = codec.decode_each(data, max_bytes=max_bytes)
            except BadFrame as exc:
                reason, code = str(exc), CLOSE_BAD_FRAME
                await close_quietly(
                    ws,
                    CLOSE_BAD_FRAME,
                    f"relay.bad_frame: {exc.message}",
                    ErrorFrame.from_wire(exc.to_wire(), call_id=exc.call_id),
                )
                break
            for frame in frames:
                if isinstance(frame, BadFrame):
                    # One call's frame is bad (a result nested too deep, a number out of
                    # range): that call fails, the connection and its other calls go on.
                    assert frame.call_id is not None
                    await self_ref.tell(BadCallFrame(call_id=frame.call_id, error=frame.to_wire()))
                elif rtt is not None and type(frame) is Pong:
                    rtt.pong(frame)
                else:
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

    Only this actor's task writes the socket (calls, cancels, pings and pongs); whoever
    started it runs :func:`read_frames` for it once it is ready.

    Args:
        ws: the accepted WebSocket (the listener's handler task reads it and keeps it open
            until ``done`` is set).
        tenant: from the verified device token.
        hello: the bridge's ``device.hello`` (its device id was checked against the token).
        router: where the device registers.
        limits: heartbeats and bounds.
        done: set when this connection has ended, so the handler task can return.
        expires_at: when the device token expires (Unix time); the connection is closed
            with 4401 at the first heartbeat past it (after the same clock leeway the
            token check allows).
        codec: the connection's negotiated frame codec.
        rtt: the connection's round-trip meter (the reader gives it the pongs).
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
        codec: FrameCodec = JSON_CODEC,
        rtt: RttMeter | None = None,
    ) -> None:
        self.ws = ws
        self.expires_at = expires_at
        self.codec = codec
        self.rtt = rtt if rtt is not None else RttMeter()
        self.tenant = tenant
        self.hello = hello
        self.device_id = hello.device_id
        self.router = router
        self.limits = limits
        self.done = done
        self.tools = {tool.name for tool in hello.tools}
        self.in_flight: dict[str, ActorRef[HostMessage]] = {}
        self.nonces = itertools.count()
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
                tenant=self.tenant,
                device_id=self.device_id,
                hello=self.hello,
                ref=ctx.self_ref,
                rtt=self.rtt,
            ),
            timeout=REGISTER_TIMEOUT_S,
        )
        ack = DeviceHelloAck(
            device_id=self.device_id,
            heartbeat_ms=round(self.limits.heartbeat_s * 1000),
            max_frame_bytes=self.limits.max_frame_bytes,
            max_in_flight=self.limits.max_in_flight,
        )
        if not await self._send(ack):
            ctx.stop()
            return
        log.info(
            "%s connected (bridge %s, %d tools)",
            self.who,
            self.hello.bridge_version,
            len(self.hello.tools),
        )

    def _encode(self, frame: Frame) -> bytes | str:
        """``frame`` in this connection's codec, measured against the device link's limit.

        Raises:
            BadFrame: it cannot be encoded or does not fit (``call_id`` names its call).
        """
        return self.codec.encode_for_link(
            frame, limit=self.limits.max_frame_bytes, link="the device link"
        )

    async def _send(self, frame: Frame) -> bool:
        """Send a frame the relay made itself; False (and ``gone``) if the peer is gone."""
        try:
            message = self._encode(frame)
        except BadFrame as exc:
            # Only frames the relay makes itself come here (pings, cancels, errors): one that
            # cannot be sent is dropped and logged, never a reason to close the connection.
            log.warning("%s: not sending a %s frame: %s", self.who, frame.TYPE, exc.message)
            return True
        return await self._send_message(message)

    async def _send_message(self, message: bytes | str) -> bool:
        """Send one encoded message within ``send_timeout_s``; False (and ``gone``) if not."""
        try:
            await send_message(self.ws, message, timeout_s=self.limits.send_timeout_s)
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
                        encoded = self._encode(frame)
                    except BadFrame as exc:
                        reply_nowait(
                            reply_to, ToolResult(call_id=frame.call_id, error=exc.to_wire())
                        )
                        return
                    self.in_flight[frame.call_id] = reply_to
                    if not await self._send_message(encoded):
                        ctx.stop()
            case DeliverCancel(call_id=call_id, reason=reason):
                if call_id in self.in_flight and not await self._send(
                    ToolCancel(call_id=call_id, reason=reason)
                ):
                    ctx.stop()
            case Heartbeat():
                if self._token_expired():
                    self._close_expired()
                    ctx.stop()
                    return
                ping = Ping(nonce=f"r{next(self.nonces)}", sent_at_ms=trio.current_time() * 1000)
                if not await self._send(ping):
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
                self._close_expired()
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

    def _token_expired(self) -> bool:
        """Whether the device token has expired (with the leeway the token check allows)."""
        return self.expires_at is not None and time.time() > self.expires_at + CLOCK_LEEWAY_S

    def _close_expired(self) -> None:
        self.close_code = CLOSE_UNAUTHENTICATED
        self.close_error = token_expired_error("device")
        self.close_reason = f"{self.close_error.code}: the device token has expired"

    async def _from_device(self, frame: object, ctx: ActorContext[DeviceMessage]) -> None:
        match frame:
            case ToolResult(call_id=call_id):
                reply_to = self.in_flight.pop(call_id, None)
                if reply_to is not None:
                    # The relay is the one that measured it: a device's own figure is replaced.
                    if frame.device_rtt_ms != self.rtt.rtt_ms:
                        frame = attrs.evolve(frame, device_rtt_ms=self.rtt.rtt_ms)
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
            case Pong():
                self.rtt.pong(frame)  # when the reader was not given the meter
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


def token_expired_error(kind: str) -> WireError:
    """What a connection whose ``kind`` ("device", "host") token expired is told as it closes."""
    return WireError(
        code="relay.unauthenticated",
        message=f"the {kind} token has expired; connect again with a fresh one",
        retryable=False,
    )


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
