"""Relay frames in binary (subprotocol ``zl.relay.v1+proto``): the protobuf codec.

The frames are the typed classes of ``_frames.py``; only their encoding differs from the
JSON subprotocol ``zl.relay.v1``. Each WebSocket binary message is one ``FrameBatch``
(``contracts/api/relay/v1/relay.proto``) holding one or more frames, so a sender may
coalesce frames that are ready together into one write.

Where a binary message enters, it gets the same checks as a JSON one (``_limits.py``), in
this order:

1. its size against the connection's frame limit, before it is parsed;
2. protobuf parsing (C; a string field that is not UTF-8 refuses the message), then every
   number against the strict reader's range (integers within 2**53, floats finite: a
   protobuf ``int64`` or ``double`` could carry what JSON cannot), and every embedded JSON
   value (a call's ``args``, a ``result``, a tool's schemas) with the strict JSON reader
   (``actors.strict_json``: no integers past 2**53, no lone surrogates, no duplicate keys,
   nesting bounded so that the value may nest exactly as deep as in a JSON frame of
   ``MAX_FRAME_DEPTH``);
3. with ``validate``, the frame's JSON Schema, on the same body the JSON codec checks, so
   ids, versions, lengths and ranges are bounded identically for both subprotocols.

A frame that fails these checks but names its call (a readable ``call_id``) fails only that
call (:func:`decode_binary_batch` gives its ``BadFrame`` in its place, so the other frames
of the message are still delivered); anything else refuses the whole message.

Why binary: a relayed call crosses three processes and about ten frame encodings or
decodings; with JSON each one parses and re-serialises the whole frame in Python
(``json`` with hooks, ``cattrs``), with protobuf only the envelope is parsed in C and the
payload's JSON is read once, strictly, where it enters.

All failures raise ``BadFrame`` (``relay.bad_frame``), as the JSON codec does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Final

import attrs
from google.protobuf.message import DecodeError

from actors.errors import WireError
from actors.strict_json import MAX_SAFE_INTEGER, StrictJsonError, dumps
from actors.strict_json import loads as strict_loads
from contracts.generated.relay.v1 import relay_pb2

from ._errors import BadFrame
from ._frames import (
    _CONVERTER,
    Caps,
    Catalog,
    CatalogGet,
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
    matches_pattern,
    schema_error,
)
from ._limits import MAX_FRAME_DEPTH, check_inbound_size, check_outbound_size

#: The binary subprotocol; peers that offer it are answered with it.
BINARY_SUBPROTOCOL: Final = "zl.relay.v1+proto"
#: The most frames one binary message may hold.
MAX_FRAMES_PER_MESSAGE: Final = 256
#: Schema error messages can quote the offending value; this bounds what goes back.
_MAX_ERROR_CHARS: Final = 300
_ID_PATTERN: Final = "^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"


def _short(text: str) -> str:
    return text if len(text) <= _MAX_ERROR_CHARS else text[:_MAX_ERROR_CHARS] + "…"


def _json_bytes(value: Any) -> bytes:
    """Compact UTF-8 JSON of a value the strict reader produced (or the caller built).

    Raises:
        BadFrame: a value JSON cannot carry (NaN, infinity, a lone surrogate), as the JSON
            codec's ``encode_frame`` refuses it.
    """
    try:
        return dumps(value).encode("utf-8")
    except StrictJsonError as exc:
        raise BadFrame(f"a frame's JSON value cannot be encoded: {_short(str(exc))}") from None
    except UnicodeEncodeError:
        raise BadFrame("a frame's JSON value holds a lone UTF-16 surrogate") from None


#: How deep each JSON payload sits in the equivalent JSON frame (``{"args": {...}}`` is one
#: level in, ``{"tools": [{"inputSchema": {...}}]}`` three): the strict reader allows the
#: payload what is left of ``MAX_FRAME_DEPTH``, so both encodings accept the same values.
_PAYLOAD_LEVEL: Final = 1
_TOOL_SCHEMA_LEVEL: Final = 3


class _Reader:
    """Reads the JSON payloads of one message against what is left of its byte budget."""

    __slots__ = ("max_bytes",)

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes

    def object(self, data: bytes, what: str, *, level: int = _PAYLOAD_LEVEL) -> dict[str, Any]:
        try:
            value = strict_loads(data, max_bytes=self.max_bytes, max_depth=MAX_FRAME_DEPTH - level)
        except StrictJsonError as exc:
            raise BadFrame(f"{what} is not strict JSON: {_short(str(exc))}") from None
        if not isinstance(value, dict):
            raise BadFrame(f"{what} is not a JSON object")
        return value


def _int(value: int, what: str) -> int:
    """A protobuf integer held to the strict reader's range (what JSON peers read exactly)."""
    if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        raise BadFrame(f"{what} is out of range (|n| <= 2**53 - 1)")
    return value


