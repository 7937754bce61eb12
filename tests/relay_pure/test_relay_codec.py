"""The frame codec: round trips, the size limit, and refusal of everything malformed."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.errors import WireError
from actors.relay import (
    SUBPROTOCOL,
    BadFrame,
    Caps,
    DeviceHello,
    DeviceHelloAck,
    ErrorFrame,
    Frame,
    Ping,
    Pong,
    Redirect,
    Tool,
    ToolCall,
    ToolCancel,
    ToolProgress,
    ToolResult,
    decode_frame,
    encode_frame,
)
from actors.strict_json import MAX_SAFE_INTEGER

MAX_BYTES = 1 << 20

ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,30}", fullmatch=True)
tool_names = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)
semvers = st.builds(
    lambda a, b, c, pre: f"{a}.{b}.{c}" + (f"-{pre}" if pre else ""),
    st.integers(0, 999),
    st.integers(0, 999),
    st.integers(0, 999),
    st.sampled_from(["", "beta.1", "rc-2"]),
)
finite = st.floats(allow_nan=False, allow_infinity=False)
json_values = st.recursive(
    # Within the strict reader's range (actors.strict_json): what the codec can carry.
    st.none()
    | st.booleans()
    | st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
    | finite
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=5)
texts = st.text(max_size=60)
codes = st.from_regex(r"[a-z_]{1,10}(\.[a-z_]{1,10}){0,2}", fullmatch=True)
clocks = st.floats(min_value=0, allow_nan=False, allow_infinity=False)
wire_errors = st.builds(WireError, code=codes, message=texts, retryable=st.booleans())
tools = st.builds(
    Tool,
    name=tool_names,
    version=semvers,
    description=texts,
    input_schema=json_objects,
    output_schema=st.none() | json_objects,
)
frames: st.SearchStrategy[Frame] = st.one_of(
    st.builds(
        DeviceHello,
        bridge_version=semvers,
        device_id=ids,
        tools=st.lists(tools, max_size=3).map(tuple),
    ),
    st.builds(
        DeviceHelloAck,
        device_id=ids,
        heartbeat_ms=st.integers(100, 600_000),
        max_frame_bytes=st.integers(1024, 1 << 30),
        max_in_flight=st.integers(1, 10_000),
    ),
    st.builds(Ping, nonce=st.text(min_size=1, max_size=64), sent_at_ms=clocks),
    st.builds(Pong, nonce=st.text(min_size=1, max_size=64), sent_at_ms=clocks),
    st.builds(
        ToolCall,
        call_id=ids,
        tenant=ids,
        device_id=ids,
        tool=tool_names,
        version=semvers,
        args=json_objects,
        deadline_ms=st.integers(1, 3_600_000),
        caps=st.builds(
            Caps, timeout_ms=st.integers(1, 3_600_000), max_bytes=st.integers(1, 1 << 30)
        ),
        traceparent=st.none()
        | st.from_regex(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}", fullmatch=True),
        policy=st.none() | st.text(min_size=1, max_size=100),
        audit_id=st.none() | ids,
    ),
    st.builds(ToolResult, call_id=ids, result=json_objects, device_rtt_ms=st.none() | clocks),
    st.builds(ToolResult, call_id=ids, error=wire_errors, device_rtt_ms=st.none() | clocks),
    st.builds(ToolCancel, call_id=ids, reason=st.text(min_size=1, max_size=60)),
    st.builds(
        ToolProgress,
        call_id=ids,
        progress=clocks,
        total=st.none() | clocks,
        message=st.none() | texts,
    ),
    st.builds(
        ErrorFrame,
        code=codes,
        message=texts,
        retryable=st.booleans(),
        call_id=st.none() | ids,
    ),
    st.builds(
        Redirect, tenant=ids, shard_id=ids, shard_url=ids.map(lambda h: f"wss://{h}:8443/v1")
    ),
)


def a_call(**changes: Any) -> ToolCall:
    fields: dict[str, Any] = {
        "call_id": "c-1",
        "tenant": "acme",
        "device_id": "laptop-1",
        "tool": "fs.read",
        "version": "1.0.0",
        "args": {"path": "/tmp/x"},
        "deadline_ms": 5000,
        "caps": Caps(timeout_ms=3000, max_bytes=4096),
    }
    return ToolCall(**(fields | changes))


class TestRoundTrip:
    """``decode_frame(encode_frame(f)) == f`` for every frame the types allow."""

    @given(frames)
    def test_encode_then_decode(self, frame: Frame) -> None:
        text = encode_frame(frame)
        assert decode_frame(text, max_bytes=MAX_BYTES) == frame
        assert decode_frame(text.encode("utf-8"), max_bytes=MAX_BYTES) == frame

    def test_wire_names(self) -> None:
        hello = DeviceHello(
            bridge_version="0.1.0",
            device_id="d",
            tools=(Tool(name="fs.read", version="1.0.0", description="", input_schema={}),),
        )
        body = json.loads(encode_frame(hello))
        assert body["tools"][0] == {
            "name": "fs.read",
            "version": "1.0.0",
            "description": "",
            "inputSchema": {},
        }
        assert json.loads(encode_frame(a_call()))["caps"] == {"timeoutMs": 3000, "maxBytes": 4096}

    def test_device_rtt_is_optional_on_the_wire(self) -> None:
        unmeasured = ToolResult(call_id="c-1", result={})
        assert "device_rtt_ms" not in json.loads(encode_frame(unmeasured))
        measured = json.loads(encode_frame(ToolResult(call_id="c-1", result={}, device_rtt_ms=0.8)))
        assert measured["device_rtt_ms"] == 0.8

    def test_lone_surrogate_is_refused_both_ways(self) -> None:
        # A WebSocket text message must be UTF-8, and the strict reader refuses the escape.
        with pytest.raises(BadFrame, match="surrogate"):
            encode_frame(a_call(args={"path": "bad\ud800name"}))
        escaped = encode_frame(a_call(args={"path": "bad-name"})).replace("bad-name", "bad\\ud800")
        with pytest.raises(BadFrame, match="surrogate"):
            decode_frame(escaped, max_bytes=MAX_BYTES)

    def test_compact_and_unicode_kept(self) -> None:
        text = encode_frame(a_call(args={"path": "/home/zoë/ファイル"}))
        assert ", " not in text
        assert "ファイル" in text

    def test_error_frame_carries_a_zl_error(self) -> None:
        wire = BadFrame("frame is not JSON").to_wire()
        frame = ErrorFrame.from_wire(wire, call_id="c-3")
        decoded = decode_frame(encode_frame(frame), max_bytes=MAX_BYTES)
        assert isinstance(decoded, ErrorFrame)
        assert decoded.to_wire() == wire
        assert decoded.call_id == "c-3"

    def test_subprotocol_is_versioned(self) -> None:
        assert SUBPROTOCOL == "zl.relay.v1"


class TestSizeLimit:
    """Frames over ``max_bytes`` (counted in UTF-8 bytes) are refused before parsing."""

    def frame_of(self, size: int, char: str = "a") -> str:
        base = '{"type":"tool.cancel","call_id":"c","reason":"'
        room = size - len(base) - 2
        filler = room // len(char.encode())
        text = base + char * filler + "a" * (room - filler * len(char.encode())) + '"}'
        assert len(text.encode()) == size
        return text

    def test_at_the_limit_is_accepted(self) -> None:
        assert isinstance(decode_frame(self.frame_of(200), max_bytes=200), ToolCancel)
        assert isinstance(decode_frame(self.frame_of(200).encode(), max_bytes=200), ToolCancel)

    @pytest.mark.parametrize("as_bytes", [False, True])
    def test_one_byte_over_is_refused(self, as_bytes: bool) -> None:
        text = self.frame_of(201)
        data: str | bytes = text.encode() if as_bytes else text
        with pytest.raises(BadFrame, match="exceeds the 200-byte limit"):
            decode_frame(data, max_bytes=200)

    def test_multibyte_characters_count_as_bytes(self) -> None:
        text = self.frame_of(201, char="é")  # fewer than 200 characters, 201 bytes
        assert len(text) < 200
        with pytest.raises(BadFrame, match="exceeds"):
            decode_frame(text, max_bytes=200)

    def test_huge_frame_is_refused_without_parsing(self) -> None:
        with pytest.raises(BadFrame, match="exceeds"):
            decode_frame("[" * 10_000_000, max_bytes=MAX_BYTES)


class TestMalformed:
    """Anything that is not a valid v1 frame is a ``BadFrame``, never another exception."""

    @pytest.mark.parametrize(
        "data",
        [
            "",
            "not json",
            "[]",
            '"ping"',
            "null",
            '{"type": "ping", "nonce": "n", "sent_at_ms": NaN}',
            '{"type": "ping", "nonce": "n", "sent_at_ms": 1e999}',
            '{"type": "ping", "nonce": "n", "nonce": "m", "sent_at_ms": 1}',
            '{"type": "ping", "nonce": "n", "sent_at_ms": ' + "9" * 5000 + "}",
            "[" * 100_000 + "]" * 100_000,
            '{"type": "ping", "nonce": "\ud800", "sent_at_ms": 1}',
            b'{"type": "ping", "nonce": "\xff", "sent_at_ms": 1}',
            '{"type": "ping", "nonce": "n", "sent_at_ms": 1}  trailing',
        ],
        ids=[
            "empty",
            "not json",
            "array",
            "string",
            "null",
            "NaN",
            "infinite number",
            "duplicate key",
            "huge integer",
            "deep nesting",
            "lone surrogate",
            "invalid utf-8",
            "trailing garbage",
        ],
    )
    def test_refused(self, data: str | bytes) -> None:
        with pytest.raises(BadFrame) as info:
            decode_frame(data, max_bytes=MAX_BYTES)
        assert info.value.code == "relay.bad_frame"

    def test_unknown_type_is_named(self) -> None:
        with pytest.raises(BadFrame, match=r"unknown frame type 'tool\.explode' for zl\.relay\.v1"):
            decode_frame('{"type": "tool.explode"}', max_bytes=MAX_BYTES)

    def test_schema_error_names_the_field(self) -> None:
        body = json.loads(encode_frame(a_call()))
        body["caps"]["timeoutMs"] = 0
        with pytest.raises(
            BadFrame, match=r"tool\.call frame is invalid at caps/timeoutMs"
        ) as info:
            decode_frame(json.dumps(body), max_bytes=MAX_BYTES)
        assert info.value.call_id == "c-1"  # so the relay can fail that one call

    def test_bad_call_id_is_not_echoed(self) -> None:
        with pytest.raises(BadFrame) as info:
            decode_frame('{"type": "tool.cancel", "call_id": "a b"}', max_bytes=MAX_BYTES)
        assert info.value.call_id is None

    def test_long_values_are_not_echoed_in_full(self) -> None:
        body = json.loads(encode_frame(a_call()))
        body["tenant"] = "x" * 5000
        with pytest.raises(BadFrame) as info:
            decode_frame(json.dumps(body), max_bytes=MAX_BYTES)
        assert len(info.value.message) < 500


class TestTrustedDecode:
    """``validate=False`` (frames from the relay) skips the schema, not the other checks."""

    def test_schema_is_not_checked(self) -> None:
        body = json.loads(encode_frame(a_call()))
        body["caps"]["timeoutMs"] = 0
        frame = decode_frame(json.dumps(body), max_bytes=MAX_BYTES, validate=False)
        assert isinstance(frame, ToolCall)
        assert frame.caps.timeout_ms == 0

    @pytest.mark.parametrize(
        "data",
        ["{not json", "[1]", '{"type": "tool.explode"}', '{"type": "tool.cancel"}'],
        ids=["not-json", "not-object", "unknown-type", "missing-fields"],
    )
    def test_unreadable_frames_still_refused(self, data: str) -> None:
        with pytest.raises(BadFrame):
            decode_frame(data, max_bytes=MAX_BYTES, validate=False)

    def test_size_limit_still_applies(self) -> None:
        with pytest.raises(BadFrame):
            decode_frame(encode_frame(a_call()), max_bytes=10, validate=False)


class TestEncodeRefuses:
    """This side never sends a frame the other side would refuse."""

    def test_invalid_for_schema(self) -> None:
        with pytest.raises(BadFrame, match=r"refusing to send an invalid tool\.call"):
            encode_frame(a_call(deadline_ms=0))
        with pytest.raises(BadFrame, match="refusing to send"):
            encode_frame(a_call(tenant="acme\n"))

    @pytest.mark.parametrize("validate", [True, False])
    def test_not_json(self, validate: bool) -> None:
        with pytest.raises(BadFrame):
            encode_frame(a_call(args={"x": float("nan")}), validate=validate)

    def test_result_needs_exactly_one_outcome(self) -> None:
        with pytest.raises(ValueError, match="exactly one"):
            ToolResult(call_id="c")
        with pytest.raises(ValueError, match="exactly one"):
            ToolResult(
                call_id="c",
                result={},
                error=WireError(code="tool.failed", message="m", retryable=False),
            )
        assert ToolResult(call_id="c", result={}).ok
