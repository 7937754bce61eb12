"""Sessions: one ``Session`` actor per ``StreamChat`` stream, one ``Turn`` child per turn."""

from ._guardrails import LimitPolicy as LimitPolicy
from ._guardrails import TokenBudget as TokenBudget
from ._guardrails import resolve_limits as resolve_limits
from ._outbox import OUTBOX_CAPACITY as OUTBOX_CAPACITY
from ._outbox import ClientGone as ClientGone
from ._outbox import DirectSink as DirectSink
from ._outbox import Outbox as Outbox
from ._outbox import open_outbox as open_outbox
from ._redaction import REDACT_INLINE_BYTES as REDACT_INLINE_BYTES
from ._redaction import redact_off_loop as redact_off_loop
from ._session import SESSION_MAILBOX as SESSION_MAILBOX
from ._session import Session as Session
from ._session import SessionContext as SessionContext
from ._session import SessionDeps as SessionDeps
from ._session import ToolRunnerFactory as ToolRunnerFactory
from ._turn import MAX_TOOL_DEPTH as MAX_TOOL_DEPTH
from ._turn import Turn as Turn
from ._turn import TurnProgress as TurnProgress

__all__ = [
    "MAX_TOOL_DEPTH",
    "OUTBOX_CAPACITY",
    "REDACT_INLINE_BYTES",
    "SESSION_MAILBOX",
    "ClientGone",
    "DirectSink",
    "LimitPolicy",
    "Outbox",
    "Session",
    "SessionContext",
    "SessionDeps",
    "TokenBudget",
    "ToolRunnerFactory",
    "Turn",
    "TurnProgress",
    "open_outbox",
    "redact_off_loop",
    "resolve_limits",
]