def _float(value: float, what: str) -> float:
    """A protobuf double that JSON can carry: finite."""
    if not math.isfinite(value):
        raise BadFrame(f"{what} is not a finite number")
    return value


def _optional_float(message: Any, field: str, what: str) -> float | None:
    return _float(getattr(message, field), what) if message.HasField(field) else None


def _tool_from(message: relay_pb2.Tool, reader: _Reader) -> Tool:
    return Tool(
        name=message.name,
        version=message.version,
        description=message.description,
        input_schema=reader.object(
            message.input_schema_json, "a tool's inputSchema", level=_TOOL_SCHEMA_LEVEL
        ),
        output_schema=(
            reader.object(
                message.output_schema_json, "a tool's outputSchema", level=_TOOL_SCHEMA_LEVEL
            )
            if message.HasField("output_schema_json")
            else None
        ),
    )


def _tool_to(tool: Tool, out: relay_pb2.Tool) -> None:
    out.name = tool.name
    out.version = tool.version
    out.description = tool.description
    out.input_schema_json = _json_bytes(tool.input_schema)
    if tool.output_schema is not None:
        out.output_schema_json = _json_bytes(tool.output_schema)


def _optional(message: Any, field: str) -> Any:
    return getattr(message, field) if message.HasField(field) else None


def _from_proto(case: str, message: Any, reader: _Reader) -> Frame:
    """The typed frame of one ``Frame`` case (raises ``BadFrame`` on a bad payload)."""
    if case == "tool_call":
        return ToolCall(
            call_id=message.call_id,
            tenant=message.tenant,
            device_id=message.device_id,
            tool=message.tool,
            version=message.version,
            args=reader.object(message.args_json, "tool.call args"),
            deadline_ms=_int(message.deadline_ms, "tool.call deadline_ms"),
            caps=Caps(
                timeout_ms=_int(message.caps.timeout_ms, "tool.call caps.timeout_ms"),
                max_bytes=_int(message.caps.max_bytes, "tool.call caps.max_bytes"),
            ),
            traceparent=_optional(message, "traceparent"),
            policy=_optional(message, "policy"),
            audit_id=_optional(message, "audit_id"),
        )
    if case == "tool_result":
        outcome = message.WhichOneof("outcome")
        if outcome is None:
            raise BadFrame("a tool.result has exactly one of result and error")
        error = message.error
        return ToolResult(
            call_id=message.call_id,
            result=(
                reader.object(message.result_json, "tool.result result")
                if outcome == "result_json"
                else None
            ),
            error=(
                WireError(code=error.code, message=error.message, retryable=error.retryable)
                if outcome == "error"
                else None
            ),
            device_rtt_ms=_optional_float(message, "device_rtt_ms", "tool.result device_rtt_ms"),
        )
    if case == "ping":
        return Ping(nonce=message.nonce, sent_at_ms=_float(message.sent_at_ms, "sent_at_ms"))
    if case == "pong":
        return Pong(nonce=message.nonce, sent_at_ms=_float(message.sent_at_ms, "sent_at_ms"))
    if case == "tool_cancel":
        return ToolCancel(call_id=message.call_id, reason=message.reason)
    if case == "tool_progress":
        return ToolProgress(
            call_id=message.call_id,
            progress=_float(message.progress, "tool.progress progress"),
            total=_optional_float(message, "total", "tool.progress total"),
            message=_optional(message, "message"),
        )
    if case == "error":
        return ErrorFrame(
            code=message.code,
            message=message.message,
            retryable=message.retryable,
            call_id=_optional(message, "call_id"),
        )
    if case == "device_hello":
        return DeviceHello(
            bridge_version=message.bridge_version,
            device_id=message.device_id,
            tools=tuple(_tool_from(tool, reader) for tool in message.tools),
        )
    if case == "device_hello_ack":
        return DeviceHelloAck(
            device_id=message.device_id,
            heartbeat_ms=_int(message.heartbeat_ms, "heartbeat_ms"),
            max_frame_bytes=_int(message.max_frame_bytes, "max_frame_bytes"),
            max_in_flight=_int(message.max_in_flight, "max_in_flight"),
        )
    if case == "redirect":
        return Redirect(
            tenant=message.tenant, shard_id=message.shard_id, shard_url=message.shard_url
        )
    if case == "catalog_get":
        return CatalogGet(
            request_id=message.request_id, tenant=message.tenant, device_id=message.device_id
        )
    if case == "catalog":
        return Catalog(
            request_id=message.request_id,
            tenant=message.tenant,
            device_id=message.device_id,
            online=message.online,
            tools=tuple(_tool_from(tool, reader) for tool in message.tools),
            bridge_version=_optional(message, "bridge_version"),
            rtt_ms=_optional_float(message, "rtt_ms", "catalog rtt_ms"),
        )
    raise BadFrame("a frame with no known case is set")  # pragma: no cover - guarded above


