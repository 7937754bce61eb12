"""The session protocol: what the edge tells a session, and the events a session emits.

Messages from the network are validated by the gRPC edge before they become these
classes; from here on they are trusted.
"""

from __future__ import annotations

import attrs

from actors.errors import WireError
from actors.provider import Usage


@attrs.frozen(kw_only=True)
class RequestedLimits:
    """Limits a client asks for; 0 means "the server's default"."""

    max_turn_ms: int = 0
    token_budget: int = 0
    max_message_bytes: int = 0


@attrs.frozen(kw_only=True)
class SessionLimits:
    """The limits in force for one session."""

    max_turn_ms: int
    token_budget: int
    max_message_bytes: int


# -- from the edge to the session ----------------------------------------------------------


@attrs.frozen(kw_only=True)
class StartSession:
    tenant: str
    user: str
    device_id: str
    model: str
    limits: RequestedLimits


@attrs.frozen(kw_only=True)
class UserMessage:
    text: str


@attrs.frozen(kw_only=True)
class CancelTurn:
    pass


@attrs.frozen(kw_only=True)
class BadRequest:
    """The edge could not accept a request (empty, unknown, oversized, undecodable)."""

    error: WireError


@attrs.frozen(kw_only=True)
class ClientClosed:
    """The client half-closed its side: finish the running turn, then end."""


@attrs.frozen(kw_only=True)
class TurnEnded:
    """From a session's turn: it finished (its final events are already emitted)."""

    turn_id: str
    assistant_text: str
    usage: Usage


SessionInbound = StartSession | UserMessage | CancelTurn | BadRequest | ClientClosed | TurnEnded


# -- from the session to the edge ----------------------------------------------------------


@attrs.frozen(kw_only=True)
class SessionStartedEvent:
    session_id: str
    limits: SessionLimits


@attrs.frozen(kw_only=True)
class AssistantDeltaEvent:
    turn_id: str
    text: str


@attrs.frozen(kw_only=True)
class AssistantDoneEvent:
    turn_id: str
    finish_reason: str
    usage: Usage


@attrs.frozen(kw_only=True)
class ToolCallStartedEvent:
    turn_id: str
    call_id: str
    tool: str
    version: str
    args_json: str
    device_id: str


@attrs.frozen(kw_only=True)
class ToolCallDeltaEvent:
    turn_id: str
    call_id: str
    status: str
    result_json: str = ""
    error: WireError | None = None
    #: The audit receipt's id, on the call's final delta.
    receipt_id: str = ""


@attrs.frozen(kw_only=True)
class ErrorEvent:
    turn_id: str
    error: WireError


SessionEvent = (
    SessionStartedEvent
    | AssistantDeltaEvent
    | AssistantDoneEvent
    | ToolCallStartedEvent
    | ToolCallDeltaEvent
    | ErrorEvent
)
