"""Full host turns over real gRPC with the OpenAI-compatible stack and the fake upstream."""

from __future__ import annotations

import logging
from pathlib import Path

import attrs
import pytest
import trio

from actors.provider import BreakerState
from actors.provider.fake_upstream import Fault, Script
from contracts.generated import agent_pb2
from tests.host.conftest import Conversation, cancel, in_thread, kind, say, turn_done

from .conftest import FAKE_MODEL, ProviderHost, open_provider_host, provider_section

# The bound on closing the upstream stream after a client cancel.
CANCEL_CLOSE_S = 0.1
STEP_S = 20.0
SECRET = "sk-test-0123456789abcdef-secret"


async def _open(host: ProviderHost) -> Conversation:
    conv: Conversation = await in_thread(Conversation, host.channel())
    # The model is named by the session: the host's default_model is the lead's config.
    conv.send(
        agent_pb2.ChatRequest(
            start_session=agent_pb2.StartSession(tenant="acme", user="u1", model=FAKE_MODEL)
        )
    )
    first = await in_thread(conv.next_event)
    assert kind(first) == "session_started"
    return conv


def _text(events: list[agent_pb2.ChatEvent]) -> str:
    return "".join(e.assistant_delta.text for e in events if kind(e) == "assistant_delta")


class TestTextTurn:
    """The model streams text: deltas, finish reason and the upstream's usage reach the client."""

    async def test_text_turn(self, tmp_path: Path) -> None:
        script = Script(text="Streaming from an OpenAI-compatible upstream.", token_interval=0.001)
        async with open_provider_host(tmp_path, default=script) as host:
            conv = await _open(host)
            conv.send(say("hello there"))
            events = await in_thread(conv.until, turn_done)
            assert _text(events) == script.text
            done = events[-1]
            assert kind(done) == "assistant_done"
            assert done.assistant_done.finish_reason == "stop"
            # The fake's usage chunk: one completion token per streamed piece.
            assert done.assistant_done.usage.output_tokens == len(script.text.split())
            assert done.assistant_done.usage.input_tokens >= 1
            assert not done.assistant_done.usage.estimated
            body = host.upstream.requests[0].body
            assert body["stream"] is True
            assert body["stream_options"] == {"include_usage": True}
            assert body["model"] == FAKE_MODEL
            conv.close()
            await in_thread(conv.rest)

    async def test_missing_usage_is_estimated(self, tmp_path: Path) -> None:
        async with open_provider_host(tmp_path, default=Script(send_usage=False)) as host:
            conv = await _open(host)
            conv.send(say("hello"))
            done = (await in_thread(conv.until, turn_done))[-1]
            assert kind(done) == "assistant_done"
            assert done.assistant_done.usage.estimated
            assert done.assistant_done.usage.output_tokens > 0
            conv.close()
            await in_thread(conv.rest)


class TestCancellation:
    """A client cancel closes the upstream HTTP stream within 100 ms, before or after tokens."""

    async def _wait_closed(self, host: ProviderHost, since: float) -> float:
        with trio.fail_after(STEP_S):
            await host.upstream.wait_until(open_connections=0, requests=1)
        return host.upstream.closed_at[-1] - since

    @pytest.mark.parametrize("first_token", [False, True], ids=["before_first", "after_first"])
    async def test_grpc_cancel_closes_upstream(self, tmp_path: Path, first_token: bool) -> None:
        # A long answer, or a first token that never comes in time: either way the stream is open.
        script = Script(
            first_token_delay=0.0 if first_token else 30.0, token_interval=0.2, text="a " * 200
        )
        async with open_provider_host(tmp_path, default=script) as host:
            conv = await _open(host)
            conv.send(say("go"))
            if first_token:
                event = await in_thread(conv.next_event)
                assert kind(event) == "assistant_delta"
            else:
                with trio.fail_after(STEP_S):
                    await host.upstream.wait_until(requests=1, open_connections=1)
            since = trio.current_time()
            conv.call.cancel()
            assert await self._wait_closed(host, since) < CANCEL_CLOSE_S
            with trio.fail_after(STEP_S):
                while await host.session_count():
                    await trio.sleep(0.01)
            (totals,) = host.stack.ledger.totals()
            assert totals.cancelled == 1
            if first_token:
                # Usage already spent is recorded, marked as estimated (no usage chunk came).
                assert totals.output_tokens >= 1
                assert totals.estimated_calls == 1

    async def test_cancel_turn_closes_upstream(self, tmp_path: Path) -> None:
        script = Script(token_interval=0.2, text="b " * 200)
        async with open_provider_host(tmp_path, default=script) as host:
            conv = await _open(host)
            conv.send(say("go"))
            assert kind(await in_thread(conv.next_event)) == "assistant_delta"
            since = trio.current_time()
            conv.send(cancel())
            assert await self._wait_closed(host, since) < CANCEL_CLOSE_S
            done = (await in_thread(conv.until, turn_done))[-1]
            assert done.assistant_done.finish_reason == "cancelled"
            assert done.assistant_done.usage.output_tokens >= 1
            conv.close()
            await in_thread(conv.rest)


