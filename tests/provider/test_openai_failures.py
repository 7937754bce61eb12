"""Deadlines, retries, bad streams and cancellation of the adapter, over real sockets."""

from __future__ import annotations

import random
import socket

import pytest
import trio
import trio.testing

from actors.errors import ProviderError
from actors.provider import Finished, ProviderEvent, TextDelta, Usage
from actors.provider._openai import Outcome, open_openai_provider
from actors.provider._retry import RetryConfig
from actors.provider.fake_upstream import FakeUpstream, Fault, Script

from .conftest import collect, fast_config, user_request

# The bound for closing the upstream after a cancel.
CLOSE_WITHIN = 0.100


async def _fails(
    upstream: FakeUpstream, code: str, rng: random.Random, **config: object
) -> ProviderError:
    async with open_openai_provider(fast_config(upstream.url, **config), rng=rng) as provider:
        with pytest.raises(ProviderError) as caught:
            await collect(provider, user_request())
    assert caught.value.code == code, caught.value
    return caught.value


class TestDeadlines:
    """Each deadline ends the call with provider.timeout."""

    async def test_first_token_timeout_is_not_retried(
        self, upstream: FakeUpstream, rng: random.Random
    ) -> None:
        upstream.default = Script(first_token_delay=30)
        error = await _fails(upstream, "provider.timeout", rng, first_token_timeout=0.3)
        assert "first token" in error.message
        assert len(upstream.requests) == 1

    async def test_idle_timeout_between_chunks(
        self, upstream: FakeUpstream, rng: random.Random
    ) -> None:
        upstream.default = Script(fault=Fault.HANG_MID_STREAM, fault_after=2)
        error = await _fails(upstream, "provider.timeout", rng, idle_timeout=0.3)
        assert "idle" in error.message

    async def test_a_slow_reader_is_not_an_idle_upstream(
        self, upstream: FakeUpstream, rng: random.Random
    ) -> None:
        """The idle clock stops while the caller has not taken an event yet."""
        upstream.default = Script(text="one two three", token_interval=0.01)

        class SlowReader:
            def __init__(self) -> None:
                self.events: list[ProviderEvent] = []

            async def send(self, event: ProviderEvent) -> None:
                if not self.events:
                    await trio.sleep(1.0)  # far past the idle timeout
                self.events.append(event)

        reader = SlowReader()
        async with open_openai_provider(
            fast_config(upstream.url, idle_timeout=0.2, first_token_timeout=0.5), rng=rng
        ) as provider:
            with trio.fail_after(10):
                await provider.stream(user_request(), reader)
        text = "".join(e.text for e in reader.events if isinstance(e, TextDelta))
        assert text == "one two three"
        assert isinstance(reader.events[-1], Finished)

    async def test_total_timeout(self, upstream: FakeUpstream, rng: random.Random) -> None:
        upstream.default = Script(text="word " * 100, token_interval=0.05)
        error = await _fails(upstream, "provider.timeout", rng, total_timeout=0.5)
        assert "total" in error.message

    async def test_connect_timeout(self, rng: random.Random) -> None:
        # A listener whose accept backlog is full drops new SYNs: connect() hangs, as it does
        # towards a blackholed host, but on loopback.
        with FullListener() as url:
            async with open_openai_provider(
                fast_config(
                    url, connect_timeout=0.2, retry=RetryConfig(max_attempts=2, base_delay=0.01)
                ),
                rng=rng,
            ) as provider:
                with pytest.raises(ProviderError) as caught, trio.fail_after(10):
                    await collect(provider, user_request())
        assert caught.value.code == "provider.timeout"
        assert "ConnectTimeout" in caught.value.message

    async def test_hang_leaks_no_connection_and_no_task(
        self, upstream: FakeUpstream, rng: random.Random
    ) -> None:
        upstream.default = Script(fault=Fault.HANG_BEFORE_RESPONSE)
        await trio.testing.wait_all_tasks_blocked()
        tasks_before = trio.lowlevel.current_statistics().tasks_living
        async with open_openai_provider(
            fast_config(upstream.url, first_token_timeout=0.3), rng=rng
        ) as provider:
            with pytest.raises(ProviderError) as caught:
                await collect(provider, user_request())
            assert caught.value.code == "provider.timeout"
            # Closed by the adapter itself, while the pool is still open.
            with trio.fail_after(CLOSE_WITHIN):
                await upstream.wait_until(open_connections=0)
        # The fake's connection task has ended too once everything is idle again.
        await trio.testing.wait_all_tasks_blocked()
        assert trio.lowlevel.current_statistics().tasks_living == tasks_before


