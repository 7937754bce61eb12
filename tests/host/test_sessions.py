"""Sessions through the real gRPC edge: cancel, disconnect, back-pressure, guardrails, caps."""

from __future__ import annotations

import struct
import time
from pathlib import Path
from typing import Any

import attrs
import trio
import trio.testing

from actors.provider import CompletionRequest, ProviderEventSink, ScriptedMockProvider
from contracts.generated import agent_pb2
from supervisors.host import MockSection, ProviderSection, SessionsSection, run_host
from tests._policy import bearer, caller_token
from tests.grpc_edge.edge_helpers import RawH2Client

from .conftest import (
    STEP_S,
    Conversation,
    RunningHost,
    cancel,
    host_config,
    in_thread,
    kind,
    say,
    start_host,
    start_request,
    turn_done,
)


@attrs.define
class WatchedProvider:
    """The real mock, plus the time its stream was cancelled (to time how far a cancel reaches)."""

    inner: ScriptedMockProvider
    cancelled_at: list[float] = attrs.Factory(list)
    name: str = "mock"

    async def stream(self, request: CompletionRequest, events: ProviderEventSink) -> None:
        try:
            await self.inner.stream(request, events)
        except trio.Cancelled:
            self.cancelled_at.append(time.monotonic())
            raise


async def wait_for_sessions(host: RunningHost, count: int) -> None:
    with trio.fail_after(STEP_S):
        while await host.session_count() != count:
            await trio.sleep(0.01)


def slow_mock(**overrides: Any) -> ProviderSection:
    settings = {"first_token_delay_ms": 5, "tokens_per_s": 20, "answer_tokens": 1000}
    settings.update(overrides)
    return ProviderSection(mock=MockSection(**settings))


class TestCancel:
    """cancel_turn ends the running turn promptly with assistant.done(cancelled)."""

    async def test_cancel_mid_answer(self, tmp_path: Path) -> None:
        async with trio.open_nursery() as nursery:
            host = await start_host(nursery, host_config(tmp_path, tls=False, provider=slow_mock()))
            with host.channel() as channel:
                talk = Conversation(channel)
                talk.send(start_request())
                await in_thread(talk.next_event)
                talk.send(say("tell me everything"))
                await in_thread(lambda: talk.until(lambda e: kind(e) == "assistant_delta"))
                talk.send(cancel())
                events = await in_thread(lambda: talk.until(turn_done))
                done = events[-1]
                assert kind(done) == "assistant_done"
                assert done.assistant_done.finish_reason == "cancelled"
                assert done.assistant_done.usage.output_tokens >= 1
                # The session goes on: a next turn works.
                talk.send(say("again"))
                await in_thread(lambda: talk.until(lambda e: kind(e) == "assistant_delta"))
                talk.send(cancel())
                talk.close()
                await in_thread(talk.rest)
            assert kind(talk.events[-1]) == "assistant_done"
            await wait_for_sessions(host, 0)
            host.shutdown.set()


class TestDisconnect:
    """A client that goes away stops its session, down to the provider's stream."""

    async def test_disconnect_cancels_the_provider_within_100ms(self, tmp_path: Path) -> None:
        config = host_config(tmp_path, tls=False, provider=slow_mock())
        provider = WatchedProvider(ScriptedMockProvider(config.provider.mock.to_provider_config()))
        shutdown = trio.Event()
        async with trio.open_nursery() as nursery:
            addresses = await nursery.start(
                lambda task_status: run_host(
                    config, shutdown=shutdown, provider=provider, task_status=task_status
                )
            )
            host = RunningHost(
                addresses=addresses, provider=provider.inner, config=config, shutdown=shutdown
            )
            with host.channel() as channel:
                talk = Conversation(channel)
                talk.send(start_request())
                await in_thread(talk.next_event)
                talk.send(say("stream for a long time"))
                await in_thread(lambda: talk.until(lambda e: kind(e) == "assistant_delta"))
                assert await host.session_count() == 1
                cancelled_by_client = time.monotonic()
                talk.call.cancel()
                with trio.fail_after(STEP_S):
                    while not provider.cancelled_at:
                        await trio.sleep(0.001)
            reach = provider.cancelled_at[0] - cancelled_by_client
            assert reach < 0.100, f"the provider stream was cancelled {reach * 1000:.0f} ms later"
            await wait_for_sessions(host, 0)
            shutdown.set()

    async def test_dropped_connection_stops_the_session(self, plaintext_host: RunningHost) -> None:
        async with await RawH2Client.connect(plaintext_host.addresses.grpc_port) as client:
            stream_id = await client.open_call(metadata=bearer(caller_token()))
            payload = start_request().SerializeToString()
            await client.send_message(stream_id, payload)
            await client.send_message(stream_id, say("hello").SerializeToString())
            await wait_for_sessions(plaintext_host, 1)
        await wait_for_sessions(plaintext_host, 0)


