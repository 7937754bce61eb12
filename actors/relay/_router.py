"""The relay's router: which device connection serves (tenant, device id), and call routing.

Errors that can be decided here (device offline, its queue full) go back to the host
connection at once as a ``tool.result`` with a typed error, never as a silent drop.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from typing import Final

import attrs
import trio

from actors.errors import WireError
from zl_actors import Actor, ActorContext, ActorRef, ActorStopped, MailboxFull

from ._frames import Catalog, DeviceHello, Pong, ToolResult
from .messages import (
    CallEnded,
    DeliverCall,
    DeliverCancel,
    DeviceMessage,
    GetCatalog,
    GetRouterStats,
    Heartbeat,
    HostMessage,
    RegisterDevice,
    Replace,
    RouteCall,
    RouteCancel,
    RouterMessage,
    RouterStats,
    UnregisterDevice,
    UpdateRtt,
)

log = logging.getLogger("zl.relay.router")

#: Messages queued for the router before host connections wait (back-pressure).
ROUTER_MAILBOX_CAPACITY: Final = 4096
#: The heartbeat interval is cut into this many ticks; each pings its share of the devices,
#: so a shard's pings are spread evenly over the interval instead of coming in waves.
HEARTBEAT_TICKS: Final = 50


def error_result(call_id: str, code: str, message: str, *, retryable: bool) -> ToolResult:
    """A ``tool.result`` that ends ``call_id`` with a typed error."""
    return ToolResult(
        call_id=call_id, error=WireError(code=code, message=message, retryable=retryable)
    )


def reply_nowait(reply_to: ActorRef[HostMessage], frame: ToolResult) -> None:
    """Hand a result to a host connection without waiting.

    A host connection that is gone or whose mailbox is full loses it; its own call
    deadline then fails the call, so nothing waits forever.
    """
    try:
        reply_to.send_nowait(CallEnded(frame=frame))
    except (MailboxFull, ActorStopped):
        log.warning("router: host connection %s cannot take result %s", reply_to, frame.call_id)


@attrs.define
class RttMeter:
    """The last relay↔device round trip of one connection, from the device's pongs.

    Written only by the connection's reader (a pong needs no state change of the actor, so
    it does not wake it: heartbeats are most of what idle devices cost a shard's CPU); read
    by the connection actor (for results) and the router (for catalogs).
    """

    rtt_ms: float | None = None

    def pong(self, pong: Pong) -> None:
        """Take a pong: the time since its ping was sent."""
        self.rtt_ms = max(0.0, trio.current_time() * 1000 - pong.sent_at_ms)


@attrs.define
class _Entry:
    ref: ActorRef[DeviceMessage]
    hello: DeviceHello
    tick: int = 0
    rtt_ms: float | None = None
    #: The connection's meter, when it registered one (read for catalogs).
    rtt: RttMeter | None = None

    @property
    def last_rtt_ms(self) -> float | None:
        measured = self.rtt.rtt_ms if self.rtt is not None else None
        return measured if measured is not None else self.rtt_ms


class Router(Actor[RouterMessage]):
    """Holds the device registry of one relay shard, and paces the devices' heartbeats.

    Args:
        heartbeat_s: every registered device gets a ``Heartbeat`` this often (None: none,
            for tests of routing alone). One task here does it for the whole shard: a timer
            per device was a task and a sleeping cancel scope per idle connection.
    """

    mailbox_capacity = ROUTER_MAILBOX_CAPACITY

    def __init__(self, heartbeat_s: float | None = None) -> None:
        self.devices: dict[tuple[str, str], _Entry] = {}
        self.heartbeat_s = heartbeat_s
        self._ticks: list[dict[tuple[str, str], ActorRef[DeviceMessage]]] = [
            {} for _ in range(HEARTBEAT_TICKS)
        ]
        self._next_tick = itertools.count()

    async def on_start(self, ctx: ActorContext[RouterMessage]) -> None:
        if self.heartbeat_s is not None:
            ctx.nursery.start_soon(self._heartbeats, self.heartbeat_s)

    async def _heartbeats(self, interval_s: float) -> None:
        tick_s = interval_s / HEARTBEAT_TICKS
        next_at = trio.current_time()
        for tick in itertools.cycle(range(HEARTBEAT_TICKS)):
            next_at += tick_s
            await trio.sleep_until(next_at)
            for ref in list(self._ticks[tick].values()):
                # A device whose mailbox is full is busy, not idle: its ping can wait.
                with contextlib.suppress(MailboxFull, ActorStopped):
                    ref.send_nowait(Heartbeat())

    def _forget(self, key: tuple[str, str]) -> None:
        entry = self.devices.pop(key, None)
        if entry is not None:
            self._ticks[entry.tick].pop(key, None)

    async def handle(self, message: RouterMessage, ctx: ActorContext[RouterMessage]) -> object:
        match message:
            case RegisterDevice(tenant=tenant, device_id=device_id, hello=hello, ref=ref, rtt=rtt):
                key = (tenant, device_id)
                old = self.devices.get(key)
                self._forget(key)
                tick = next(self._next_tick) % HEARTBEAT_TICKS
                self.devices[key] = _Entry(ref=ref, hello=hello, tick=tick, rtt=rtt)
                self._ticks[tick][key] = ref
                if old is not None and old.ref != ref:
                    log.info(
                        "router: %s/%s reconnected; replacing the old connection", tenant, device_id
                    )
                    with contextlib.suppress(MailboxFull, ActorStopped):
                        old.ref.send_nowait(Replace())
            case UnregisterDevice(tenant=tenant, device_id=device_id, ref=ref):
                entry = self.devices.get((tenant, device_id))
                if entry is not None and entry.ref == ref:
                    self._forget((tenant, device_id))
            case RouteCall(frame=frame, reply_to=reply_to):
                self._route(
                    frame.tenant, frame.device_id, DeliverCall(frame=frame, reply_to=reply_to)
                )
            case RouteCancel(tenant=tenant, device_id=device_id, call_id=call_id, reason=reason):
                entry = self.devices.get((tenant, device_id))
                if entry is not None:
                    with contextlib.suppress(MailboxFull, ActorStopped):
                        entry.ref.send_nowait(DeliverCancel(call_id=call_id, reason=reason))
            case UpdateRtt(tenant=tenant, device_id=device_id, rtt_ms=rtt_ms):
                entry = self.devices.get((tenant, device_id))
                if entry is not None:
                    entry.rtt_ms = rtt_ms
            case GetCatalog(request_id=request_id, tenant=tenant, device_id=device_id):
                entry = self.devices.get((tenant, device_id))
                if entry is None:
                    return Catalog(
                        request_id=request_id,
                        tenant=tenant,
                        device_id=device_id,
                        online=False,
                        tools=(),
                    )
                return Catalog(
                    request_id=request_id,
                    tenant=tenant,
                    device_id=device_id,
                    online=True,
                    tools=entry.hello.tools,
                    bridge_version=entry.hello.bridge_version,
                    rtt_ms=entry.last_rtt_ms,
                )
            case GetRouterStats():
                return RouterStats(
                    devices=len(self.devices), tenants=len({t for t, _ in self.devices})
                )
        return None

    def _route(self, tenant: str, device_id: str, deliver: DeliverCall) -> None:
        call_id = deliver.frame.call_id
        entry = self.devices.get((tenant, device_id))
        if entry is None:
            reply_nowait(
                deliver.reply_to,
                error_result(
                    call_id,
                    "relay.device_offline",
                    f"device {device_id!r} of tenant {tenant!r} is not connected",
                    retryable=True,
                ),
            )
            return
        try:
            entry.ref.send_nowait(deliver)
        except MailboxFull:
            reply_nowait(
                deliver.reply_to,
                error_result(
                    call_id, "relay.overloaded", f"device {device_id!r} is busy", retryable=True
                ),
            )
        except ActorStopped:
            reply_nowait(
                deliver.reply_to,
                error_result(
                    call_id,
                    "relay.device_offline",
                    f"device {device_id!r} has just disconnected",
                    retryable=True,
                ),
            )