class TestRetries:
    """Retries happen before the first token only, on retryable failures only."""

    async def test_5xx_then_success(self, upstream: FakeUpstream, rng: random.Random) -> None:
        upstream.push(Script(status=503), Script(status=502))
        async with open_openai_provider(fast_config(upstream.url), rng=rng) as provider:
            events = await collect(provider, user_request())
        assert "".join(e.text for e in events if isinstance(e, TextDelta)) == Script().text
        assert len(upstream.requests) == 3

    async def test_5xx_storm_gives_up_after_max_attempts(
        self, upstream: FakeUpstream, rng: random.Random
    ) -> None:
        upstream.default = Script(status=500)
        error = await _fails(upstream, "provider.unavailable", rng)
        assert "500" in error.message
        assert len(upstream.requests) == 3

    async def test_429_waits_retry_after_then_succeeds(
        self, upstream: FakeUpstream, rng: random.Random
    ) -> None:
        upstream.push(Script(status=429, retry_after="0.3"))
        async with open_openai_provider(fast_config(upstream.url), rng=rng) as provider:
            start = trio.current_time()
            events = await collect(provider, user_request())
            waited = trio.current_time() - start
        assert isinstance(events[-1], Finished)
        assert len(upstream.requests) == 2
        assert waited >= 0.3

    async def test_429_beyond_the_cap_is_reported_at_once(
        self, upstream: FakeUpstream, rng: random.Random
    ) -> None:
        upstream.default = Script(status=429, retry_after="120")
        await _fails(upstream, "provider.rate_limited", rng)
        assert len(upstream.requests) == 1

    async def test_429_persisting_is_rate_limited(
        self, upstream: FakeUpstream, rng: random.Random
    ) -> None:
        upstream.default = Script(status=429)
        await _fails(upstream, "provider.rate_limited", rng)
        assert len(upstream.requests) == 3

    async def test_4xx_is_not_retried(self, upstream: FakeUpstream, rng: random.Random) -> None:
        upstream.default = Script(status=404, error_message="model not found")
        error = await _fails(upstream, "provider.unavailable", rng)
        assert "model not found" in error.message
        assert len(upstream.requests) == 1

    async def test_cut_after_a_token_is_an_error_not_a_retry(
        self, upstream: FakeUpstream, rng: random.Random
    ) -> None:
        upstream.push(Script(fault=Fault.CUT_MID_STREAM, fault_after=2))
        send, receive = trio.open_memory_channel[ProviderEvent](64)
        async with open_openai_provider(fast_config(upstream.url), rng=rng) as provider:
            with pytest.raises(ProviderError) as caught, trio.fail_after(10):
                await provider.stream(user_request(), send)
        assert caught.value.code == "provider.unavailable"
        send.close()
        assert [e async for e in receive] == [TextDelta(text="Hello "), TextDelta(text="from ")]
        assert len(upstream.requests) == 1

    async def test_cut_before_a_token_is_retried(
        self, upstream: FakeUpstream, rng: random.Random
    ) -> None:
        upstream.push(Script(fault=Fault.CUT_MID_STREAM, fault_after=0))
        async with open_openai_provider(fast_config(upstream.url), rng=rng) as provider:
            events = await collect(provider, user_request())
        assert "".join(e.text for e in events if isinstance(e, TextDelta)) == Script().text
        assert len(upstream.requests) == 2

    async def test_refused_connection_is_unavailable(self, rng: random.Random) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        async with open_openai_provider(
            fast_config(f"http://127.0.0.1:{port}/v1"), rng=rng
        ) as provider:
            with pytest.raises(ProviderError) as caught:
                await collect(provider, user_request())
        assert caught.value.code == "provider.unavailable"
        assert "ConnectError" in caught.value.message


class TestBadResponses:
    """Streams that break the format end with provider.bad_response, not a crash or a hang."""

    async def test_malformed_chunk(self, upstream: FakeUpstream, rng: random.Random) -> None:
        upstream.default = Script(fault=Fault.MALFORMED_CHUNK, fault_after=1)
        error = await _fails(upstream, "provider.bad_response", rng)
        assert "not valid JSON" in error.message
        assert len(upstream.requests) == 1

    async def test_stream_ending_without_finish(
        self, upstream: FakeUpstream, rng: random.Random
    ) -> None:
        upstream.default = Script(fault=Fault.NO_DONE, fault_after=3)
        error = await _fails(upstream, "provider.bad_response", rng)
        assert "finish_reason" in error.message


class TestCancellation:
    """A cancel closes the upstream connection within 100 ms, before or after the first token."""

    async def _cancel_and_time_close(
        self, upstream: FakeUpstream, *, after_first_token: bool
    ) -> None:
        outcomes: list[tuple[Outcome, Usage]] = []
        send, receive = trio.open_memory_channel[ProviderEvent](64)
        async with open_openai_provider(
            fast_config(upstream.url, first_token_timeout=30, idle_timeout=30),
            usage_observer=lambda outcome, usage: outcomes.append((outcome, usage)),
        ) as provider:
            with trio.fail_after(10):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(provider.stream, user_request(), send)
                    if after_first_token:
                        assert isinstance(await receive.receive(), TextDelta)
                    else:
                        await upstream.wait_until(requests=1, open_connections=1)
                    cancelled_at = trio.current_time()
                    nursery.cancel_scope.cancel()
                await upstream.wait_until(open_connections=0)
            assert upstream.closed_at[-1] - cancelled_at < CLOSE_WITHIN
        assert [o for o, _ in outcomes] == ["cancelled"]
        assert outcomes[0][1].estimated is True
        assert outcomes[0][1].output_tokens == (2 if after_first_token else 0)

    async def test_cancel_before_first_token(self, upstream: FakeUpstream) -> None:
        upstream.default = Script(fault=Fault.HANG_BEFORE_RESPONSE)
        await self._cancel_and_time_close(upstream, after_first_token=False)

    async def test_cancel_mid_stream(self, upstream: FakeUpstream) -> None:
        upstream.default = Script(fault=Fault.HANG_MID_STREAM, fault_after=1)
        await self._cancel_and_time_close(upstream, after_first_token=True)


class FullListener:
    """A loopback listener that never accepts and whose backlog is already full."""

    def __enter__(self) -> str:
        self._server = socket.socket()
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(0)
        port = self._server.getsockname()[1]
        self._filler = socket.create_connection(("127.0.0.1", port), timeout=2)
        return f"http://127.0.0.1:{port}/v1"

    def __exit__(self, *exc: object) -> None:
        self._filler.close()
        self._server.close()
