"""Relay frames (subprotocol ``zl.relay.v1``): typed classes and the JSON codec.

Every frame is one JSON object in one WebSocket text message; its ``type`` names its
schema in ``contracts/api/relay/v1/<type>.schema.json``. ``decode_frame`` is where a frame
from the network is checked (size, JSON, schema) and becomes a frozen attrs object; past
it, the frame is trusted. All failures raise ``BadFrame`` (``relay.bad_frame``).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, Final, NoReturn

import attrs
import cattrs
import fastjsonschema
import jsonschema
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from actors.errors import WireError
from contracts import load_json

from ._errors import BadFrame

#: The WebSocket subprotocol; a peer that does not offer it is refused at the upgrade.
SUBPROTOCOL: Final = "zl.relay.v1"
#: A frame larger than this is refused before it is parsed. 1 MiB holds a tool result with
#: a generous ``maxBytes`` cap; the relay's config can lower it.
DEFAULT_MAX_FRAME_BYTES: Final = 1024 * 1024
SCHEMA_DIR: Final = "api/relay/v1"
#: The id pattern of ``common.schema.json`` (tenants, devices, hosts, calls, shards).
ID_PATTERN: Final = "^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"
#: Schema messages can quote the offending value; this bounds what goes back to the peer.
MAX_ERROR_MESSAGE_CHARS: Final = 300


@attrs.frozen(kw_only=True)
class Tool:
    """One entry of a device's catalog: what MCP ``tools/list`` says, plus a version."""

    name: str
    version: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any] | None = None


@attrs.frozen(kw_only=True)
class Caps:
    """Limits on one call that the device enforces as a second line of defence."""

    timeout_ms: int
    max_bytes: int


@attrs.frozen(kw_only=True)
class DeviceHello:
    """Bridge → relay, first frame: the bridge's version, device id and tool catalog."""

    TYPE: ClassVar[str] = "device.hello"
    bridge_version: str
    device_id: str
    tools: tuple[Tool, ...]


@attrs.frozen(kw_only=True)
class DeviceHelloAck:
    """Relay → bridge: hello accepted; the settings of this connection."""

    TYPE: ClassVar[str] = "device.hello.ack"
    device_id: str
    heartbeat_ms: int
    max_frame_bytes: int
    max_in_flight: int


@attrs.frozen(kw_only=True)
class Ping:
    """Either side: are you there? ``sent_at_ms`` is on the sender's monotonic clock."""

    TYPE: ClassVar[str] = "ping"
    nonce: str
    sent_at_ms: float


@attrs.frozen(kw_only=True)
class Pong:
    """The answer to a ``Ping``: its nonce and ``sent_at_ms`` echoed, for the round trip."""

    TYPE: ClassVar[str] = "pong"
    nonce: str
    sent_at_ms: float


@attrs.frozen(kw_only=True)
class ToolCall:
    """Host → relay → bridge: run ``tool`` at ``version``.

    ``deadline_ms`` is the time left for the call when the frame was sent; relative, so
    the host's and the device's clocks need not agree.
    """

    TYPE: ClassVar[str] = "tool.call"
    call_id: str
    tenant: str
    device_id: str
    tool: str
    version: str
    args: dict[str, Any]
    deadline_ms: int
    caps: Caps
    traceparent: str | None = None
    #: The compact JWS of the policy bundle the host decided the call under.
    policy: str | None = None


def _exactly_one_outcome(instance: ToolResult, _: attrs.Attribute[Any], __: object) -> None:
    if (instance.result is None) == (instance.error is None):
        raise ValueError("a tool.result has exactly one of result and error")


@attrs.frozen(kw_only=True)
class ToolResult:
    """Bridge → relay → host: how a call ended, exactly one of ``result`` and ``error``.

    ``device_rtt_ms`` is set by the relay on results it forwards from a device: the last
    relay↔device round trip it measured with ping/pong (absent before the first pong).
    """

    TYPE: ClassVar[str] = "tool.result"
    call_id: str
    result: dict[str, Any] | None = None
    error: WireError | None = attrs.field(default=None, validator=_exactly_one_outcome)
    device_rtt_ms: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@attrs.frozen(kw_only=True)
