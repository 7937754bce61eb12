"""What the fuzzers found, kept as plain tests (each failed before its fix)."""

from __future__ import annotations

import pytest

from actors.audit import verify_lines
from actors.audit._cli import _render
from actors.errors import ProviderError
from actors.mcp import JsonRpcError, parse_message
from actors.provider._openai_wire import ChunkAssembler, ToolNames, parse_chunk
from actors.relay import BadFrame, decode_frame

DEEP = b"[" * 5000 + b"]" * 5000


def assembler() -> ChunkAssembler:
    return ChunkAssembler(ToolNames(("fs.read",)))


class TestSseChunks:
    """A lone surrogate the client could never be sent is refused as a bad response."""

    @pytest.mark.parametrize(
        "chunk",
        [
            pytest.param('{"choices":[{"delta":{"content":"\\ud800"}}]}', id="content"),
            pytest.param(
                '{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"name":"f\\udfff"}}]}}]}',
                id="tool-name",
            ),
            pytest.param(
                '{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"\\ud800",'
                '"function":{"name":"fs_read"}}]}}]}',
                id="tool-call-id",
            ),
        ],
    )
    def test_lone_surrogate(self, chunk: str) -> None:
        with pytest.raises(ProviderError) as caught:
            assembler().feed(parse_chunk(chunk))
        assert caught.value.code == "provider.bad_response"

    def test_deep_chunk(self) -> None:
        with pytest.raises(ProviderError):
            parse_chunk(DEEP.decode())

    @pytest.mark.parametrize(
        "chunk",
        [
            pytest.param(b'{"choices":[{"delta":{"content":"\\ud800"}}]}', id="lone-surrogate"),
            pytest.param(b'{"choices":[{"delta":{"content":"a"}}],"x":NaN}', id="nan"),
            pytest.param(b'{"choices":[{"delta":{"content":"a"}}],"x":-Infinity}', id="inf"),
            pytest.param(b'{"choices":[{"delta":{"content":"a"}}],"x":1e999}', id="overflow"),
            pytest.param(b'{"choices":[{"delta":{"content":"\xff"}}]}', id="not-utf8"),
            pytest.param(DEEP, id="deep"),
        ],
    )
    def test_bytes_as_the_stream_delivers_them(self, chunk: bytes) -> None:
        with pytest.raises(ProviderError) as caught:
            assembler().feed(parse_chunk(chunk))
        assert caught.value.code == "provider.bad_response"

    def test_arguments_are_left_to_the_tool_path(self) -> None:
        # A lone surrogate in a tool call's arguments is the tool path's to refuse (its strict
        # reader, with a receipt): the chunk itself is read, by the slower reader.
        chunk = (
            b'{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"c1","function":'
            b'{"name":"fs_read","arguments":"{\\"path\\": \\"a\\ud800\\"}"}}]}}]}'
        )
        names = ChunkAssembler(ToolNames(("fs.read",)))
        names.feed(parse_chunk(chunk))
        [call] = names.tool_calls()
        assert call.arguments_json == '{"path": "a\ud800"}'

    def test_a_pair_is_fine(self) -> None:
        assert (
            assembler().feed(parse_chunk('{"choices":[{"delta":{"content":"\\ud83d\\ude00"}}]}'))
            == "😀"
        )


class TestAuditReader:
    """A line nested deep enough to overflow the parser is a problem, not a crash."""

    def test_verify(self) -> None:
        report = verify_lines([DEEP + b"\n"])
        assert not report.ok
        assert report.problem is not None
        assert report.problem.line == 1

    @pytest.mark.parametrize(
        "line",
        [
            pytest.param(DEEP + b"\n", id="deep"),
            pytest.param(
                b'{"seq":{"a":1},"kind":"x.y","at":"t","payload":{}}\n', id="seq-not-a-number"
            ),
            pytest.param(b'{"seq":1,"kind":["x"],"at":"t","payload":{}}\n', id="kind-not-text"),
        ],
    )
    def test_tail(self, line: bytes) -> None:
        assert _render(line).startswith("?  (not a record)")


class TestDeepEverywhere:
    """The relay and MCP parsers refuse it with their own errors."""

    def test_relay(self) -> None:
        with pytest.raises(BadFrame):
            decode_frame(DEEP, max_bytes=1 << 20)

    def test_mcp(self) -> None:
        with pytest.raises(JsonRpcError):
            parse_message(DEEP)
