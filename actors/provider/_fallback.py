"""A provider that tries a chain of providers, skipping those whose breaker is open.

Errors: the chain's own failure is ``ProviderError("provider.unavailable")`` naming why each
provider was skipped or failed. When only one provider was tried (a chain of one, or the others
open), its own error is re-raised as it is, so a lone upstream's ``provider.timeout`` or
``provider.rate_limited`` keeps its code. A provider's error that comes after it already
forwarded an event is re-raised as it is too: falling back then would repeat or contradict text
the user saw.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import attrs
import trio

from actors.errors import ProviderError

from ._breaker import BreakerConfig, BreakerSnapshot, CircuitBreaker, StateChangeObserver
from ._types import CompletionRequest, LlmProvider, ProviderEvent, ProviderEventSink, nowait_of


@attrs.define
class _Relay:
    """The caller's sink, noting whether a provider forwarded anything before it failed.

    Events go straight through in the provider's own task: no channel and no second task, so
    a token costs no extra scheduling pass and the caller's back-pressure reaches the provider
    unchanged.
    """

    events: ProviderEventSink
    forwarded: bool = False
    _send_nowait: Callable[[ProviderEvent], None] | None = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._send_nowait = nowait_of(self.events)

    async def send(self, event: ProviderEvent) -> None:
        await self.events.send(event)
        self.forwarded = True

    def send_nowait(self, event: ProviderEvent) -> None:
        """The caller's ``send_nowait``; ``trio.WouldBlock`` when it has none."""
        if self._send_nowait is None:
            raise trio.WouldBlock
        self._send_nowait(event)
        self.forwarded = True


class FallbackProvider:
    """An ``LlmProvider`` over ``[primary, fallback, ...]``, each behind its own breaker.

    Args:
        chain: the providers in order of preference (at least one).
        breaker_config: thresholds shared by every provider's breaker.
        clock: the breakers' clock (``trio.current_time`` makes them follow Trio's clock).
        name: this provider's name.
        on_state_change: called on every breaker's state change (for logs and metrics).

    Raises:
        ValueError: if ``chain`` is empty.
    """

    def __init__(
        self,
        chain: Sequence[LlmProvider],
        *,
        breaker_config: BreakerConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
        name: str = "fallback",
        on_state_change: StateChangeObserver | None = None,
    ) -> None:
        if not chain:
            raise ValueError("a fallback chain needs at least one provider")
        self.name = name
        self._chain = tuple(
            (
                provider,
                CircuitBreaker(
                    provider.name, breaker_config, clock=clock, on_state_change=on_state_change
                ),
            )
            for provider in chain
        )

    def breakers(self) -> tuple[BreakerSnapshot, ...]:
        """Each provider's breaker, in chain order, for introspection."""
        return tuple(breaker.snapshot() for _, breaker in self._chain)

    async def stream(self, request: CompletionRequest, events: ProviderEventSink) -> None:
        """Stream from the first provider whose breaker lets the call through and that answers.

        Raises:
            ProviderError: ``provider.unavailable`` when every provider was open or failed
                before forwarding anything; a provider's own error when it failed after, or
                when it was the only one tried.

        Cancellation: the running provider is cancelled (and closes its upstream); its
        breaker slot is released without counting a failure.
        """
        reasons: list[str] = []
        tried: list[ProviderError] = []
        for provider, breaker in self._chain:
            if not breaker.try_acquire():
                reasons.append(f"{provider.name}: circuit open")
                continue
            relay = _Relay(events)
            try:
                error = await self._run(provider, request, relay)
            except BaseException:
                breaker.release()
                raise
            if error is None:
                breaker.record_success()
                return
            breaker.record_failure()
            if relay.forwarded:
                raise error
            reasons.append(f"{provider.name}: {error.code}")
            tried.append(error)
        if len(tried) == 1 and len(reasons) == 1:
            raise tried[0]
        raise ProviderError(
            "provider.unavailable", "no provider answered (" + "; ".join(reasons) + ")"
        )

    @staticmethod
    async def _run(
        provider: LlmProvider, request: CompletionRequest, relay: _Relay
    ) -> ProviderError | None:
        try:
            await provider.stream(request, relay)
        except ProviderError as exc:
            return exc
        return None
