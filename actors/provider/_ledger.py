"""Usage totals per upstream: what every call spent, including cancelled and failed ones.

Pure bookkeeping fed by the adapter's ``UsageObserver``: a call that was cancelled after the
upstream started answering still spent tokens, and they are counted here (marked as
estimated when the upstream never reported them). The host's ``provider`` actor shows these
totals; billing and quotas read the same figures.

Errors: none.
"""

from __future__ import annotations

import attrs

from ._openai import Outcome, UsageObserver
from ._types import Usage


@attrs.frozen(kw_only=True)
class UsageTotals:
    """One upstream's totals since the host started."""

    upstream: str
    finished: int = 0
    cancelled: int = 0
    failed: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    # Calls whose figures were estimated (the upstream sent no usage).
    estimated_calls: int = 0
    cost_usd: float = 0.0


class UsageLedger:
    """Accumulates usage per upstream; ``observer(name)`` is what the adapter is given."""

    def __init__(self) -> None:
        self._totals: dict[str, UsageTotals] = {}

    def record(self, upstream: str, outcome: Outcome, usage: Usage) -> None:
        """Add one call's usage under ``upstream``."""
        totals = self._totals.get(upstream, UsageTotals(upstream=upstream))
        self._totals[upstream] = attrs.evolve(
            totals,
            finished=totals.finished + (outcome == "finished"),
            cancelled=totals.cancelled + (outcome == "cancelled"),
            failed=totals.failed + (outcome == "failed"),
            input_tokens=totals.input_tokens + usage.input_tokens,
            output_tokens=totals.output_tokens + usage.output_tokens,
            estimated_calls=totals.estimated_calls + usage.estimated,
            cost_usd=totals.cost_usd + (usage.cost_usd or 0.0),
        )

    def observer(self, upstream: str) -> UsageObserver:
        """An observer for one upstream's adapter."""

        def observe(outcome: Outcome, usage: Usage) -> None:
            self.record(upstream, outcome, usage)

        return observe

    def totals(self) -> tuple[UsageTotals, ...]:
        """Every upstream's totals, by name."""
        return tuple(self._totals[name] for name in sorted(self._totals))
