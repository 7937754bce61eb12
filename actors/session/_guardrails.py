"""Pure guardrail logic: resolving limits and keeping the token budget."""

from __future__ import annotations

import attrs

from .messages import RequestedLimits, SessionLimits


@attrs.frozen(kw_only=True)
class LimitPolicy:
    """The server's defaults for each limit, and the most a client may ask for."""

    default: SessionLimits
    maximum: SessionLimits


def resolve_limits(requested: RequestedLimits, policy: LimitPolicy) -> SessionLimits:
    """0 takes the default; anything else is capped at the maximum."""

    def pick(asked: int, default: int, maximum: int) -> int:
        return default if asked <= 0 else min(asked, maximum)

    return SessionLimits(
        max_turn_ms=pick(
            requested.max_turn_ms, policy.default.max_turn_ms, policy.maximum.max_turn_ms
        ),
        token_budget=pick(
            requested.token_budget, policy.default.token_budget, policy.maximum.token_budget
        ),
        max_message_bytes=pick(
            requested.max_message_bytes,
            policy.default.max_message_bytes,
            policy.maximum.max_message_bytes,
        ),
    )


class TokenBudget:
    """Tokens a session may still spend: input and output of every turn count."""

    __slots__ = ("limit", "spent")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.spent = 0

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.spent)

    @property
    def exhausted(self) -> bool:
        return self.spent >= self.limit

    def charge(self, tokens: int) -> None:
        self.spent += max(0, tokens)
