"""The adapter streams text and tool calls from the fake upstream and reports usage."""

from __future__ import annotations

import json
import random
from pathlib import Path

import trio

from actors.provider import (
    ChatMessage,
    CompletionRequest,
    Finished,
    ProviderEvent,
    TextDelta,
    ToolCallRequested,
    Usage,
)
from actors.provider._openai import open_openai_provider
from actors.provider._openai_wire import ModelPrice, estimate_tokens, request_chars
from actors.provider.fake_upstream import FakeUpstream, Fault, Script, ScriptedToolCall

from .conftest import FS_READ, collect, fast_config, user_request


class TestText:
    """Text arrives as deltas, in order, and ends with one Finished."""

    async def test_streams_text_and_upstream_usage(self, upstream: FakeUpstream) -> None:
        async with open_openai_provider(fast_config(upstream.url)) as provider:
            events = await collect(provider, user_request())
        *deltas, finished = events
        assert all(isinstance(d, TextDelta) for d in deltas)
        assert "".join(d.text for d in deltas if isinstance(d, TextDelta)) == Script().text
        assert len(deltas) == 5
        assert isinstance(finished, Finished)
        assert finished.finish_reason == "stop"
        assert finished.usage.estimated is False
        assert finished.usage.output_tokens == 5
        body = upstream.requests[0].body
        assert body["stream"] is True
        assert body["stream_options"] == {"include_usage": True}
        assert upstream.requests[0].path == "/v1/chat/completions"

    async def test_first_delta_is_forwarded_before_the_stream_goes_on(
        self, upstream: FakeUpstream
    ) -> None:
        # The upstream sends one piece and then nothing: only an unbuffered adapter delivers it.
        upstream.default = Script(fault=Fault.HANG_MID_STREAM, fault_after=1)
        send, receive = trio.open_memory_channel[ProviderEvent](8)
        async with open_openai_provider(fast_config(upstream.url)) as provider:
            with trio.fail_after(5):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(provider.stream, user_request(), send)
                    first = await receive.receive()
                    nursery.cancel_scope.cancel()
        assert first == TextDelta(text="Hello ")

    async def test_estimates_usage_when_upstream_sends_none(self, upstream: FakeUpstream) -> None:
        upstream.default = Script(send_usage=False)
        request = user_request("a question of some length")
        async with open_openai_provider(fast_config(upstream.url)) as provider:
            events = await collect(provider, request)
        finished = events[-1]
        assert isinstance(finished, Finished)
        assert finished.usage == Usage(
            input_tokens=estimate_tokens(request_chars(request), 1),
            output_tokens=estimate_tokens(len(Script().text)),
            estimated=True,
        )

    async def test_prices_give_cost(self, upstream: FakeUpstream) -> None:
        prices = {"fake-model": ModelPrice(input_usd_per_mtok=2.0, output_usd_per_mtok=10.0)}
        async with open_openai_provider(fast_config(upstream.url, prices=prices)) as provider:
            events = await collect(provider, user_request())
        usage = events[-1].usage  # type: ignore[union-attr]
        expected = (usage.input_tokens * 2.0 + usage.output_tokens * 10.0) / 1e6
        assert usage.cost_usd == expected
        assert usage.cost_usd > 0

    async def test_pool_is_closed_with_the_provider(self, upstream: FakeUpstream) -> None:
        async with open_openai_provider(fast_config(upstream.url)) as provider:
            await collect(provider, user_request())
            await collect(provider, user_request())
            # Both calls reused one kept-alive connection.
            assert upstream.total_connections == 1
        with trio.fail_after(2):
            await upstream.wait_until(open_connections=0)


class TestToolCalls:
    """Tool-call fragments become one call; its result goes back as a tool message."""

    async def test_fragments_are_assembled(self, upstream: FakeUpstream) -> None:
        call = ScriptedToolCall(call_id="call_xyz", arguments='{"path": "docs/a.md"}', fragments=5)
        upstream.default = Script(text="Let me look.", tool_call=call)
        async with open_openai_provider(fast_config(upstream.url)) as provider:
            events = await collect(provider, user_request(tools=True))
        requested = [e for e in events if isinstance(e, ToolCallRequested)]
        assert len(requested) == 1
        assert requested[0].call.call_id == "call_xyz"
        # The upstream saw "fs_read" (dots are not allowed there); the call comes back as fs.read.
        assert requested[0].call.name == "fs.read"
        assert json.loads(requested[0].call.arguments_json) == {"path": "docs/a.md"}
        assert upstream.requests[0].body["tools"][0]["function"]["name"] == "fs_read"
        assert isinstance(events[-1], Finished)
        assert events[-1].finish_reason == "tool_calls"

    async def test_full_turn_with_tool_result(self, upstream: FakeUpstream, tmp_path: Path) -> None:
        (tmp_path / "todo.txt").write_text("buy milk", encoding="utf-8")
        upstream.default = Script(
            text="", tool_call=ScriptedToolCall(arguments='{"path": "todo.txt"}')
        )
        question = ChatMessage(role="user", content="What is on my list?")
        async with open_openai_provider(fast_config(upstream.url)) as provider:
            first = await collect(
                provider, CompletionRequest(model="m", messages=(question,), tools=(FS_READ,))
            )
            call = next(e.call for e in first if isinstance(e, ToolCallRequested))
            # The tool step: read the file the model asked for.
            result = (tmp_path / json.loads(call.arguments_json)["path"]).read_text(
                encoding="utf-8"
            )
            history = (
                question,
                ChatMessage(role="assistant", content=None, tool_calls=(call,)),
                ChatMessage(role="tool", content=result, tool_call_id=call.call_id),
            )
            second = await collect(
                provider, CompletionRequest(model="m", messages=history, tools=(FS_READ,))
            )
        answer = "".join(e.text for e in second if isinstance(e, TextDelta))
        assert answer == "The tool said: buy milk"
        assert isinstance(second[-1], Finished)
        assert second[-1].finish_reason == "stop"
        sent = upstream.requests[1].body["messages"]
        assert sent[1] == {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call.call_id,
                    "type": "function",
                    "function": {"name": "fs_read", "arguments": call.arguments_json},
                }
            ],
        }
        assert sent[2] == {"role": "tool", "tool_call_id": call.call_id, "content": "buy milk"}


class TestNoCookies:
    """Cookies the upstream sets are not kept: one client carries every tenant's requests."""

    async def test_a_set_cookie_is_not_sent_back(self, upstream: FakeUpstream) -> None:
        upstream.default = Script(extra_headers=(("set-cookie", "tenant=a; Path=/"),))
        async with open_openai_provider(fast_config(upstream.url)) as provider:
            await collect(provider, user_request("first, as tenant a"))
            await collect(provider, user_request("second, as tenant b"))
        assert len(upstream.requests) == 2
        assert "cookie" not in upstream.requests[1].headers


class TestConcurrency:
    """Many streams share one provider without mixing their events."""

    async def test_parallel_streams(self, upstream: FakeUpstream) -> None:
        upstream.default = Script(token_interval=0.001)
        results: dict[int, str] = {}
        async with open_openai_provider(
            fast_config(upstream.url), rng=random.Random(0)
        ) as provider:

            async def one(i: int) -> None:
                events = await collect(provider, user_request(f"q{i}"))
                results[i] = "".join(e.text for e in events if isinstance(e, TextDelta))

            async with trio.open_nursery() as nursery:
                for i in range(20):
                    nursery.start_soon(one, i)
        assert results == {i: Script().text for i in range(20)}