class ToolCancel:
    """Host → relay → bridge: stop a call. The bridge still answers with a ``ToolResult``."""

    TYPE: ClassVar[str] = "tool.cancel"
    call_id: str
    reason: str


@attrs.frozen(kw_only=True)
class ToolProgress:
    """Bridge → relay → host, optional: how far a call has got."""

    TYPE: ClassVar[str] = "tool.progress"
    call_id: str
    progress: float
    total: float | None = None
    message: str | None = None


@attrs.frozen(kw_only=True)
class ErrorFrame:
    """Either side: a typed error about the connection or, with ``call_id``, one call."""

    TYPE: ClassVar[str] = "error"
    code: str
    message: str
    retryable: bool
    call_id: str | None = None

    @classmethod
    def from_wire(cls, error: WireError, *, call_id: str | None = None) -> ErrorFrame:
        return cls(
            code=error.code, message=error.message, retryable=error.retryable, call_id=call_id
        )

    def to_wire(self) -> WireError:
        return WireError(code=self.code, message=self.message, retryable=self.retryable)


@attrs.frozen(kw_only=True)
class Redirect:
    """Relay → host or bridge: ``tenant`` belongs to another shard; reconnect to ``shard_url``."""

    TYPE: ClassVar[str] = "redirect"
    tenant: str
    shard_id: str
    shard_url: str


@attrs.frozen(kw_only=True)
class CatalogGet:
    """Host → relay: which tools does a device offer now (answered by ``Catalog``)."""

    TYPE: ClassVar[str] = "catalog.get"
    request_id: str
    tenant: str
    device_id: str


@attrs.frozen(kw_only=True)
class Catalog:
    """Relay → host: a device's catalog; ``online`` false (and no tools) when it is not connected.

    ``rtt_ms`` is the last relay↔device round trip measured with ping/pong.
    """

    TYPE: ClassVar[str] = "catalog"
    request_id: str
    tenant: str
    device_id: str
    online: bool
    tools: tuple[Tool, ...]
    bridge_version: str | None = None
    rtt_ms: float | None = None


Frame = (
    DeviceHello
    | DeviceHelloAck
    | Ping
    | Pong
    | ToolCall
    | ToolResult
    | ToolCancel
    | ToolProgress
    | ErrorFrame
    | Redirect
    | CatalogGet
    | Catalog
)

FRAME_CLASSES: Final[dict[str, type[Frame]]] = {
    cls.TYPE: cls
    for cls in (
        DeviceHello,
        DeviceHelloAck,
        Ping,
        Pong,
        ToolCall,
        ToolResult,
        ToolCancel,
        ToolProgress,
        ErrorFrame,
        Redirect,
        CatalogGet,
        Catalog,
    )
}

# --- cattrs: snake_case in Python, the wire's own names where it borrows MCP's ----------

#: Wire names that differ from the attribute names: MCP's and the policy caps' camelCase.
_RENAMES: Final[dict[type, dict[str, str]]] = {
    Tool: {"input_schema": "inputSchema", "output_schema": "outputSchema"},
    Caps: {"timeout_ms": "timeoutMs", "max_bytes": "maxBytes"},
}


def _make_converter() -> cattrs.Converter:
    converter = cattrs.Converter()
    for cls in (Tool, Caps, WireError, *FRAME_CLASSES.values()):
        renames = {name: override(rename=wire) for name, wire in _RENAMES.get(cls, {}).items()}
        converter.register_structure_hook(
            cls,
            make_dict_structure_fn(cls, converter, **renames),  # type: ignore[arg-type]
        )
        # Optional fields that are None are left out, as the schemas have no nulls.
        converter.register_unstructure_hook(
            cls,
            make_dict_unstructure_fn(
                cls,
                converter,
                _cattrs_omit_if_default=True,
                **renames,  # type: ignore[arg-type]
            ),
        )
    return converter


_CONVERTER: Final = _make_converter()

# --- schemas --------------------------------------------------------------------------


