"""What the BFF's HTTP edge says to a ``ChatSession`` actor, and what it answers."""

from __future__ import annotations

import attrs
import trio

from contracts.generated import agent_pb2
from zl_actors import Request


@attrs.frozen(kw_only=True)
class SessionInfo:
    """A session as ``GET /v1/sessions/{id}`` shows it."""

    session_id: str
    tenant: str
    user: str
    device_id: str
    model: str
    max_turn_ms: int
    token_budget: int
    max_message_bytes: int
    #: Unix time after which the session is ended (the token's expiry, or max_session_s).
    expires_at: float
    turn_running: bool = False


@attrs.frozen(kw_only=True)
class TurnStream:
    """A turn that started: its events arrive on ``events`` until its last one.

    The receiver must close ``events`` when it stops reading (the session then cancels
    the turn on the host if it is still running).
    """

    number: int
    events: trio.MemoryReceiveChannel[agent_pb2.ChatEvent]


@attrs.frozen(kw_only=True)
class Refusal:
    """Why a request to a session was not carried out: a catalog code and a detail."""

    code: str
    detail: str


@attrs.frozen(kw_only=True)
class StartTurn(Request["TurnStream | Refusal"]):
    """Send ``text`` as the session's next user message."""

    text: str


@attrs.frozen(kw_only=True)
class CancelCurrentTurn(Request[bool]):
    """Ask the host to stop the running turn; answers whether one was running."""


@attrs.frozen(kw_only=True)
class AbandonTurn:
    """The reader of turn ``number`` went away: cancel it on the host if it still runs."""

    number: int


@attrs.frozen(kw_only=True)
class CloseSession(Request[None]):
    """End the session: the host is told, and the stream reset if it does not end in time."""


@attrs.frozen(kw_only=True)
class GetSessionInfo(Request[SessionInfo]):
    pass


SessionMessage = StartTurn | CancelCurrentTurn | AbandonTurn | CloseSession | GetSessionInfo
