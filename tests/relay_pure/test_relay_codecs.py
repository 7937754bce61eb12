"""Both relay codecs, JSON ``zl.relay.v1`` and binary ``zl.relay.v1+proto``, held to one set
of tests: every field of every frame schema carried by both, round trips of every frame, the
same bounds where frames enter (``actors/relay/_limits.py``), the same refusals, a refused
call's frame failing only that call, the size re-measured for the link a frame leaves on, and
the binary batches that carry several frames in one message."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_relay_codec import a_call  # the same folder (no package)
from test_relay_codec import frames as frame_strategy

from actors.relay import (
    BINARY_CODEC,
    BINARY_SUBPROTOCOL,
    JSON_CODEC,
    MAX_FRAME_DEPTH,
    MAX_FRAMES_PER_MESSAGE,
    SUBPROTOCOL,
    BadFrame,
    ErrorFrame,
    Frame,
    FrameCodec,
    Ping,
    ToolResult,
    choose_subprotocol,
    codec_for,
    decode_binary_batch,
    decode_binary_frames,
    decode_frame,
    encode_binary_frames,
    encode_frame,
)
from actors.relay._codec import coalesce
from contracts import load_json
from contracts.generated.relay.v1 import relay_pb2

MAX_BYTES = 1 << 20
FIXTURES = Path(__file__).parent / "fixtures"
CODECS = pytest.mark.parametrize("codec", [JSON_CODEC, BINARY_CODEC], ids=["json", "binary"])
policies = st.none() | st.text(min_size=1, max_size=200)
call_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,40}", fullmatch=True)
traceparents = st.from_regex(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}", fullmatch=True)


def one(codec: FrameCodec, frame: Frame, **decode: Any) -> Frame:
    """Encode ``frame`` alone, decode it again, and return the one frame that came back."""
    (message,) = codec.encode([frame])
    (back,) = codec.decode(message, max_bytes=decode.pop("max_bytes", MAX_BYTES), **decode)
    return back


def _normal(name: str) -> str:
    """A field's name with case, underscores and the binary ``_json`` suffix ignored."""
    return name.removesuffix("_json").replace("_", "").lower()


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    """A ``common.schema.json`` definition in place of its ``$ref``."""
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("common.schema.json#/$defs/"):
        common = load_json("api/relay/v1/common.schema.json")
        return dict(common["$defs"][ref.rsplit("/", 1)[1]])
    return schema


def _missing(schema: dict[str, Any], message: Any, where: str) -> list[str]:
    """Properties of an object schema that ``message`` (a protobuf descriptor) has no field for."""
    fields = {_normal(field.name): field for field in message.fields}
    missing = []
    for name, prop in schema.get("properties", {}).items():
        if name == "type":
            continue
        field = fields.get(_normal(name))
        if field is None:
            missing.append(f"{where}.{name}")
            continue
        prop = _resolve(prop)
        if prop.get("type") == "array":
            prop = _resolve(prop.get("items", {}))
        if "properties" in prop and field.message_type is not None:
            missing += _missing(prop, field.message_type, f"{where}.{name}")
    return missing