def _ecma_pattern(
    validator: jsonschema.protocols.Validator,
    pattern: str,
    instance: object,
    schema: dict[str, Any],
) -> Iterator[jsonschema.ValidationError]:
    """``pattern`` with JSON Schema's (ECMA-262) meaning of ``$``: the very end of the string.

    Python's ``$`` also matches before a final newline, which would let ``"acme\\n"``
    through as a tenant id that ``^[a-z]+$`` is meant to refuse.
    """
    if isinstance(instance, str) and _compiled_pattern(pattern).search(instance) is None:
        yield jsonschema.ValidationError(f"{instance[:40]!r} does not match {pattern!r}")


@functools.cache
def _compiled_pattern(pattern: str) -> re.Pattern[str]:
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


def matches_pattern(pattern: str, value: str) -> bool:
    """Whether ``value`` matches a schema ``pattern``, with JSON Schema's meaning of ``$``."""
    return _compiled_pattern(pattern).search(value) is not None


_Validator: Final = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
    jsonschema.Draft202012Validator, {"pattern": _ecma_pattern}
)


_COMMON_REF: Final = "common.schema.json#/$defs/"


def _inline_common(node: Any) -> Any:
    """A copy of ``node`` whose references to ``common.schema.json`` point at local ``$defs``."""
    if isinstance(node, dict):
        return {
            key: (
                "#/$defs/" + value.removeprefix(_COMMON_REF)
                if key == "$ref" and isinstance(value, str) and value.startswith(_COMMON_REF)
                else _inline_common(value)
            )
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_inline_common(item) for item in node]
    return node


@functools.cache
def frame_validator(frame_type: str) -> jsonschema.protocols.Validator:
    """The compiled validator for one frame type (built once, then cached).

    The shared definitions are copied into the frame's schema, so the validator is
    self-contained and needs no registry of other documents.

    Raises:
        KeyError: ``frame_type`` is not a v1 frame.
    """
    validator: jsonschema.protocols.Validator = _Validator(_frame_schema(frame_type))
    return validator


def _frame_schema(frame_type: str) -> dict[str, Any]:
    cls = FRAME_CLASSES[frame_type]
    schema: dict[str, Any] = _inline_common(load_json(f"{SCHEMA_DIR}/{cls.TYPE}.schema.json"))
    common = load_json(f"{SCHEMA_DIR}/common.schema.json")
    schema["$defs"] = _inline_common(common["$defs"])
    return schema


#: The JSON Schema dialect ``fastjsonschema`` compiles; the v1 schemas use no keyword
#: that draft 7 lacks (a test holds both validators to the same verdicts).
_FAST_DIALECT: Final = "http://json-schema.org/draft-07/schema#"


def _ecma_patterns(node: Any) -> Any:
    """A copy of ``node`` whose ``pattern`` values end in ``\\Z`` instead of ``$``."""
    if isinstance(node, dict):
        return {
            key: (
                _compiled_pattern(value).pattern
                if key == "pattern" and isinstance(value, str)
                else _ecma_patterns(value)
            )
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_ecma_patterns(item) for item in node]
    return node


@functools.cache
def fast_frame_check(frame_type: str) -> Callable[[Any], Any]:
    """A compiled yes/no check of one frame type (``fastjsonschema``; built once).

    Ten times cheaper than ``frame_validator`` on valid frames, which is what a relay
    mostly sees; a frame it refuses is checked again by ``frame_validator`` for the
    message (and the verdict), so errors read the same.

    Raises:
        KeyError: ``frame_type`` is not a v1 frame.
    """
    schema: dict[str, Any] = _ecma_patterns(_frame_schema(frame_type))
    schema["$schema"] = _FAST_DIALECT
    check: Callable[[Any], Any] = fastjsonschema.compile(schema, use_default=False)
    return check


def schema_error(frame_type: str, body: Any) -> jsonschema.ValidationError | None:
    """The most relevant reason ``body`` is not a valid ``frame_type`` frame, or None."""
    try:
        fast_frame_check(frame_type)(body)
    except fastjsonschema.JsonSchemaException:
        error: jsonschema.ValidationError | None = jsonschema.exceptions.best_match(
            frame_validator(frame_type).iter_errors(body)
        )
        return error
    return None


# --- codec ----------------------------------------------------------------------------


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Two values for one key are read differently by different parsers: refuse both.
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate key in object")
    return result


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number {text[:20]} is out of range")
    return value


