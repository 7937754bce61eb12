"""Both relay codecs, JSON ``zl.relay.v1`` and binary ``zl.relay.v1+proto``, held to one set
of tests: round trips of every frame, the same bounds where frames enter, the same refusals,
and the binary batches that carry several frames in one message."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_relay_codec import frames as frame_strategy  # the same folder (no package)

from actors.relay import (
    BINARY_CODEC,
    BINARY_SUBPROTOCOL,
    JSON_CODEC,
    MAX_FRAMES_PER_MESSAGE,
    SUBPROTOCOL,
    BadFrame,
    Caps,
    Frame,
    FrameCodec,
    Ping,
    ToolCall,
    ToolResult,
    choose_subprotocol,
    codec_for,
    decode_binary_frames,
    decode_frame,
    encode_binary_frames,
    encode_frame,
)
from contracts.generated.relay.v1 import relay_pb2

MAX_BYTES = 1 << 20
FIXTURES = Path(__file__).parent / "fixtures"
CODECS = pytest.mark.parametrize("codec", [JSON_CODEC, BINARY_CODEC], ids=["json", "binary"])
policies = st.none() | st.text(min_size=1, max_size=200)


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


def one(codec: FrameCodec, frame: Frame, **decode: Any) -> Frame:
    """Encode ``frame`` alone, decode it again, and return the one frame that came back."""
    (message,) = codec.encode([frame])
    (back,) = codec.decode(message, max_bytes=decode.pop("max_bytes", MAX_BYTES), **decode)
    return back


class TestRoundTrip:
    """Every frame the types allow comes back equal, through either codec."""

    @CODECS
    @settings(max_examples=150)
    @given(frame=frame_strategy)
    def test_every_frame(self, codec: FrameCodec, frame: Frame) -> None:
        assert one(codec, frame) == frame

    @CODECS
    @given(policy=policies)
    def test_the_policy_of_a_call(self, codec: FrameCodec, policy: str | None) -> None:
        call = a_call(policy=policy)
        assert one(codec, call) == call

    @CODECS
    def test_the_valid_fixtures(self, codec: FrameCodec) -> None:
        for body in json.loads((FIXTURES / "valid_frames.json").read_text()):
            frame = decode_frame(json.dumps(body), max_bytes=MAX_BYTES)
            assert one(codec, frame) == frame

    @CODECS
    def test_unicode(self, codec: FrameCodec) -> None:
        call = a_call(args={"path": "/home/zoë/ファイル"})
        assert one(codec, call) == call


class TestBatches:
    """Binary messages carry several frames; JSON carries one frame per message."""

    def test_frames_ready_together_share_one_binary_message(self) -> None:
        batch = [Ping(nonce=f"n{i}", sent_at_ms=float(i)) for i in range(5)]
        messages = BINARY_CODEC.encode(batch)
        assert len(messages) == 1
        assert BINARY_CODEC.decode(messages[0], max_bytes=MAX_BYTES) == batch

    def test_json_sends_one_message_per_frame(self) -> None:
        batch = [Ping(nonce=f"n{i}", sent_at_ms=float(i)) for i in range(3)]
        messages = JSON_CODEC.encode(batch)
        assert len(messages) == 3
        assert [JSON_CODEC.decode(m, max_bytes=MAX_BYTES)[0] for m in messages] == batch

    def test_a_long_batch_is_split_at_the_message_limit(self) -> None:
        batch = [Ping(nonce="n", sent_at_ms=0.0)] * (MAX_FRAMES_PER_MESSAGE + 1)
        assert len(BINARY_CODEC.encode(batch)) == 2

    def test_too_many_frames_in_one_message_are_refused(self) -> None:
        message = relay_pb2.FrameBatch()
        for _ in range(MAX_FRAMES_PER_MESSAGE + 1):
            message.frames.add().ping.nonce = "n"
        with pytest.raises(BadFrame, match="frames in one message"):
            decode_binary_frames(message.SerializeToString(), max_bytes=MAX_BYTES)

    def test_one_bad_frame_refuses_the_whole_message(self) -> None:
        good = encode_binary_frames([Ping(nonce="n", sent_at_ms=1.0)])
        bad = relay_pb2.FrameBatch()
        bad.frames.add().tool_call.call_id = "c-9"  # args are not JSON
        with pytest.raises(BadFrame) as info:
            decode_binary_frames(good + bad.SerializeToString(), max_bytes=MAX_BYTES)
        assert info.value.call_id == "c-9"

    def test_a_text_message_on_the_binary_subprotocol_is_one_json_frame(self) -> None:
        # A peer's last error frame before it closes is JSON whatever was negotiated.
        assert BINARY_CODEC.decode(encode_frame(a_call()), max_bytes=MAX_BYTES) == [a_call()]


class TestBounds:
    """The limits of the JSON codec hold for the binary one where frames enter."""

    @CODECS
    def test_over_the_frame_limit(self, codec: FrameCodec) -> None:
        (message,) = codec.encode([a_call(args={"blob": "x" * 500})])
        with pytest.raises(BadFrame, match="exceeds the 200-byte limit"):
            codec.decode(message, max_bytes=200)

    @CODECS
    def test_a_schema_bound_is_checked(self, codec: FrameCodec) -> None:
        (message,) = codec.encode([a_call(deadline_ms=0)])
        with pytest.raises(BadFrame, match=r"tool\.call frame is invalid at deadline_ms") as info:
            codec.decode(message, max_bytes=MAX_BYTES)
        assert info.value.call_id == "c-1"
        # Trusted peers skip the schema, as with JSON.
        assert codec.decode(message, max_bytes=MAX_BYTES, validate=False) == [a_call(deadline_ms=0)]

    @CODECS
    def test_a_policy_longer_than_64_kib_is_refused(self, codec: FrameCodec) -> None:
        (message,) = codec.encode([a_call(policy="p" * 65_537)])
        with pytest.raises(BadFrame, match="policy"):
            codec.decode(message, max_bytes=MAX_BYTES)
        assert one(codec, a_call(policy="p" * 65_536)) == a_call(policy="p" * 65_536)

    @CODECS
    def test_encoding_refuses_what_the_peer_would(self, codec: FrameCodec) -> None:
        with pytest.raises(BadFrame, match="refusing to send"):
            codec.encode([a_call(tenant="acme\n")], validate=True)


def _call_with_args(raw: bytes) -> bytes:
    message = relay_pb2.FrameBatch()
    call = message.frames.add().tool_call
    call.call_id, call.tenant, call.device_id = "c-2", "acme", "laptop-1"
    call.tool, call.version, call.deadline_ms = "fs.read", "1.0.0", 5000
    call.caps.timeout_ms, call.caps.max_bytes = 3000, 4096
    call.args_json = raw
    return message.SerializeToString()


class TestBinaryMalformed:
    """Every malformed binary message is a ``BadFrame``, never another exception."""

    @pytest.mark.parametrize(
        "data",
        [b"\xff\xff\xff", b"", b"\x0a\x00"],
        ids=["not protobuf", "no frame", "a frame with no case"],
    )
    def test_refused(self, data: bytes) -> None:
        with pytest.raises(BadFrame):
            decode_binary_frames(data, max_bytes=MAX_BYTES)

    @pytest.mark.parametrize(
        "raw",
        [
            b"not json",
            b"[1, 2]",
            b'{"a": 1, "a": 2}',
            b'{"n": 9007199254740993}',
            b'{"x": NaN}',
            b'{"s": "\\ud800"}',
            b"[" * 100 + b"]" * 100,
            b'{"s": "\xff"}',
        ],
        ids=[
            "not json",
            "not an object",
            "duplicate key",
            "integer past 2**53",
            "NaN",
            "lone surrogate",
            "deep nesting",
            "invalid utf-8",
        ],
    )
    def test_args_are_read_strictly(self, raw: bytes) -> None:
        with pytest.raises(BadFrame) as info:
            decode_binary_frames(_call_with_args(raw), max_bytes=MAX_BYTES, validate=False)
        assert info.value.code == "relay.bad_frame"
        assert info.value.call_id == "c-2"

    def test_a_result_with_neither_outcome(self) -> None:
        message = relay_pb2.FrameBatch()
        message.frames.add().tool_result.call_id = "c-3"
        with pytest.raises(BadFrame, match="exactly one"):
            decode_binary_frames(message.SerializeToString(), max_bytes=MAX_BYTES)

    def test_a_text_message_that_is_not_json(self) -> None:
        with pytest.raises(BadFrame):
            BINARY_CODEC.decode("not json", max_bytes=MAX_BYTES)


class TestNegotiation:
    """The relay answers binary to a peer that offers it, JSON to one that does not."""

    def test_binary_is_preferred(self) -> None:
        assert choose_subprotocol([SUBPROTOCOL, BINARY_SUBPROTOCOL]) == BINARY_SUBPROTOCOL

    def test_json_only_peers(self) -> None:
        assert choose_subprotocol([SUBPROTOCOL]) == SUBPROTOCOL
        assert choose_subprotocol([BINARY_SUBPROTOCOL], allow_binary=False) is None

    def test_nothing_known(self) -> None:
        assert choose_subprotocol(["chat"]) is None

    def test_codec_of_a_subprotocol(self) -> None:
        assert codec_for(BINARY_SUBPROTOCOL) is BINARY_CODEC
        assert codec_for(SUBPROTOCOL) is JSON_CODEC
        assert codec_for(None) is JSON_CODEC

    def test_result_error_case(self) -> None:
        result = ToolResult(call_id="c", result={"content": []}, device_rtt_ms=1.5)
        assert decode_binary_frames(encode_binary_frames([result]), max_bytes=MAX_BYTES) == [result]