class TestSchemaParity:
    """The binary frames carry every field the JSON frames' schemas define (so a field added
    to a schema, as ``policy`` and ``audit_id`` on ``tool.call`` were, fails here until
    ``relay.proto`` and the binary codec carry it too)."""

    SCHEMAS = sorted(
        path.name.removesuffix(".schema.json")
        for path in (Path(__file__).parents[2] / "contracts" / "api" / "relay" / "v1").glob(
            "*.schema.json"
        )
        if path.name != "common.schema.json"
    )

    @pytest.mark.parametrize("frame_type", SCHEMAS)
    def test_every_schema_field_has_a_proto_field(self, frame_type: str) -> None:
        schema = load_json(f"api/relay/v1/{frame_type}.schema.json")
        case = relay_pb2.Frame.DESCRIPTOR.fields_by_name[frame_type.replace(".", "_")]
        assert _missing(schema, case.message_type, frame_type) == []

    def test_every_frame_type_has_a_case(self) -> None:
        cases = {field.name for field in relay_pb2.Frame.DESCRIPTOR.fields}
        assert cases == {frame_type.replace(".", "_") for frame_type in self.SCHEMAS}


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
    @given(
        traceparent=st.none() | traceparents,
        audit_id=st.none() | call_ids,
        tenant=call_ids,
        policy=policies,
    )
    def test_the_trace_audit_and_policy_of_a_call(
        self,
        codec: FrameCodec,
        traceparent: str | None,
        audit_id: str | None,
        tenant: str,
        policy: str | None,
    ) -> None:
        call = a_call(traceparent=traceparent, audit_id=audit_id, tenant=tenant, policy=policy)
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
    def test_an_audit_id_that_is_not_an_id_is_refused(self, codec: FrameCodec) -> None:
        (message,) = codec.encode([a_call(audit_id="not an id")])
        with pytest.raises(BadFrame, match="audit_id") as info:
            codec.decode(message, max_bytes=MAX_BYTES)
        assert info.value.call_id == "c-1"

    @CODECS
    @pytest.mark.parametrize("payload", ["args", "result"])
    def test_a_payload_nests_as_deep_in_both(self, codec: FrameCodec, payload: str) -> None:
        # The payload sits one level into the frame: in either encoding it may hold
        # MAX_FRAME_DEPTH - 1 levels of containers (itself included), and not one more.
        def frame(levels: int) -> Frame:
            value: Any = 1
            for _ in range(levels - 1):
                value = [value]
            body = {"x": value}
            if payload == "args":
                return a_call(args=body)
            return ToolResult(call_id="c-1", result=body)

        deepest = frame(MAX_FRAME_DEPTH - 1)
        assert one(codec, deepest) == deepest
        (message,) = codec.encode([frame(MAX_FRAME_DEPTH)])
        with pytest.raises(BadFrame, match="nesting is deeper") as info:
            codec.decode(message, max_bytes=MAX_BYTES)
        assert info.value.call_id == "c-1"

    @CODECS
    def test_an_integer_past_2_53_in_args_fails_its_call(self, codec: FrameCodec) -> None:
        (message,) = codec.encode([a_call(args={"offset": 2**53})])
        with pytest.raises(BadFrame, match="out of range") as info:
            codec.decode(message, max_bytes=MAX_BYTES, validate=False)
        assert info.value.call_id == "c-1"

    @CODECS
    @pytest.mark.parametrize(
        "frame",
        [
            pytest.param(a_call(args={"path": "bad\ud800name"}), id="in-a-json-value"),
            pytest.param(
                ErrorFrame(code="tool.failed", message="bad\udfff", retryable=False),
                id="in-a-string-field",
            ),
        ],
    )
    def test_a_lone_surrogate_is_never_sent(self, codec: FrameCodec, frame: Frame) -> None:
        with pytest.raises(BadFrame, match=r"surrogate|cannot be encoded"):
            codec.encode([frame])
        with pytest.raises(BadFrame):
            codec.encode_for_link(frame, limit=MAX_BYTES, link="the test link")

    @CODECS
    def test_encoding_refuses_what_the_peer_would(self, codec: FrameCodec) -> None:
        with pytest.raises(BadFrame, match="refusing to send"):
            codec.encode([a_call(tenant="acme\n")], validate=True)


class TestOneCallFails:
    """A refused frame that names its call fails that call only, in either encoding; the
    other frames of a binary message are still delivered."""

    def test_binary_the_other_frames_of_the_message_arrive(self) -> None:
        good = encode_binary_frames([ToolResult(call_id="c-1", result={"ok": True})])
        bad = _call_with_args(b'{"n": 9007199254740993}')
        items = BINARY_CODEC.decode_each(good + bad + good, max_bytes=MAX_BYTES, validate=False)
        assert items[0] == items[2] == ToolResult(call_id="c-1", result={"ok": True})
        assert isinstance(items[1], BadFrame)
        assert items[1].call_id == "c-2"
        assert items[1].code == "relay.bad_frame"

    def test_json_a_bad_frame_with_a_call_id(self) -> None:
        text = encode_frame(a_call()).replace('"path":"/tmp/x"', '"path":9007199254740993')
        (item,) = JSON_CODEC.decode_each(text, max_bytes=MAX_BYTES, validate=False)
        assert isinstance(item, BadFrame)
        assert item.call_id == "c-1"

    @CODECS
    def test_a_bad_frame_without_a_call_refuses_the_message(self, codec: FrameCodec) -> None:
        data: bytes | str = b"\xff\xff" if codec.binary else "[1, 2]"
        with pytest.raises(BadFrame):
            codec.decode_each(data, max_bytes=MAX_BYTES)


