"""Messages between the relay's actors: the router, device connections, host connections.

* ``Router``: :class:`RegisterDevice` (ask → None), :class:`UnregisterDevice`,
  :class:`RouteCall`, :class:`RouteCancel`, :class:`UpdateRtt`, :class:`GetCatalog`
  (ask → ``Catalog`` frame), :class:`GetRouterStats` (ask → :class:`RouterStats`).
* ``DeviceConnection``: :class:`DeliverCall`, :class:`DeliverCancel`, :class:`Heartbeat`,
  :class:`Replace`, :class:`FromPeer`, :class:`BadCallFrame`, :class:`PeerGone`,
  :class:`TokenExpired`.
* ``HostConnection``: :class:`CallEnded` (a result or progress for one of its calls),
  :class:`FromPeer`, :class:`BadCallFrame`, :class:`PeerGone`, :class:`TokenExpired`.

Frames inside these messages were checked by ``decode_frame`` where they entered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

import attrs

from actors.errors import WireError
from zl_actors import ActorRef, Request

from ._frames import Catalog, DeviceHello, Frame, ToolCall, ToolProgress, ToolResult

if TYPE_CHECKING:
    from ._router import RttMeter


@attrs.frozen(kw_only=True)
class FromPeer:
    """A frame the connection's reader task decoded."""

    frame: Frame


@attrs.frozen(kw_only=True)
class PeerGone:
    """The socket closed, broke or went silent; the connection actor stops."""

    reason: str
    code: int | None = None


@attrs.frozen(kw_only=True)
class BadCallFrame:
    """The peer sent a frame for call ``call_id`` that could not be accepted.

    Only that call fails (a typed ``relay.bad_frame``); the connection, which other calls
    and other tenants share, stays open.
    """

    call_id: str
    error: WireError


@attrs.frozen(kw_only=True)
class TokenExpired:
    """The connection's bearer token has expired; the connection closes (4401)."""


@attrs.frozen(kw_only=True)
class CallEnded:
    """Device → host connection: a ``tool.result`` (the end of a call) or ``tool.progress``."""

    frame: ToolResult | ToolProgress


HostMessage: TypeAlias = CallEnded | FromPeer | BadCallFrame | PeerGone | TokenExpired


@attrs.frozen(kw_only=True)
class DeliverCall:
    """Router → device: run ``frame``; the outcome goes to ``reply_to`` as ``CallEnded``."""

    frame: ToolCall
    reply_to: ActorRef[HostMessage]


@attrs.frozen(kw_only=True)
class DeliverCancel:
    """Router → device: cancel a call in flight (unknown ids are ignored)."""

    call_id: str
    reason: str


@attrs.frozen(kw_only=True)
class Heartbeat:
    """Router → device: time to ping the device (the router paces every device's pings)."""


@attrs.frozen(kw_only=True)
class Replace:
    """Router → device: a newer connection with the same device id took over; close."""


DeviceMessage: TypeAlias = (
    DeliverCall
    | DeliverCancel
    | Heartbeat
    | Replace
    | FromPeer
    | BadCallFrame
    | PeerGone
    | TokenExpired
)


@attrs.frozen(kw_only=True)
class RegisterDevice(Request[None]):
    """A device connection is ready; an older one with the same key is told to ``Replace``.

    ``rtt`` is the connection's round-trip meter (``_router.RttMeter``), which the
    router reads for catalogs; without one, ``UpdateRtt`` messages keep the figure.
    """

    tenant: str
    device_id: str
    hello: DeviceHello
    ref: ActorRef[DeviceMessage]
    rtt: RttMeter | None = None


@attrs.frozen(kw_only=True)
class UnregisterDevice:
    """A device connection ended (ignored if a newer one already took its place)."""

    tenant: str
    device_id: str
    ref: ActorRef[DeviceMessage]


@attrs.frozen(kw_only=True)
class RouteCall:
    """Host connection → router: deliver a call; errors go back to ``reply_to`` at once."""

    frame: ToolCall
    reply_to: ActorRef[HostMessage]


@attrs.frozen(kw_only=True)
class RouteCancel:
    """Host connection → router: forward a cancel to the device holding the call."""

    tenant: str
    device_id: str
    call_id: str
    reason: str


@attrs.frozen(kw_only=True)
class UpdateRtt:
    """Device → router: the last relay↔device round trip, for catalogs."""

    tenant: str
    device_id: str
    rtt_ms: float


@attrs.frozen(kw_only=True)
class GetCatalog(Request[Catalog]):
    """The catalog of a device (``online=False`` when it is not connected)."""

    request_id: str
    tenant: str
    device_id: str


@attrs.frozen(kw_only=True)
class RouterStats:
    """How many devices are connected, per tenant total."""

    devices: int
    tenants: int


@attrs.frozen(kw_only=True)
class GetRouterStats(Request[RouterStats]):
    """Ask for :class:`RouterStats`."""


RouterMessage: TypeAlias = (
    RegisterDevice
    | UnregisterDevice
    | RouteCall
    | RouteCancel
    | UpdateRtt
    | GetCatalog
    | GetRouterStats
)
