"""Fuzzing every parser of outside bytes (hypothesis): each may refuse its input only with
its own typed error, never crash with anything else, never hang, never hold unbounded.

Targets: the relay frame decoders (JSON and binary), the MCP line parser and splitter, the
gRPC ``ChatRequest`` decoding (framing, protobuf, the edge's validation), the provider
adapter's SSE chunk parser (msgspec, on the lean streaming leg), and the audit reader
(``verify`` and ``tail``). Inputs mix raw bytes, mutated valid inputs and JSON built to hit
the hard cases (deep nesting, huge numbers, lone surrogates, duplicate keys). Each target
runs a bounded number of examples; crashes found became the regression tests in
``test_fuzz_regressions.py``.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.audit import RECEIPT_KIND, AuditFile, FsyncPolicy, verify_lines
from actors.audit._cli import _render
from actors.errors import ProviderError
from actors.mcp import JsonRpcError, LineSplitter, parse_message
from actors.mcp._jsonrpc import OversizedLine
from actors.provider._openai_wire import ChunkAssembler, ToolNames, parse_chunk
from actors.relay import (
    BINARY_CODEC,
    JSON_CODEC,
    BadFrame,
    decode_binary_batch,
    decode_frame,
    encode_frame,
)
from contracts.generated import agent_pb2
from contracts.generated.relay.v1 import relay_pb2
from supervisors.edges.grpc._wire import MessageReader, Oversized
from supervisors.host._chat_edge import request_to_inbound
from tests.audit._support import receipt

#: Examples per target: enough to find the classes of crash fixed here in every run, few
#: enough that the whole file takes a few seconds.
EXAMPLES = 300
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,  # a shared 2-core machine: time per example is not the point
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- inputs --------------------------------------------------------------------------

#: Characters that break naive code: lone surrogates, controls, the JSON specials; each
#: drawn as often as any other character.
nasty_chars = st.one_of(
    st.sampled_from(['"', "\\", "\n", "\u2028", "\x00", "\x1b"]),
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),  # lone surrogates
    st.characters(),
)
nasty_text = st.lists(nasty_chars, max_size=40).map("".join)
numbers = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([2**53, -(2**53) - 1, 10**400, 1e308]),
)
json_like = st.recursive(
    st.none() | st.booleans() | numbers | nasty_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(nasty_text, inner, max_size=4),
    max_leaves=20,
)


def text_of(value: Any) -> str:
    """JSON text of a value, however broken (NaN and surrogates allowed, no ASCII escapes)."""
    return json.dumps(value, ensure_ascii=bool(hash(str(value)) % 2), allow_nan=True)


@st.composite
def deep(draw: st.DrawFn) -> str:
    # Depths around every limit there is: ours (64 and 72), the C parser's recursion
    # limit (about 1000), and far past it.
    depth = draw(st.sampled_from([10, 63, 64, 65, 72, 73, 500, 999, 1001, 5000, 100_000]))
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
    return opener * depth + "1" + closer * depth


@st.composite
def mutated(draw: st.DrawFn, valid: str) -> str:
    """A valid text with a few bytes replaced, inserted or cut."""
    chars = list(valid)
    for _ in range(draw(st.integers(1, 4))):
        if not chars:
            break
        at = draw(st.integers(0, len(chars) - 1))
        op = draw(st.sampled_from(["replace", "insert", "delete", "truncate"]))
        piece = draw(st.sampled_from(['"', "{", "}", "[", "]", ",", ":", "9" * 20, "\\ud800", "x"]))
        if op == "replace":
            chars[at] = piece
        elif op == "insert":
            chars.insert(at, piece)
        elif op == "delete":
            del chars[at]
        else:
            del chars[at:]
    return "".join(chars)


VALID_FRAME = (
    '{"type":"tool.result","call_id":"c-1","result":{"structuredContent":{"content":"hi",'
    '"encoding":"utf-8","bytesReturned":2,"fileSize":2,"truncated":false,"sha256":"'
    + "0" * 64
    + '"},"content":[{"type":"text","text":"hi"}]}}'
)
frames = st.one_of(
    st.binary(max_size=300),
    nasty_text,
    json_like.map(text_of),
    st.dictionaries(nasty_text, json_like, max_size=4).map(
        lambda d: text_of({"type": "tool.result", "call_id": "c-1", **d})
    ),
    json_like.map(lambda v: text_of({"type": "tool.result", "call_id": "c-1", "result": v})),
    mutated(VALID_FRAME),
    deep(),
)


class TestRelayFrameDecoder:
    """``decode_frame`` refuses with ``BadFrame`` only; what it accepts re-encodes."""

    @FUZZ
    @given(data=frames, validate=st.booleans())
    def test_only_bad_frame(self, data: str | bytes, validate: bool) -> None:
        try:
            frame = decode_frame(data, max_bytes=1 << 16, validate=validate)
        except BadFrame:
            return
        encode_frame(frame, validate=False)  # whatever was accepted can be sent on


def _binary_result(result_json: bytes, call_id: str = "c-1") -> bytes:
    batch = relay_pb2.FrameBatch()
    frame = batch.frames.add().tool_result
    frame.call_id = call_id
    frame.result_json = result_json
    return batch.SerializeToString()


VALID_BATCH = _binary_result(VALID_FRAME.split('"result":', 1)[1][:-1].encode())
binary_messages = st.one_of(
    st.binary(max_size=300),
    # The mutations of text, on the message's bytes (each byte one latin-1 character).
    mutated(VALID_BATCH.decode("latin-1")).map(lambda t: t.encode("latin-1")),
    json_like.map(lambda v: _binary_result(text_of(v).encode("utf-8", "surrogatepass"))),
    deep().map(lambda t: _binary_result(t.encode())),
    st.lists(st.sampled_from([VALID_BATCH, _binary_result(b"[1]")]), min_size=1, max_size=5).map(
        b"".join
    ),
)


class TestRelayBinaryDecoder:
    """The binary decoder refuses a message with ``BadFrame`` only, and a call's frame as its
    ``BadFrame``; what it accepts re-encodes in either codec."""

    @FUZZ
    @given(data=binary_messages, validate=st.booleans())
    def test_only_bad_frame(self, data: bytes, validate: bool) -> None:
        try:
            items = decode_binary_batch(data, max_bytes=1 << 16, validate=validate)
        except BadFrame:
            return
        for item in items:
            if isinstance(item, BadFrame):
                assert item.call_id is not None
                continue
            BINARY_CODEC.encode([item])
            JSON_CODEC.encode([item])


VALID_LINE = (
    '{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"x"}],'
    '"structuredContent":{"n":1},"isError":false}}'
)
lines = st.one_of(
    st.binary(max_size=300),
    nasty_text,
    json_like.map(text_of),
    json_like.map(lambda v: text_of({"jsonrpc": "2.0", "id": 1, "result": v})),
    json_like.map(lambda v: text_of({"jsonrpc": "2.0", "id": v, "method": "tools/call"})),
    mutated(VALID_LINE),
    deep(),
)


class TestMcpLines:
    """``parse_message`` refuses with ``JsonRpcError`` only; the splitter stays bounded."""

    @FUZZ
    @given(line=lines)
    def test_only_json_rpc_error(self, line: str | bytes) -> None:
        with contextlib.suppress(JsonRpcError):
            parse_message(line.encode("utf-8", "surrogatepass") if isinstance(line, str) else line)

    @FUZZ
    @given(chunks=st.lists(st.binary(max_size=200), max_size=20), limit=st.integers(1, 64))
    def test_splitter_is_bounded(self, chunks: list[bytes], limit: int) -> None:
        splitter = LineSplitter(max_line_bytes=limit)
        for chunk in chunks:
            for item in splitter.feed(chunk):
                assert isinstance(item, OversizedLine) or len(item) <= limit
            # What it holds (not what it counted of a line it is skipping) stays bounded.
            assert len(splitter._buffer) <= limit + len(chunk)


def framed(body: bytes, compressed: int = 0) -> bytes:
    return bytes([compressed]) + len(body).to_bytes(4, "big") + body


requests = st.one_of(
    st.binary(max_size=200),
    st.builds(
        lambda t, u, d, m, n: agent_pb2.ChatRequest(
            start_session=agent_pb2.StartSession(
                tenant=t, user=u, device_id=d, model=m, limits=agent_pb2.Limits(token_budget=n)
            )
        ).SerializeToString(),
        st.text(max_size=300),
        st.text(max_size=20),
        st.text(max_size=300),
        st.text(max_size=20),
        st.integers(0, 2**64 - 1),
    ),
    st.text(max_size=100).map(
        lambda t: agent_pb2.ChatRequest(
            user_message=agent_pb2.UserMessage(text=t)
        ).SerializeToString()
    ),
)


class TestChatRequestDecoding:
    """Bytes on a StreamChat stream: framing, protobuf, then the edge's validation."""

    @FUZZ
    @given(
        bodies=st.lists(requests, max_size=4),
        compressed=st.lists(st.integers(0, 1), max_size=4),
        split=st.integers(1, 64),
        garbage=st.binary(max_size=12),
    )
    def test_decode_validate(
        self, bodies: list[bytes], compressed: list[int], split: int, garbage: bytes
    ) -> None:
        stream = (
            b"".join(
                framed(body, compressed[i] if i < len(compressed) else 0)
                for i, body in enumerate(bodies)
            )
            + garbage
        )
        reader = MessageReader(max_message_bytes=256)
        for start in range(0, len(stream), split):
            reader.feed(stream[start : start + split])
            assert reader.partial_bytes <= 256 + 5 + split
        while reader.queue:
            item = reader.pop()
            if isinstance(item, Oversized) or not isinstance(item, bytes):
                continue
            try:
                request = agent_pb2.ChatRequest.FromString(item)
            except DecodeError:
                continue
            request_to_inbound(request)


