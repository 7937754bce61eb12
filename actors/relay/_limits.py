"""Limits of one relay shard's connections (the relay's config section ``[limits]``), and the
size and depth rules every frame codec of the relay follows.

Where a frame enters (a device's or a host's socket) its size and nesting are bounded before
anything else reads it; where a frame leaves it is measured again, against the limit of the
link it leaves on, because the two links' limits differ and a frame can change size on the
way (the relay stamps ``device_rtt_ms``; a number such as ``1e9`` re-encodes as
``1000000000.0``). A frame that fits the link it came in on but not the one it leaves on
fails only its own call, with a typed ``relay.bad_frame``; it never closes a connection that
other calls, or other tenants, share.

The device link's limit is the smaller one: the host link's default adds
``HOST_LINK_HEADROOM_BYTES``, so whatever a device may send still fits on its way to a host.
"""

from __future__ import annotations

from typing import Final

import attrs
from attrs.validators import gt

from actors.strict_json import DEFAULT_MAX_DEPTH

from ._errors import BadFrame

#: A frame larger than this is refused before it is parsed. 1 MiB holds a tool result with
#: a generous ``maxBytes`` cap (a larger result is cut to fit by the bridge and marked
#: ``truncated``); the relay's config can lower it.
DEFAULT_MAX_FRAME_BYTES: Final = 1024 * 1024
#: Room a frame from a device may need on its way to a host (the relay's own fields).
HOST_LINK_HEADROOM_BYTES: Final = 4096
#: The host link's frame limit by default (relay → host and host → relay).
DEFAULT_MAX_HOST_FRAME_BYTES: Final = DEFAULT_MAX_FRAME_BYTES + HOST_LINK_HEADROOM_BYTES
#: Levels the frame itself adds around a value it carries (the frame object, ``result``,
#: ``structuredContent``, a list of content blocks...).
FRAME_NESTING_LEVELS: Final = 8
#: Containers nested deeper than this in a frame are refused where it enters: a value
#: the strict reader accepted anywhere else (``DEFAULT_MAX_DEPTH``) still fits in a frame.
MAX_FRAME_DEPTH: Final = DEFAULT_MAX_DEPTH + FRAME_NESTING_LEVELS
#: Bytes of a ``tool.result`` around its ``result`` object, counted generously: the
#: type, a call id of 128 characters, the separators and the relay's ``device_rtt_ms``.
RESULT_FRAMING_BYTES: Final = 512

DEFAULT_HEARTBEAT_S: Final = 5.0
DEFAULT_MAX_IN_FLIGHT: Final = 32
DEFAULT_MAX_HOST_IN_FLIGHT: Final = 4096
DEFAULT_HELLO_TIMEOUT_S: Final = 10.0
DEFAULT_SEND_TIMEOUT_S: Final = 10.0
#: A peer silent for this many heartbeat intervals is dead.
DEAD_AFTER_HEARTBEATS: Final = 2.0
#: Hosts ping the relay; a host connection silent for this many intervals is dropped.
HOST_IDLE_HEARTBEATS: Final = 4.0


def check_inbound_size(size: int, limit: int) -> None:
    """Refuse a frame of ``size`` bytes arriving on a link whose limit is ``limit``.

    Raises:
        BadFrame: the frame is larger than the limit.
    """
    if size > limit:
        raise BadFrame(f"frame of {size} bytes exceeds the {limit}-byte limit")


def check_outbound_size(
    size: int, limit: int, *, link: str, frame_type: str, call_id: str | None = None
) -> None:
    """Refuse to send a frame of ``size`` bytes on a link whose limit is ``limit``.

    Args:
        size: the encoded frame's length in bytes, as it will be sent.
        limit: the frame limit of the link it would leave on.
        link: which link, for the message ("the host link", "the device link").
        frame_type: the frame's type, for the message.
        call_id: the call the frame belongs to, so that only that call fails.

    Raises:
        BadFrame: the frame would not fit; its ``call_id`` names the call to fail.
    """
    if size > limit:
        raise BadFrame(
            f"{frame_type} frame of {size} bytes does not fit {link}'s {limit}-byte frame limit",
            call_id=call_id,
        )


def result_budget(frame_limit: int) -> int:
    """Bytes a ``tool.result``'s ``result`` object may take to fit a ``frame_limit`` frame."""
    return max(0, frame_limit - RESULT_FRAMING_BYTES)


@attrs.frozen(kw_only=True)
class RelayLimits:
    """Bounds and timers of device and host connections.

    Args:
        heartbeat_s: the relay pings each device this often; a device silent for
            ``DEAD_AFTER_HEARTBEATS`` intervals is dead and its calls fail.
        max_in_flight: calls in flight per device; one more gets ``relay.overloaded``.
        max_host_in_flight: calls in flight per host connection.
        max_frame_bytes: the device link's frame limit; larger frames from a device close
            its connection (1009), a larger ``tool.call`` for it fails only that call.
        max_host_frame_bytes: the host link's frame limit, both ways (by default
            ``max_frame_bytes + HOST_LINK_HEADROOM_BYTES``, so every result a device may send
            reaches its host); at most the hosts' own limit
            (``RelayLinkSettings.max_frame_bytes``).
        hello_timeout_s: a device must send ``device.hello`` within this.
        send_timeout_s: a peer that does not take a frame within this is dropped.
    """

    heartbeat_s: float = attrs.field(default=DEFAULT_HEARTBEAT_S, validator=gt(0))
    max_in_flight: int = attrs.field(default=DEFAULT_MAX_IN_FLIGHT, validator=gt(0))
    max_host_in_flight: int = attrs.field(default=DEFAULT_MAX_HOST_IN_FLIGHT, validator=gt(0))
    max_frame_bytes: int = attrs.field(default=DEFAULT_MAX_FRAME_BYTES, validator=gt(0))
    max_host_frame_bytes: int = attrs.field(validator=gt(0))
    hello_timeout_s: float = attrs.field(default=DEFAULT_HELLO_TIMEOUT_S, validator=gt(0))
    send_timeout_s: float = attrs.field(default=DEFAULT_SEND_TIMEOUT_S, validator=gt(0))

    @max_host_frame_bytes.default
    def _host_frame_default(self) -> int:
        return self.max_frame_bytes + HOST_LINK_HEADROOM_BYTES

    @property
    def device_dead_after_s(self) -> float:
        return self.heartbeat_s * DEAD_AFTER_HEARTBEATS

    @property
    def host_idle_s(self) -> float:
        return self.heartbeat_s * HOST_IDLE_HEARTBEATS
