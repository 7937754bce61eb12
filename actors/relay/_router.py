"""The relay's router: which device connection serves (tenant, device id), and call routing.

Errors that can be decided here (device offline, its queue full) go back to the host
connection at once as a ``tool.result`` with a typed error, never as a silent drop.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Final

import attrs

from actors.errors import WireError
from zl_actors import Actor, ActorContext, ActorRef, ActorStopped, MailboxFull

from ._frames import Catalog, DeviceHello, ToolResult
from .messages import (
    CallEnded,
    DeliverCall,
    DeliverCancel,
    DeviceMessage,
    GetCatalog,
    GetRouterStats,
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
class _Entry:
    ref: ActorRef[DeviceMessage]
    hello: DeviceHello
    rtt_ms: float | None = None


class Router(Actor[RouterMessage]):
    """Holds the device registry of one relay shard."""

    mailbox_capacity = ROUTER_MAILBOX_CAPACITY

    def __init__(self) -> None:
        self.devices: dict[tuple[str, str], _Entry] = {}

    async def handle(self, message: RouterMessage, ctx: ActorContext[RouterMessage]) -> object:
        match message:
            case RegisterDevice(tenant=tenant, device_id=device_id, hello=hello, ref=ref):
                old = self.devices.get((tenant, device_id))
                self.devices[(tenant, device_id)] = _Entry(ref=ref, hello=hello)
                if old is not None and old.ref != ref:
                    log.info(
                        "router: %s/%s reconnected; replacing the old connection", tenant, device_id
                    )
                    with contextlib.suppress(MailboxFull, ActorStopped):
                        old.ref.send_nowait(Replace())
            case UnregisterDevice(tenant=tenant, device_id=device_id, ref=ref):
                entry = self.devices.get((tenant, device_id))
                if entry is not None and entry.ref == ref:
                    del self.devices[(tenant, device_id)]
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
                    rtt_ms=entry.rtt_ms,
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