VALID_CHUNK = (
    '{"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":'
    '{"content":"hi","tool_calls":[{"index":0,"id":"c","function":{"name":"fs_read",'
    '"arguments":"{\\"p\\":1}"}}]},"finish_reason":null}],"usage":null}'
)
chunks = st.one_of(
    nasty_text,
    json_like.map(text_of),
    json_like.map(lambda v: text_of({"choices": [{"index": 0, "delta": v}]})),
    json_like.map(lambda v: text_of({"choices": [{"delta": {"content": v}}]})),
    nasty_text.map(lambda t: text_of({"choices": [{"delta": {"content": t}}]})),
    nasty_text.map(
        lambda t: text_of(
            {
                "choices": [
                    {
                        "delta": {
                            "tool_calls": [
                                {"index": 0, "function": {"name": "fs_read", "arguments": t}}
                            ]
                        }
                    }
                ]
            }
        )
    ),
    json_like.map(lambda v: text_of({"choices": [], "usage": v})),
    mutated(VALID_CHUNK),
    deep(),
)


class TestSseChunks:
    """The adapter's chunk parser refuses with ``ProviderError`` only; the text it forwards
    and its tool calls' names and ids can be sent on as UTF-8."""

    @FUZZ
    @given(data=st.lists(chunks, min_size=1, max_size=5))
    def test_only_provider_error(self, data: list[str]) -> None:
        assembler = ChunkAssembler(ToolNames(("fs.read",)))
        try:
            for item in data:
                text = assembler.feed(parse_chunk(item))
                text.encode("utf-8")
                agent_pb2.AssistantDelta(text=text)
            for call in assembler.tool_calls():
                # The arguments are the tool path's to refuse (strictly, with a receipt).
                call.name.encode("utf-8")
                call.call_id.encode("utf-8")
        except ProviderError:
            pass


