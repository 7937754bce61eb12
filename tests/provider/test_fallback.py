"""The fallback chain with per-provider breakers, including the 5xx-storm chaos scenario."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing

from actors.errors import ProviderError
from actors.provider import (
    CompletionRequest,
    Finished,
    ProviderEvent,
    ProviderEventSink,
    TextDelta,
    Usage,
)
from actors.provider._breaker import BreakerConfig, BreakerState
from actors.provider._fallback import FallbackProvider
from actors.provider._openai import OpenAICompatibleProvider, open_openai_provider
from actors.provider._retry import RetryConfig
from actors.provider.fake_upstream import FakeUpstream, Fault, Script, open_fake_upstream

from .conftest import collect, fast_config, user_request

BREAKER = BreakerConfig(failure_rate_threshold=0.5, window=30.0, min_calls=2, cool_down=0.3)
NO_RETRY = RetryConfig(max_attempts=1)


def _text(events: list[ProviderEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


@asynccontextmanager
async def _two_upstreams() -> AsyncIterator[
    tuple[FakeUpstream, FakeUpstream, OpenAICompatibleProvider, OpenAICompatibleProvider]
]:
    async with (
        open_fake_upstream(Script(status=500)) as bad,
        open_fake_upstream(Script(text="fallback answer")) as good,
        open_openai_provider(fast_config(bad.url, name="primary", retry=NO_RETRY)) as primary,
        open_openai_provider(fast_config(good.url, name="secondary", retry=NO_RETRY)) as secondary,
    ):
        yield bad, good, primary, secondary


class TestChaos5xxStorm:
    """The primary fails with 5xx: its breaker opens, the fallback answers, then it recovers."""

    async def test_opens_falls_back_half_opens_and_recovers(self) -> None:
        async with _two_upstreams() as (bad, good, primary, secondary):
            chain = FallbackProvider([primary, secondary], breaker_config=BREAKER)
            for _ in range(2):
                assert _text(await collect(chain, user_request())) == "fallback answer"
            state = chain.breakers()[0]
            assert state.state is BreakerState.OPEN
            assert state.failure_rate == 1.0
            assert state.opened_at is not None

            # Open: the primary is not even asked.
            assert _text(await collect(chain, user_request())) == "fallback answer"
            assert len(bad.requests) == 2
            assert len(good.requests) == 3

            bad.default = Script(text="primary is back")
            await trio.sleep(BREAKER.cool_down)
            assert chain.breakers()[0].state is BreakerState.HALF_OPEN
            assert _text(await collect(chain, user_request())) == "primary is back"
            assert chain.breakers()[0].state is BreakerState.CLOSED
            assert len(good.requests) == 3

    async def test_failed_probe_reopens(self) -> None:
        async with _two_upstreams() as (bad, _good, primary, secondary):
            chain = FallbackProvider([primary, secondary], breaker_config=BREAKER)
            for _ in range(2):
                await collect(chain, user_request())
            await trio.sleep(BREAKER.cool_down)
            assert _text(await collect(chain, user_request())) == "fallback answer"
            assert len(bad.requests) == 3
            assert chain.breakers()[0].state is BreakerState.OPEN

    async def test_all_failed_is_unavailable(self) -> None:
        async with _two_upstreams() as (_bad, good, primary, secondary):
            good.default = Script(status=503)
            chain = FallbackProvider([primary, secondary], breaker_config=BREAKER)
            with pytest.raises(ProviderError) as caught:
                await collect(chain, user_request())
            assert caught.value.code == "provider.unavailable"
            assert "primary: provider.unavailable" in caught.value.message
            assert "secondary: provider.unavailable" in caught.value.message
            with pytest.raises(ProviderError):
                await collect(chain, user_request())
            with pytest.raises(ProviderError) as caught:
                await collect(chain, user_request())
            assert "primary: circuit open" in caught.value.message
            assert "secondary: circuit open" in caught.value.message

    async def test_no_fallback_after_output(self) -> None:
        async with _two_upstreams() as (bad, good, primary, secondary):
            bad.default = Script(fault=Fault.CUT_MID_STREAM, fault_after=2)
            chain = FallbackProvider([primary, secondary], breaker_config=BREAKER)
            with pytest.raises(ProviderError) as caught:
                await collect(chain, user_request())
            assert caught.value.code == "provider.unavailable"
            assert not good.requests
            assert chain.breakers()[0].calls_in_window == 1


class _Sleepy:
    """An in-process provider: waits ``delay`` then fails or answers (no network involved)."""

    def __init__(self, name: str, *, delay: float, fail: bool) -> None:
        self.name = name
        self.delay = delay
        self.fail = fail
        self.calls = 0

    async def stream(self, request: CompletionRequest, events: ProviderEventSink) -> None:
        self.calls += 1
        await trio.sleep(self.delay)
        if self.fail:
            raise ProviderError("provider.timeout", f"{self.name}: too slow")
        await events.send(
            Finished(finish_reason="stop", usage=Usage(input_tokens=1, output_tokens=0))
        )


class TestBreakerOnTrioClock:
    """With trio.current_time as the clock, breakers follow the autojump clock."""

    async def test_cool_down_in_virtual_time(self, autojump_clock: trio.testing.MockClock) -> None:
        slow = _Sleepy("slow", delay=10, fail=True)
        spare = _Sleepy("spare", delay=0, fail=False)
        config = BreakerConfig(min_calls=3, cool_down=600)
        chain = FallbackProvider([slow, spare], breaker_config=config, clock=trio.current_time)
        for _ in range(5):
            await collect(chain, user_request())
        assert slow.calls == 3
        await trio.sleep(600)
        await collect(chain, user_request())
        assert slow.calls == 4

    async def test_cancel_counts_no_failure(self, autojump_clock: trio.testing.MockClock) -> None:
        slow = _Sleepy("slow", delay=60, fail=True)
        chain = FallbackProvider(
            [slow], breaker_config=BreakerConfig(min_calls=1), clock=trio.current_time
        )
        send, _receive = trio.open_memory_channel[ProviderEvent](1)
        with trio.move_on_after(1):
            await chain.stream(user_request(), send)
        assert chain.breakers()[0].calls_in_window == 0
        assert chain.breakers()[0].state is BreakerState.CLOSED

    def test_empty_chain_is_refused(self) -> None:
        with pytest.raises(ValueError, match="at least one"):
            FallbackProvider([])
