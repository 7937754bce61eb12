"""The bridge's actor protocol: ask ``RelayLink`` for its status (the terminal display does)."""

from __future__ import annotations

from typing import Literal, TypeAlias

import attrs

from zl_actors import Request

LinkState = Literal["connecting", "connected", "reconnecting", "stopped"]


@attrs.frozen(kw_only=True)
class BridgeStatus:
    """What the terminal shows: the link's state and its counters."""

    state: LinkState
    relay_url: str
    device_id: str
    calls_in_flight: int
    calls_done: int
    connects: int
    attempt: int
    last_error: str | None
    rtt_ms: float | None


@attrs.frozen(kw_only=True)
class GetBridgeStatus(Request[BridgeStatus]):
    """Ask for the :class:`BridgeStatus`."""


BridgeMessage: TypeAlias = GetBridgeStatus
