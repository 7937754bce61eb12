"""Limits of one relay shard's connections (the relay's config section ``[limits]``)."""

from __future__ import annotations

from typing import Final

import attrs
from attrs.validators import gt

from ._frames import DEFAULT_MAX_FRAME_BYTES

DEFAULT_HEARTBEAT_S: Final = 5.0
DEFAULT_MAX_IN_FLIGHT: Final = 32
DEFAULT_MAX_HOST_IN_FLIGHT: Final = 4096
DEFAULT_HELLO_TIMEOUT_S: Final = 10.0
DEFAULT_SEND_TIMEOUT_S: Final = 10.0
#: A peer silent for this many heartbeat intervals is dead.
DEAD_AFTER_HEARTBEATS: Final = 2.0
#: Hosts ping the relay; a host connection silent for this many intervals is dropped.
HOST_IDLE_HEARTBEATS: Final = 4.0


@attrs.frozen(kw_only=True)
class RelayLimits:
    """Bounds and timers of device and host connections.

    Args:
        heartbeat_s: the relay pings each device this often; a device silent for
            ``DEAD_AFTER_HEARTBEATS`` intervals is dead and its calls fail.
        max_in_flight: calls in flight per device; one more gets ``relay.overloaded``.
        max_host_in_flight: calls in flight per host connection.
        max_frame_bytes: larger frames close the connection (1009).
        hello_timeout_s: a device must send ``device.hello`` within this.
        send_timeout_s: a peer that does not take a frame within this is dropped.
    """

    heartbeat_s: float = attrs.field(default=DEFAULT_HEARTBEAT_S, validator=gt(0))
    max_in_flight: int = attrs.field(default=DEFAULT_MAX_IN_FLIGHT, validator=gt(0))
    max_host_in_flight: int = attrs.field(default=DEFAULT_MAX_HOST_IN_FLIGHT, validator=gt(0))
    max_frame_bytes: int = attrs.field(default=DEFAULT_MAX_FRAME_BYTES, validator=gt(0))
    hello_timeout_s: float = attrs.field(default=DEFAULT_HELLO_TIMEOUT_S, validator=gt(0))
    send_timeout_s: float = attrs.field(default=DEFAULT_SEND_TIMEOUT_S, validator=gt(0))

    @property
    def device_dead_after_s(self) -> float:
        return self.heartbeat_s * DEAD_AFTER_HEARTBEATS

    @property
    def host_idle_s(self) -> float:
        return self.heartbeat_s * HOST_IDLE_HEARTBEATS