def _to_proto(frame: Frame, out: relay_pb2.Frame) -> None:
    """Fill ``out`` with ``frame``."""
    match frame:
        case ToolCall():
            call = out.tool_call
            call.call_id = frame.call_id
            call.tenant = frame.tenant
            call.device_id = frame.device_id
            call.tool = frame.tool
            call.version = frame.version
            call.args_json = _json_bytes(frame.args)
            call.deadline_ms = frame.deadline_ms
            call.caps.timeout_ms = frame.caps.timeout_ms
            call.caps.max_bytes = frame.caps.max_bytes
            if frame.traceparent is not None:
                call.traceparent = frame.traceparent
            if frame.policy is not None:
                call.policy = frame.policy
            if frame.audit_id is not None:
                call.audit_id = frame.audit_id
        case ToolResult():
            result = out.tool_result
            result.call_id = frame.call_id
            if frame.error is not None:
                result.error.code = frame.error.code
                result.error.message = frame.error.message
                result.error.retryable = frame.error.retryable
            else:
                result.result_json = _json_bytes(frame.result)
            if frame.device_rtt_ms is not None:
                result.device_rtt_ms = frame.device_rtt_ms
        case Ping():
            out.ping.nonce = frame.nonce
            out.ping.sent_at_ms = frame.sent_at_ms
        case Pong():
            out.pong.nonce = frame.nonce
            out.pong.sent_at_ms = frame.sent_at_ms
        case ToolCancel():
            out.tool_cancel.call_id = frame.call_id
            out.tool_cancel.reason = frame.reason
        case ToolProgress():
            progress = out.tool_progress
            progress.call_id = frame.call_id
            progress.progress = frame.progress
            if frame.total is not None:
                progress.total = frame.total
            if frame.message is not None:
                progress.message = frame.message
        case ErrorFrame():
            error = out.error
            error.code = frame.code
            error.message = frame.message
            error.retryable = frame.retryable
            if frame.call_id is not None:
                error.call_id = frame.call_id
        case DeviceHello():
            hello = out.device_hello
            hello.bridge_version = frame.bridge_version
            hello.device_id = frame.device_id
            for tool in frame.tools:
                _tool_to(tool, hello.tools.add())
        case DeviceHelloAck():
            ack = out.device_hello_ack
            ack.device_id = frame.device_id
            ack.heartbeat_ms = frame.heartbeat_ms
            ack.max_frame_bytes = frame.max_frame_bytes
            ack.max_in_flight = frame.max_in_flight
        case Redirect():
            out.redirect.tenant = frame.tenant
            out.redirect.shard_id = frame.shard_id
            out.redirect.shard_url = frame.shard_url
        case CatalogGet():
            out.catalog_get.request_id = frame.request_id
            out.catalog_get.tenant = frame.tenant
            out.catalog_get.device_id = frame.device_id
        case Catalog():
            catalog = out.catalog
            catalog.request_id = frame.request_id
            catalog.tenant = frame.tenant
            catalog.device_id = frame.device_id
            catalog.online = frame.online
            for tool in frame.tools:
                _tool_to(tool, catalog.tools.add())
            if frame.bridge_version is not None:
                catalog.bridge_version = frame.bridge_version
            if frame.rtt_ms is not None:
                catalog.rtt_ms = frame.rtt_ms


