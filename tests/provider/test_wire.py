"""Pure wire logic: request bodies, tool names, chunk assembly, estimates and retry timing."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.errors import ProviderError
from actors.provider import ChatMessage, CompletionRequest, ToolCallRequest
from actors.provider._openai_wire import (
    ChunkAssembler,
    ToolNames,
    build_request_body,
    estimate_tokens,
)
from actors.provider._retry import RetryConfig, backoff_delay, parse_retry_after

from .conftest import FS_READ


def _chunk(**delta: object) -> dict[str, object]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}


class TestRequestBody:
    """Requests are streamed with usage and carry the whole conversation."""

    def test_body(self) -> None:
        request = CompletionRequest(
            model="m",
            messages=(ChatMessage(role="system", content="be brief"),),
            tools=(FS_READ,),
            max_output_tokens=64,
        )
        body = build_request_body(request, ToolNames(("fs.read",)))
        assert body["stream"] is True
        assert body["stream_options"] == {"include_usage": True}
        assert body["max_tokens"] == 64
        assert body["messages"] == [{"role": "system", "content": "be brief"}]
        assert body["tools"][0]["function"]["name"] == "fs_read"


class TestToolNames:
    """Unsafe tool names map to safe ones and back, without collisions."""

    def test_collisions_get_suffixes(self) -> None:
        names = ToolNames(("fs.read", "fs_read", "fs:read"))
        wire = [names.to_wire(n) for n in ("fs.read", "fs_read", "fs:read")]
        assert len(set(wire)) == 3
        assert [names.from_wire(w) for w in wire] == ["fs.read", "fs_read", "fs:read"]

    @given(st.lists(st.text(min_size=1, max_size=80), max_size=8, unique=True))
    def test_round_trip(self, raw: list[str]) -> None:
        names = ToolNames(tuple(raw))
        wires = [names.to_wire(n) for n in raw]
        assert len(set(wires)) == len(raw)
        assert all(names.from_wire(w) == n for w, n in zip(wires, raw, strict=True))


class TestAssembler:
    """Chunks fold into text, tool calls, finish reason and usage; bad shapes are refused."""

    def test_fragments_by_index(self) -> None:
        names = ToolNames(("fs.read",))
        asm = ChunkAssembler(names)
        asm.feed(
            _chunk(
                tool_calls=[
                    {"index": 1, "id": "b", "function": {"name": "fs_read", "arguments": ""}}
                ]
            )
        )
        asm.feed(
            _chunk(
                tool_calls=[
                    {"index": 0, "id": "a", "function": {"name": "other", "arguments": "{"}}
                ]
            )
        )
        asm.feed(_chunk(tool_calls=[{"index": 1, "function": {"arguments": '{"x":'}}]))
        asm.feed(_chunk(tool_calls=[{"index": 0, "function": {"arguments": "}"}}]))
        asm.feed(_chunk(tool_calls=[{"index": 1, "function": {"arguments": "1}"}}]))
        assert asm.tool_calls() == (
            ToolCallRequest(call_id="a", name="other", arguments_json="{}"),
            ToolCallRequest(call_id="b", name="fs.read", arguments_json='{"x":1}'),
        )

    def test_usage_chunk_with_empty_choices(self) -> None:
        asm = ChunkAssembler(ToolNames(()))
        assert (
            asm.feed({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}}) == ""
        )
        assert asm.usage == (3, 4)

    @pytest.mark.parametrize(
        "chunk",
        [
            [],
            {"choices": "x"},
            {"choices": [{"index": 0, "delta": {"content": 5}}]},
            {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": -1}]}}]},
            {"choices": [], "usage": {"prompt_tokens": "3", "completion_tokens": 1}},
        ],
    )
    def test_bad_shapes(self, chunk: object) -> None:
        with pytest.raises(ProviderError) as caught:
            ChunkAssembler(ToolNames(())).feed(chunk)
        assert caught.value.code == "provider.bad_response"

    def test_error_object_in_stream(self) -> None:
        with pytest.raises(ProviderError) as caught:
            ChunkAssembler(ToolNames(())).feed({"error": {"message": "overloaded"}})
        assert caught.value.code == "provider.unavailable"

    def test_nameless_call_is_bad(self) -> None:
        asm = ChunkAssembler(ToolNames(()))
        asm.feed(_chunk(tool_calls=[{"index": 0, "function": {"arguments": "{}"}}]))
        with pytest.raises(ProviderError, match="no function name"):
            asm.tool_calls()


class TestEstimates:
    """The token estimator is ceil(chars / 4) plus 4 per message."""

    def test_estimator(self) -> None:
        assert estimate_tokens(0) == 0
        assert estimate_tokens(9) == 3
        assert estimate_tokens(8, messages=2) == 10


class TestRetryTiming:
    """Backoff grows, is capped and jittered; Retry-After parses both forms."""

    def test_backoff_bounds(self) -> None:
        config = RetryConfig(base_delay=0.1, max_delay=0.5)
        rng = random.Random(7)
        for n, ceiling in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.5), (10, 0.5)]:
            delays = [backoff_delay(config, n, rng) for _ in range(200)]
            assert all(0 <= d <= ceiling for d in delays)
            assert max(delays) > ceiling * 0.8

    def test_retry_after(self) -> None:
        now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
        assert parse_retry_after("2") == 2.0
        assert parse_retry_after("0.5") == 0.5
        assert parse_retry_after("Wed, 01 Jan 2025 12:00:30 GMT", now=now) == 30.0
        assert parse_retry_after("Wed, 01 Jan 2025 11:00:00 GMT", now=now) == 0.0
        assert parse_retry_after("soon") is None
        assert parse_retry_after("-1") is None
        assert parse_retry_after(None) is None