@st.composite
def audit_files(draw: st.DrawFn) -> list[bytes]:
    """A good audit file's lines with some changed, or any lines at all."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "a.jsonl"
        audit = AuditFile.open(path, fsync=FsyncPolicy(), writer="fuzz")
        audit.append(
            [(RECEIPT_KIND, receipt(n).to_payload(), "2026-01-01T00:00:00Z") for n in range(3)]
        )
        audit.close()
        good = path.read_bytes().splitlines(keepends=True)
    mode = draw(st.sampled_from(["mutate", "replace", "raw"]))
    if mode == "raw":
        return draw(st.lists(st.binary(max_size=200), max_size=5))
    index = draw(st.integers(0, len(good) - 1))
    if mode == "replace":
        good[index] = (
            draw(
                frames.map(
                    lambda t: t if isinstance(t, bytes) else t.encode("utf-8", "surrogatepass")
                )
            )
            + b"\n"
        )
    else:
        text = good[index].decode()
        good[index] = draw(mutated(text)).encode("utf-8", "surrogatepass")
    return good


class TestAuditReader:
    """``verify`` reports a problem (never raises) and ``tail`` renders every line."""

    @settings(FUZZ, max_examples=EXAMPLES // 3)
    @given(lines=audit_files())
    def test_verify_and_tail(self, lines: list[bytes]) -> None:
        report = verify_lines(lines)
        assert report.ok or report.problem is not None
        for line in lines:
            assert isinstance(_render(line), str)
