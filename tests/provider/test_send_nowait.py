"""Sinks that take events at once (``send_nowait``), and the idle clock that relies on it."""

from __future__ import annotations

import random
import time

import pytest
import trio

from actors.errors import ProviderError
from actors.provider import (
    FallbackProvider,
    Finished,
    ProviderEvent,
    TextDelta,
)
from actors.provider._openai import IDLE_SLACK, open_openai_provider
from actors.provider.fake_upstream import FakeUpstream, Fault, Script

from .conftest import fast_config, user_request


class NowaitSink:
    """Takes events at once, until ``refuse`` says otherwise; ``send`` counts its calls."""

    def __init__(self, *, refuse: bool = False) -> None:
        self.refuse = refuse
        self.events: list[ProviderEvent] = []
        self.waited = 0

    def send_nowait(self, event: ProviderEvent) -> None:
        if self.refuse:
            raise trio.WouldBlock
        self.events.append(event)

    async def send(self, event: ProviderEvent) -> None:
        self.waited += 1
        self.events.append(event)


class TestAdapter:
    """The adapter gives each event at once when the sink takes it, else waits as before."""

    async def test_every_event_goes_the_nowait_way(
        self, upstream: FakeUpstream, rng: random.Random
    ) -> None:
        upstream.default = Script(text="one two three")
        sink = NowaitSink()
        async with open_openai_provider(fast_config(upstream.url), rng=rng) as provider:
            with trio.fail_after(10):
                await provider.stream(user_request(), sink)
        assert "".join(e.text for e in sink.events if isinstance(e, TextDelta)) == "one two three"
        assert isinstance(sink.events[-1], Finished)
        # Only Finished goes through send: it is the stream's end, not a chunk.
        assert sink.waited == 1

    async def test_a_refusal_falls_back_to_send(
        self, upstream: FakeUpstream, rng: random.Random
    ) -> None:
        upstream.default = Script(text="one two three")
        sink = NowaitSink(refuse=True)
        async with open_openai_provider(fast_config(upstream.url), rng=rng) as provider:
            with trio.fail_after(10):
                await provider.stream(user_request(), sink)
        assert "".join(e.text for e in sink.events if isinstance(e, TextDelta)) == "one two three"
        assert sink.waited == len(sink.events)

    async def test_the_idle_clock_never_cuts_early_and_not_much_late(
        self, upstream: FakeUpstream, rng: random.Random
    ) -> None:
        idle = 0.4
        upstream.default = Script(text="a b c d", fault=Fault.HANG_MID_STREAM, fault_after=3)
        sink = NowaitSink()
        last_chunk = 0.0

        def note(event: ProviderEvent) -> None:
            nonlocal last_chunk
            last_chunk = time.monotonic()
            sink.events.append(event)

        sink.send_nowait = note  # type: ignore[method-assign]
        async with open_openai_provider(
            fast_config(upstream.url, idle_timeout=idle), rng=rng
        ) as provider:
            with pytest.raises(ProviderError) as caught, trio.fail_after(10):
                await provider.stream(user_request(), sink)
        silent = time.monotonic() - last_chunk
        assert caught.value.code == "provider.timeout"
        assert "idle" in caught.value.message
        assert silent >= idle
        # Not far past the slack (generous: a loaded machine is late, never early).
        assert silent < idle * (1 + IDLE_SLACK) + 1.0


class TestRelay:
    """The fallback chain passes ``send_nowait`` through to the caller's sink."""

    async def test_events_go_the_nowait_way_through_the_chain(
        self, upstream: FakeUpstream, rng: random.Random
    ) -> None:
        upstream.default = Script(text="one two")
        sink = NowaitSink()
        async with open_openai_provider(fast_config(upstream.url), rng=rng) as provider:
            chain = FallbackProvider([provider])
            with trio.fail_after(10):
                await chain.stream(user_request(), sink)
        assert [e.text for e in sink.events if isinstance(e, TextDelta)] == ["one ", "two"]
        assert sink.waited == 1

    async def test_a_sink_without_it_gets_send(
        self, upstream: FakeUpstream, rng: random.Random
    ) -> None:
        upstream.default = Script(text="one two")
        events: list[ProviderEvent] = []

        class SendOnly:
            async def send(self, event: ProviderEvent) -> None:
                events.append(event)

        async with open_openai_provider(fast_config(upstream.url), rng=rng) as provider:
            with trio.fail_after(10):
                await FallbackProvider([provider]).stream(user_request(), SendOnly())
        assert isinstance(events[-1], Finished)