class TestUpstreamHang:
    """A hung upstream: first-token timeout, a typed error on the stream, nothing left open."""

    async def test_first_token_timeout(self, tmp_path: Path) -> None:
        # No kept-alive connections: "nothing left open" then means every connection closed.
        async with open_fake_upstream_host(
            tmp_path, first_token_timeout_s=0.5, max_keepalive_connections=0
        ) as host:
            host.upstream.default = Script(fault=Fault.HANG_BEFORE_RESPONSE)
            conv = await _open(host)
            conv.send(say("anyone there?"))
            events = await in_thread(conv.until, turn_done)
            error = events[-1]
            assert kind(error) == "error"
            assert error.error.code == "provider.timeout"
            assert error.error.retryable
            with trio.fail_after(STEP_S):
                await host.upstream.wait_until(open_connections=0, requests=1)
            # The session is still usable, and its next turn works.
            host.upstream.default = Script(text="back again")
            conv.send(say("and now?"))
            assert _text(await in_thread(conv.until, turn_done)) == "back again"
            conv.close()
            await in_thread(conv.rest)
            with trio.fail_after(STEP_S):
                while await host.session_count():
                    await trio.sleep(0.01)
                await host.upstream.wait_until(open_connections=0)


def open_fake_upstream_host(tmp_path: Path, **upstream: object):  # type: ignore[no-untyped-def]
    """A host whose primary upstream has these settings (the URL is filled in)."""
    from .conftest import upstream_section

    section = provider_section("", openai=upstream_section("", **upstream))
    return open_provider_host(tmp_path, section)


class TestStorm:
    """A 5xx storm: the breaker opens, the mock answers, the breaker half-opens and recovers."""

    async def test_storm_fallback_and_recovery(self, tmp_path: Path) -> None:
        from supervisors.host._provider import BreakerSection

        section = provider_section(
            "",
            fallback=["mock"],
            breaker=BreakerSection(min_calls=3, failure_rate_threshold=0.5, cool_down_s=0.5),
        )
        async with open_provider_host(tmp_path, section, default=Script(status=503)) as host:
            conv = await _open(host)

            async def turn(text: str) -> str:
                conv.send(say(text))
                events = await in_thread(conv.until, turn_done)
                assert kind(events[-1]) == "assistant_done", events[-1]
                return _text(events)

            def state() -> BreakerState:
                return host.stack.status().breakers[0].state

            for n in range(3):
                assert (await turn(f"storm {n}")).startswith('You said: "storm')
            assert state() is BreakerState.OPEN
            assert len(host.upstream.requests) == 3
            # Open: the primary is not even asked.
            assert (await turn("while open")).startswith('You said: "while')
            assert len(host.upstream.requests) == 3
            host.upstream.default = Script(text="the upstream is back")
            await trio.sleep(0.5)
            assert state() is BreakerState.HALF_OPEN
            assert await turn("probe") == "the upstream is back"
            assert state() is BreakerState.CLOSED
            assert len(host.upstream.requests) == 4
            conv.close()
            await in_thread(conv.rest)


class TestSecrets:
    """The API key is sent upstream and appears nowhere else: errors, logs, debug endpoint."""

    async def test_key_never_leaks(self, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.DEBUG)
        section = provider_section("")
        section = attrs.evolve(
            section, openai=attrs.evolve(section.openai, api_key_env="ZL_TEST_KEY")
        )
        refusal = Script(status=401, error_message=f"invalid key {SECRET}")
        async with open_provider_host(
            tmp_path, section, default=refusal, environ={"ZL_TEST_KEY": SECRET}
        ) as host:
            conv = await _open(host)
            conv.send(say("hello"))
            error = (await in_thread(conv.until, turn_done))[-1]
            assert kind(error) == "error"
            assert error.error.code == "provider.unavailable"
            assert "401" in error.error.message
            assert SECRET not in error.error.message
            assert host.upstream.requests[0].headers["authorization"] == f"Bearer {SECRET}"
            assert SECRET not in await host.debug_text()
            assert SECRET not in repr(host.stack.status())
            conv.close()
            await in_thread(conv.rest)
        assert SECRET not in caplog.text