#: What the schemas ask of a call's ``args`` and of a ``result`` is only ``"type": "object"``,
#: which the strict reader has checked already; the schema check sees this in their place,
#: so it does not walk (and the converter does not copy) a payload of up to a megabyte.
_CHECKED_OBJECT: Final[dict[str, Any]] = {}


def _schema_body(frame: Frame) -> dict[str, Any]:
    """The JSON body the JSON codec would check for ``frame`` (payloads stood in for)."""
    if type(frame) is Ping or type(frame) is Pong:
        return {"type": frame.TYPE, "nonce": frame.nonce, "sent_at_ms": frame.sent_at_ms}
    if type(frame) is ToolCall:
        frame = attrs.evolve(frame, args=_CHECKED_OBJECT)
    elif type(frame) is ToolResult and frame.result is not None:
        frame = attrs.evolve(frame, result=_CHECKED_OBJECT)
    return {"type": frame.TYPE, **_CONVERTER.unstructure(frame)}


def _check(frame: Frame) -> None:
    """The frame's JSON Schema, on the body the JSON codec would check (the same bounds)."""
    error = schema_error(frame.TYPE, _schema_body(frame))
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path) or "(frame)"
        call_id = getattr(frame, "call_id", None)
        if not (isinstance(call_id, str) and matches_pattern(_ID_PATTERN, call_id)):
            call_id = None
        raise BadFrame(
            f"{frame.TYPE} frame is invalid at {where}: {_short(error.message)}", call_id=call_id
        )


def _call_id_of(message: Any) -> str | None:
    """The ``call_id`` of a frame's message, if it has one that is a valid id."""
    call_id = getattr(message, "call_id", None)
    return call_id if isinstance(call_id, str) and matches_pattern(_ID_PATTERN, call_id) else None