class TestBackPressure:
    """A client that does not read stops the model: nothing piles up in the host."""

    async def test_slow_reader_pauses_the_provider(self, tmp_path: Path) -> None:
        fast = slow_mock(tokens_per_s=20_000, answer_tokens=200_000)
        async with trio.open_nursery() as nursery:
            host = await start_host(nursery, host_config(tmp_path, tls=False, provider=fast))
            async with await RawH2Client.connect(host.addresses.grpc_port) as client:
                stream_id = await client.open_call(metadata=bearer(caller_token()))
                await client.send_message(stream_id, start_request().SerializeToString())
                await client.send_message(stream_id, say("go").SerializeToString())
                # Never read: the client's HTTP/2 window (64 KiB) fills, then the edge's send
                # waits, the outbox fills, the turn waits, the provider waits.
                stalled_at = -1
                with trio.fail_after(STEP_S):
                    while host.provider.tokens_streamed != stalled_at:
                        stalled_at = host.provider.tokens_streamed
                        await trio.sleep(0.3)
                await trio.sleep(1.0)
                assert host.provider.tokens_streamed == stalled_at, "the provider kept going"
                # 64 KiB of ~30-byte events, the outbox and a few channels: a few thousand at most.
                assert stalled_at < 5_000
                # Reading again lets it continue.
                for _ in range(20):
                    await client.pump()
                with trio.fail_after(STEP_S):
                    while host.provider.tokens_streamed == stalled_at:
                        await client.pump()
            host.shutdown.set()

    async def test_deltas_that_queue_up_are_merged(self, tmp_path: Path) -> None:
        fast = slow_mock(tokens_per_s=20_000, answer_tokens=3_000)
        async with trio.open_nursery() as nursery:
            host = await start_host(nursery, host_config(tmp_path, tls=False, provider=fast))
            # A small window that the client does not open while it sleeps: the host's direct
            # way must refuse after a few deltas, so the rest queue up behind it (however
            # fast the host's writer is).
            async with await RawH2Client.connect(
                host.addresses.grpc_port, initial_window=2048
            ) as client:
                stream_id = await client.open_call(metadata=bearer(caller_token()))
                await client.send_message(stream_id, start_request().SerializeToString())
                await client.send_message(stream_id, say("go").SerializeToString(), end=True)
                # Not reading until the model has streamed all it can (a fixed sleep is not
                # enough on a busy machine: the turn may not have begun).
                streamed = -1
                with trio.fail_after(STEP_S):
                    while streamed <= 0 or host.provider.tokens_streamed != streamed:
                        streamed = host.provider.tokens_streamed
                        await trio.sleep(0.3)
                await client.wait_trailers(stream_id)
            events = decode_events(client.data[stream_id])
            deltas = [e for e in events if kind(e) == "assistant_delta"]
            done = [e for e in events if kind(e) == "assistant_done"]
            assert done[0].assistant_done.usage.output_tokens == 3_000
            assert len(deltas) < 3_000, "waiting deltas were merged into fewer events"
            text = "".join(d.assistant_delta.text for d in deltas)
            assert len(text.split()) == 3_000
            assert [e.seq for e in events] == list(range(1, len(events) + 1))
            host.shutdown.set()


def decode_events(data: bytes) -> list[agent_pb2.ChatEvent]:
    events = []
    while data:
        _, length = struct.unpack(">BI", data[:5])
        events.append(agent_pb2.ChatEvent.FromString(data[5 : 5 + length]))
        data = data[5 + length :]
    return events


class TestGuardrails:
    """Wall-clock limit per turn; the session cap; many sessions at once."""

    async def test_turn_timeout(self, tmp_path: Path) -> None:
        async with trio.open_nursery() as nursery:
            host = await start_host(nursery, host_config(tmp_path, tls=False, provider=slow_mock()))
            with host.channel() as channel:
                talk = Conversation(channel)
                talk.send(start_request(max_turn_ms=200))
                started = await in_thread(talk.next_event)
                assert started.session_started.limits.max_turn_ms == 200
                talk.send(say("this takes 50 seconds"))
                events = await in_thread(lambda: talk.until(turn_done))
                assert kind(events[-1]) == "error"
                assert events[-1].error.code == "turn.timeout"
                assert events[-1].error.retryable
                assert events[-1].turn_id == "t1"
                talk.close()
                await in_thread(talk.rest)
            host.shutdown.set()

    async def test_session_cap_answers_overloaded(self, tmp_path: Path) -> None:
        config = host_config(
            tmp_path, tls=False, provider=slow_mock(), sessions=SessionsSection(max_sessions=1)
        )
        async with trio.open_nursery() as nursery:
            host = await start_host(nursery, config)
            with host.channel() as channel:
                first = Conversation(channel)
                first.send(start_request())
                await in_thread(first.next_event)
                second = Conversation(channel)
                second.send(start_request())
                refused = await in_thread(second.rest)
                assert [kind(e) for e in refused] == ["error"]
                assert refused[0].error.code == "overloaded"
                assert refused[0].error.retryable
                first.close()
                await in_thread(first.rest)
            host.shutdown.set()

    async def test_fifty_sessions_at_once(self, plaintext_host: RunningHost) -> None:
        results: list[list[str]] = []

        def one_conversation(channel: Any) -> None:
            talk = Conversation(channel)
            talk.send(start_request())
            talk.send(say("hi"))
            talk.until(turn_done)
            talk.close()
            talk.rest()
            results.append([kind(e) for e in talk.events])

        with plaintext_host.channel() as channel:
            async with trio.open_nursery() as nursery:
                for _ in range(50):
                    nursery.start_soon(in_thread, one_conversation, channel)
        assert len(results) == 50
        for kinds in results:
            assert kinds[0] == "session_started"
            assert kinds[-1] == "assistant_done"
        await wait_for_sessions(plaintext_host, 0)