class TestOutgoingLink:
    """A frame is measured again against the limit of the link it leaves on, in the codec it
    leaves in; one that does not fit fails only its call."""

    @CODECS
    def test_at_the_limit_and_one_byte_over(self, codec: FrameCodec) -> None:
        result = ToolResult(call_id="c-7", result={"text": "x" * 5000})
        size = len(codec.encode([result])[0])
        sent = codec.encode_for_link(result, limit=size, link="the host link")
        assert codec.decode(sent, max_bytes=size) == [result]
        with pytest.raises(BadFrame, match="does not fit the host link's") as info:
            codec.encode_for_link(result, limit=size - 1, link="the host link")
        assert info.value.call_id == "c-7"
        assert info.value.code == "relay.bad_frame"

    def test_a_result_that_grows_when_re_encoded(self) -> None:
        # A device's "1e9" (3 characters) is 1000000000.0 once read: measured as it leaves.
        numbers = ",".join(["1e9"] * 300)
        text = f'{{"type":"tool.result","call_id":"c-8","result":{{"n":[{numbers}]}}}}'
        (frame,) = JSON_CODEC.decode(text, max_bytes=len(text))
        for codec in (JSON_CODEC, BINARY_CODEC):
            with pytest.raises(BadFrame) as info:
                codec.encode_for_link(frame, limit=len(text), link="the host link")
            assert info.value.call_id == "c-8"

    def test_coalesced_frames_are_one_batch_within_the_limit(self) -> None:
        frames = [ToolResult(call_id=f"c-{i}", result={"text": "y" * 300}) for i in range(10)]
        each = [
            BINARY_CODEC.encode_for_link(f, limit=MAX_BYTES, link="the host link") for f in frames
        ]
        limit = sum(len(m) for m in each[:4])
        messages = coalesce(each, limit=limit)
        assert len(messages) == 3
        assert all(len(m) <= limit for m in messages)
        back = [f for m in messages for f in BINARY_CODEC.decode(m, max_bytes=limit)]
        assert back == frames

    def test_json_frames_are_not_coalesced(self) -> None:
        each = [JSON_CODEC.encode_for_link(p, limit=MAX_BYTES, link="l") for p in pings(3)]
        assert coalesce(each, limit=MAX_BYTES) == each


def pings(count: int) -> list[Ping]:
    return [Ping(nonce=f"n{i}", sent_at_ms=float(i)) for i in range(count)]


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

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            pytest.param("deadline_ms", 2**60, id="int64-past-2**53"),
            pytest.param("deadline_ms", -(2**53), id="negative-past-2**53"),
        ],
    )
    def test_integers_held_to_the_strict_range(self, field: str, value: int) -> None:
        message = relay_pb2.FrameBatch.FromString(_call_with_args(b"{}"))
        setattr(message.frames[0].tool_call, field, value)
        with pytest.raises(BadFrame, match="out of range") as info:
            decode_binary_frames(message.SerializeToString(), max_bytes=MAX_BYTES, validate=False)
        assert info.value.call_id == "c-2"

    @pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
    def test_doubles_must_be_finite(self, value: float) -> None:
        ping = relay_pb2.FrameBatch()
        ping.frames.add().ping.sent_at_ms = value
        with pytest.raises(BadFrame, match="finite"):
            decode_binary_frames(ping.SerializeToString(), max_bytes=MAX_BYTES, validate=False)
        progress = relay_pb2.FrameBatch()
        frame = progress.frames.add().tool_progress
        frame.call_id, frame.progress = "c-4", value
        # A call's own frame: only that call fails.
        (item,) = decode_binary_batch(
            progress.SerializeToString(), max_bytes=MAX_BYTES, validate=False
        )
        assert isinstance(item, BadFrame)
        assert item.call_id == "c-4"

    def test_a_string_field_that_is_not_utf8(self) -> None:
        message = relay_pb2.FrameBatch()
        message.frames.add().error.message = "PLACEHOLDER"
        data = message.SerializeToString().replace(b"PLACEHOLDER", b"\xed\xa0\x80" + b"x" * 8)
        with pytest.raises(BadFrame, match=r"not a zl\.relay\.v1\+proto frame batch"):
            decode_binary_frames(data, max_bytes=MAX_BYTES)

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
