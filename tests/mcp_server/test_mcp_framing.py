"""JSON-RPC 2.0 parsing and MCP stdio line framing, without a process."""

from __future__ import annotations

import json

import pytest

from actors.mcp import (
    INVALID_REQUEST,
    PARSE_ERROR,
    ErrorObject,
    ErrorResponse,
    JsonRpcError,
    LineSplitter,
    Notification,
    OversizedLine,
    Request,
    Response,
    encode_message,
    parse_message,
)


class TestLineSplitter:
    """Lines are cut at newlines across chunk borders, with a bounded buffer."""

    def test_lines_across_chunks(self) -> None:
        splitter = LineSplitter()
        assert splitter.feed(b'{"a":1}\n{"b"') == [b'{"a":1}']
        assert splitter.feed(b":2}\r\n\n  \n") == [b'{"b":2}']
        assert splitter.pending() == 0

    def test_oversized_line_is_reported_and_skipped(self) -> None:
        splitter = LineSplitter(max_line_bytes=10)
        assert splitter.feed(b"x" * 8) == []
        assert splitter.feed(b"x" * 8) == []
        assert splitter.pending() == 16
        assert splitter.feed(b"yy\nok\n") == [OversizedLine(size=18), b"ok"]


class TestParse:
    """Each kind of message parses; each kind of garbage is the right JSON-RPC error."""

    def test_request_notification_response(self) -> None:
        assert parse_message(b'{"jsonrpc":"2.0","id":1,"method":"m","params":{}}') == Request(
            id=1, method="m", params={}
        )
        assert parse_message('{"jsonrpc":"2.0","method":"n"}') == Notification(method="n")
        assert parse_message(b'{"jsonrpc":"2.0","id":"x","result":{}}') == Response(
            id="x", result={}
        )
        error = parse_message(b'{"jsonrpc":"2.0","id":2,"error":{"code":-1,"message":"m"}}')
        assert error == ErrorResponse(id=2, error=ErrorObject(code=-1, message="m"))

    @pytest.mark.parametrize("line", [b"garbage", b'{"jsonrpc":', b"\xff\xfe", b""])
    def test_parse_error(self, line: bytes) -> None:
        with pytest.raises(JsonRpcError) as info:
            parse_message(line)
        assert (info.value.code, info.value.request_id) == (PARSE_ERROR, None)

    @pytest.mark.parametrize(
        ("line", "request_id"),
        [
            (b"[]", None),
            (b"42", None),
            (b'{"id":1,"method":"m"}', 1),
            (b'{"jsonrpc":"1.0","id":"a","method":"m"}', "a"),
            (b'{"jsonrpc":"2.0","id":3,"method":7}', 3),
            (b'{"jsonrpc":"2.0","id":3,"method":"m","params":[1]}', 3),
            (b'{"jsonrpc":"2.0","id":null,"method":"m"}', None),
            (b'{"jsonrpc":"2.0","id":true,"method":"m"}', None),
            (b'{"jsonrpc":"2.0","id":4}', 4),
        ],
    )
    def test_invalid_request(self, line: bytes, request_id: object) -> None:
        with pytest.raises(JsonRpcError) as info:
            parse_message(line)
        assert (info.value.code, info.value.request_id) == (INVALID_REQUEST, request_id)

    def test_malformed_notification_is_marked(self) -> None:
        with pytest.raises(JsonRpcError) as info:
            parse_message(b'{"jsonrpc":"2.0","method":"notifications/cancelled","params":"x"}')
        assert info.value.from_notification is True


class TestEncode:
    """Encoding gives one compact line with no embedded newline, and round-trips."""

    def test_round_trip_without_embedded_newlines(self) -> None:
        message = Response(id=7, result={"text": "two\nlines\r and é"})
        line = encode_message(message)
        assert line.endswith(b"\n")
        assert line.count(b"\n") == 1
        assert parse_message(line.rstrip(b"\n")) == message

    def test_error_response_shape(self) -> None:
        line = encode_message(JsonRpcError(PARSE_ERROR, "bad").to_response())
        assert json.loads(line) == {
            "jsonrpc": "2.0",
            "id": None,
            "error": {"code": PARSE_ERROR, "message": "bad"},
        }
