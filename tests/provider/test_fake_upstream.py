"""The fake upstream speaks OpenAI's streaming format over a real socket, and misbehaves on cue."""

from __future__ import annotations

import json
from typing import Any

import httpx
import trio

from actors.provider.fake_upstream import (
    FakeUpstream,
    Fault,
    Script,
    ScriptedToolCall,
    open_fake_upstream,
)

BODY: dict[str, Any] = {
    "model": "fake-model",
    "stream": True,
    "stream_options": {"include_usage": True},
    "messages": [{"role": "user", "content": "hi"}],
    "tools": [{"type": "function", "function": {"name": "fs_read", "parameters": {}}}],
}


async def _raw(upstream: FakeUpstream, body: dict[str, object] = BODY) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        with trio.fail_after(10):
            return await client.post(upstream.url + "/chat/completions", json=body)


def _data_lines(response: httpx.Response) -> list[str]:
    assert response.text.endswith("\n\n")
    return [block.removeprefix("data: ") for block in response.text.split("\n\n") if block]


class TestStreamFormat:
    """The bytes on the wire follow OpenAI's chat.completion.chunk stream."""

    async def test_text_stream_with_usage_and_done(self, upstream: FakeUpstream) -> None:
        response = await _raw(upstream)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = _data_lines(response)
        assert lines[-1] == "[DONE]"
        chunks = [json.loads(line) for line in lines[:-1]]
        assert all(c["object"] == "chat.completion.chunk" for c in chunks)
        assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
        text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[:-1])
        assert text == Script().text
        assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
        assert chunks[-1]["choices"] == []
        assert set(chunks[-1]["usage"]) == {"prompt_tokens", "completion_tokens", "total_tokens"}
        assert all(c["usage"] is None for c in chunks[:-1])

    async def test_no_usage_chunk_unless_asked(self, upstream: FakeUpstream) -> None:
        response = await _raw(upstream, {**BODY, "stream_options": None})
        chunks = [json.loads(line) for line in _data_lines(response)[:-1]]
        assert all("usage" not in c for c in chunks)
        assert chunks[-1]["choices"][0]["finish_reason"] == "stop"

    async def test_tool_call_split_across_chunks(self, upstream: FakeUpstream) -> None:
        call = ScriptedToolCall(arguments='{"path": "a/b.txt"}', fragments=3)
        upstream.default = Script(text="", tool_call=call)
        chunks = [json.loads(line) for line in _data_lines(await _raw(upstream))[:-1]]
        fragments = [
            c["choices"][0]["delta"]["tool_calls"][0]
            for c in chunks
            if c["choices"] and "tool_calls" in c["choices"][0]["delta"]
        ]
        assert len(fragments) == 3
        assert fragments[0]["id"] == call.call_id
        assert fragments[0]["type"] == "function"
        assert fragments[0]["function"]["name"] == "fs_read"
        assert all("id" not in f and "name" not in f["function"] for f in fragments[1:])
        assert "".join(f["function"]["arguments"] for f in fragments) == call.arguments
        assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"

    async def test_answers_a_tool_result_with_its_content(self, upstream: FakeUpstream) -> None:
        upstream.default = Script(tool_call=ScriptedToolCall())
        messages = [
            *BODY["messages"],
            {"role": "assistant", "content": None, "tool_calls": []},
            {"role": "tool", "tool_call_id": "call_0001", "content": "file text"},
        ]
        chunks = [
            json.loads(x)
            for x in _data_lines(await _raw(upstream, {**BODY, "messages": messages}))[:-1]
        ]
        text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
        assert text == "The tool said: file text"


class TestScripts:
    """Scripts are chosen per request, and faults happen on the wire."""

    async def test_push_then_model_then_default(self, upstream: FakeUpstream) -> None:
        upstream.by_model["special"] = Script(status=503)
        upstream.push(Script(status=500))
        assert (await _raw(upstream)).status_code == 500
        assert (await _raw(upstream, {**BODY, "model": "special"})).status_code == 503
        assert (await _raw(upstream)).status_code == 200
        assert [r.body["model"] for r in upstream.requests] == [
            "fake-model",
            "special",
            "fake-model",
        ]
        assert upstream.requests[0].path == "/v1/chat/completions"

    async def test_429_carries_retry_after(self, upstream: FakeUpstream) -> None:
        upstream.push(Script(status=429, retry_after="3"))
        response = await _raw(upstream)
        assert response.status_code == 429
        assert response.headers["retry-after"] == "3"
        assert "error" in response.json()

    async def test_cut_mid_stream_breaks_the_body(self, upstream: FakeUpstream) -> None:
        upstream.push(Script(fault=Fault.CUT_MID_STREAM, fault_after=2))
        async with httpx.AsyncClient() as client:
            with trio.fail_after(10):
                try:
                    await client.post(upstream.url + "/chat/completions", json=BODY)
                except httpx.RemoteProtocolError:
                    pass
                else:
                    raise AssertionError("a cut body must not read as complete")

    async def test_counts_connections(self, upstream: FakeUpstream) -> None:
        upstream.push(Script(fault=Fault.HANG_BEFORE_RESPONSE))
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_raw, upstream)
                await upstream.wait_until(requests=1, open_connections=1)
                nursery.cancel_scope.cancel()
            await upstream.wait_until(open_connections=0)
        assert upstream.total_connections == 1

    async def test_remembers_only_the_latest_requests(self) -> None:
        """A long benchmark run must not grow the fake without bound."""
        async with open_fake_upstream(keep=2) as upstream:
            for model in ("a", "b", "c"):
                await _raw(upstream, {**BODY, "model": model})
            with trio.fail_after(10):
                await upstream.wait_until(requests=3, open_connections=0)
        assert upstream.request_count == 3
        assert [r.body["model"] for r in upstream.requests] == ["b", "c"]
        assert len(upstream.closed_at) == 2