def _short(text: str) -> str:
    return text if len(text) <= MAX_ERROR_MESSAGE_CHARS else text[:MAX_ERROR_MESSAGE_CHARS] + "…"


def decode_frame(data: bytes | str, *, max_bytes: int, validate: bool = True) -> Frame:
    """Check and parse one frame from the network.

    Args:
        data: one WebSocket message (text, or binary holding UTF-8 JSON).
        max_bytes: the largest frame accepted, counted in UTF-8 bytes.
        validate: check the frame against its JSON Schema. Frames enter the system at the
            relay, which validates everything devices and hosts send; the relay's own peers
            (the host link, the bridge) pass False and trust it, which halves the CPU each
            call costs them. Without it the size, JSON, ``type`` and field types are still
            checked (a frame that cannot be read is still ``BadFrame``).

    Returns:
        The typed frame.

    Raises:
        BadFrame: oversized, not UTF-8, not JSON (including duplicate keys, NaN and
            numbers out of range), not an object, an unknown ``type``, or invalid for its
            schema. ``call_id`` is set on the error when the frame had a readable one.
    """
    # A str has at least as many UTF-8 bytes as characters: the cheap test runs first.
    if len(data) > max_bytes:
        raise BadFrame(f"frame of at least {len(data)} bytes exceeds the {max_bytes}-byte limit")
    try:
        raw = data.encode("utf-8") if isinstance(data, str) else data
        if len(raw) > max_bytes:
            raise BadFrame(f"frame of {len(raw)} bytes exceeds the {max_bytes}-byte limit")
        parsed = json.loads(
            raw.decode("utf-8"),
            object_pairs_hook=_refuse_duplicates,
            parse_constant=_refuse_constant,
            parse_float=_finite_float,
        )
    except (UnicodeError, ValueError, RecursionError) as exc:
        raise BadFrame(f"frame is not JSON: {_short(str(exc))}") from None
    if not isinstance(parsed, dict):
        raise BadFrame("frame is not a JSON object")
    call_id = parsed.get("call_id")
    # Only a well-formed id is handed back: the error may be echoed to the peer.
    if not (isinstance(call_id, str) and matches_pattern(ID_PATTERN, call_id)):
        call_id = None
    frame_type = parsed.get("type")
    cls = FRAME_CLASSES.get(frame_type) if isinstance(frame_type, str) else None
    if cls is None:
        shown = _short(repr(frame_type))
        raise BadFrame(f"unknown frame type {shown} for {SUBPROTOCOL}", call_id=call_id)
    error = schema_error(cls.TYPE, parsed) if validate else None
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path) or "(frame)"
        raise BadFrame(
            f"{cls.TYPE} frame is invalid at {where}: {_short(error.message)}", call_id=call_id
        )
    del parsed["type"]
    try:
        return _CONVERTER.structure(parsed, cls)
    except (cattrs.BaseValidationError, ValueError, TypeError) as exc:
        # Only reachable if a schema and its class disagree: still the peer's frame at fault.
        raise BadFrame(f"{cls.TYPE} frame cannot be read: {_short(str(exc))}") from None


def encode_frame(frame: Frame, *, validate: bool = True) -> str:
    """Turn a frame into the compact JSON text of one WebSocket message.

    Args:
        frame: the frame to send.
        validate: check the result against the frame's schema first, so this side never
            sends what the other side must refuse. Turn off only on hot paths whose
            content was already checked (a result relayed unchanged).

    Returns:
        The JSON text.

    Raises:
        BadFrame: the frame holds a value JSON cannot carry (NaN, infinity) or does not
            satisfy its schema.
    """
    body = {"type": frame.TYPE, **_CONVERTER.unstructure(frame)}
    if validate:
        error = schema_error(frame.TYPE, body)
        if error is not None:
            where = "/".join(str(part) for part in error.absolute_path) or "(frame)"
            raise BadFrame(
                f"refusing to send an invalid {frame.TYPE} frame at {where}: "
                f"{_short(error.message)}"
            )
    try:
        text = json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError as exc:
        raise BadFrame(f"{frame.TYPE} frame is not JSON: {exc}") from None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate (legal in a JSON escape, so a peer may have sent one) cannot be
        # UTF-8: escape everything instead, which carries it unchanged.
        text = json.dumps(body, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return text