def decode_binary_batch(
    data: bytes | bytearray | memoryview, *, max_bytes: int, validate: bool = True
) -> list[Frame | BadFrame]:
    """Check and parse one binary message from the network: its frames, in order.

    A frame that cannot be accepted but names its call stands as its ``BadFrame`` (with
    that ``call_id``) in its place: only that call fails; the message's other frames are
    delivered. Every frame is checked before the list is returned.

    Args:
        data: one WebSocket binary message.
        max_bytes: the largest message accepted (the connection's frame limit).
        validate: check every frame against its JSON Schema (the relay does; its peers, who
            trust it, pass False, as with the JSON codec).

    Returns:
        One or more typed frames, or ``BadFrame`` for a call's frame that was refused.

    Raises:
        BadFrame: the message itself is refused: oversized, not a ``FrameBatch``, empty,
            more than ``MAX_FRAMES_PER_MESSAGE`` frames, a frame with no case, or a refused
            frame that names no call.
    """
    if isinstance(data, str):
        raise BadFrame(f"a text message on {BINARY_SUBPROTOCOL} (frames are binary)")
    check_inbound_size(len(data), max_bytes)
    batch = relay_pb2.FrameBatch()
    try:
        batch.ParseFromString(bytes(data))
    except DecodeError:
        raise BadFrame(f"message is not a {BINARY_SUBPROTOCOL} frame batch") from None
    count = len(batch.frames)
    if not count:
        raise BadFrame("a binary message with no frame")
    if count > MAX_FRAMES_PER_MESSAGE:
        raise BadFrame(f"{count} frames in one message (at most {MAX_FRAMES_PER_MESSAGE})")
    reader = _Reader(max_bytes)
    frames: list[Frame | BadFrame] = []
    for message in batch.frames:
        case = message.WhichOneof("frame")
        if case is None:
            raise BadFrame(f"a frame with no known case for {BINARY_SUBPROTOCOL}")
        inner = getattr(message, case)
        try:
            try:
                frame = _from_proto(case, inner, reader)
            except (ValueError, TypeError) as exc:
                raise BadFrame(f"{case} frame cannot be read: {_short(str(exc))}") from None
            if validate:
                _check(frame)
        except BadFrame as exc:
            call_id = exc.call_id or _call_id_of(inner)
            if call_id is None:
                raise
            frames.append(BadFrame(exc.message, call_id=call_id))
            continue
        frames.append(frame)
    return frames


def decode_binary_frames(
    data: bytes | bytearray | memoryview, *, max_bytes: int, validate: bool = True
) -> list[Frame]:
    """Every frame of one binary message, or ``BadFrame`` for the first that is refused.

    As :func:`decode_binary_batch`, for callers that take a message whole or not at all
    (a ``device.hello``, tests).

    Raises:
        BadFrame: as ``decode_binary_batch``, and for any refused frame (``call_id`` is set
            when it had a readable one).
    """
    frames: list[Frame] = []
    for item in decode_binary_batch(data, max_bytes=max_bytes, validate=validate):
        if isinstance(item, BadFrame):
            raise item
        frames.append(item)
    return frames


def encode_binary_frames(frames: Sequence[Frame], *, validate: bool = True) -> bytes:
    """One binary message carrying ``frames`` (at least one) in order.

    Args:
        frames: the frames to send together.
        validate: check each against its schema first (see ``encode_frame``).

    Raises:
        BadFrame: no frames, too many, a value JSON cannot carry, or a schema refuses one.
    """
    if not frames or len(frames) > MAX_FRAMES_PER_MESSAGE:
        raise BadFrame(f"a binary message holds 1 to {MAX_FRAMES_PER_MESSAGE} frames")
    batch = relay_pb2.FrameBatch()
    for frame in frames:
        if validate:
            try:
                _check(frame)
            except BadFrame as exc:
                raise BadFrame(f"refusing to send an invalid frame: {exc.message}") from None
        try:
            _to_proto(frame, batch.frames.add())
        except (ValueError, TypeError) as exc:
            # A string with a lone surrogate, an integer beyond int64: not a frame to send.
            raise BadFrame(f"{frame.TYPE} frame cannot be encoded: {_short(str(exc))}") from None
    return batch.SerializeToString()


def encode_binary_for_link(frame: Frame, *, limit: int, link: str, validate: bool = False) -> bytes:
    """One frame as a binary message, checked against the limit of the link it leaves on.

    Messages made this way may be sent one by one or joined (``b"".join``): a
    ``FrameBatch`` is a repeated field, so concatenated batches are one batch holding their
    frames in order.

    Raises:
        BadFrame: it cannot be encoded, or it is larger than ``limit``; ``call_id`` names
            the frame's call (if it has one) so that only that call fails.
    """
    call_id = getattr(frame, "call_id", None)
    try:
        data = encode_binary_frames([frame], validate=validate)
    except BadFrame as exc:
        raise BadFrame(exc.message, call_id=call_id) from None
    check_outbound_size(len(data), limit, link=link, frame_type=frame.TYPE, call_id=call_id)
    return data
