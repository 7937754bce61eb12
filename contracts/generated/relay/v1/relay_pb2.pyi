from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FrameBatch(_message.Message):
    __slots__ = ("frames",)
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    frames: _containers.RepeatedCompositeFieldContainer[Frame]
    def __init__(self, frames: _Optional[_Iterable[_Union[Frame, _Mapping]]] = ...) -> None: ...

class Frame(_message.Message):
    __slots__ = ("device_hello", "device_hello_ack", "ping", "pong", "tool_call", "tool_result", "tool_cancel", "tool_progress", "error", "redirect", "catalog_get", "catalog")
    DEVICE_HELLO_FIELD_NUMBER: _ClassVar[int]
    DEVICE_HELLO_ACK_FIELD_NUMBER: _ClassVar[int]
    PING_FIELD_NUMBER: _ClassVar[int]
    PONG_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALL_FIELD_NUMBER: _ClassVar[int]
    TOOL_RESULT_FIELD_NUMBER: _ClassVar[int]
    TOOL_CANCEL_FIELD_NUMBER: _ClassVar[int]
    TOOL_PROGRESS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    REDIRECT_FIELD_NUMBER: _ClassVar[int]
    CATALOG_GET_FIELD_NUMBER: _ClassVar[int]
    CATALOG_FIELD_NUMBER: _ClassVar[int]
    device_hello: DeviceHello
    device_hello_ack: DeviceHelloAck
    ping: Ping
    pong: Pong
    tool_call: ToolCall
    tool_result: ToolResult
    tool_cancel: ToolCancel
    tool_progress: ToolProgress
    error: Error
    redirect: Redirect
    catalog_get: CatalogGet
    catalog: Catalog
    def __init__(self, device_hello: _Optional[_Union[DeviceHello, _Mapping]] = ..., device_hello_ack: _Optional[_Union[DeviceHelloAck, _Mapping]] = ..., ping: _Optional[_Union[Ping, _Mapping]] = ..., pong: _Optional[_Union[Pong, _Mapping]] = ..., tool_call: _Optional[_Union[ToolCall, _Mapping]] = ..., tool_result: _Optional[_Union[ToolResult, _Mapping]] = ..., tool_cancel: _Optional[_Union[ToolCancel, _Mapping]] = ..., tool_progress: _Optional[_Union[ToolProgress, _Mapping]] = ..., error: _Optional[_Union[Error, _Mapping]] = ..., redirect: _Optional[_Union[Redirect, _Mapping]] = ..., catalog_get: _Optional[_Union[CatalogGet, _Mapping]] = ..., catalog: _Optional[_Union[Catalog, _Mapping]] = ...) -> None: ...

class Tool(_message.Message):
    __slots__ = ("name", "version", "description", "input_schema_json", "output_schema_json")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    INPUT_SCHEMA_JSON_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_SCHEMA_JSON_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    description: str
    input_schema_json: bytes
    output_schema_json: bytes
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., description: _Optional[str] = ..., input_schema_json: _Optional[bytes] = ..., output_schema_json: _Optional[bytes] = ...) -> None: ...

class Caps(_message.Message):
    __slots__ = ("timeout_ms", "max_bytes")
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_BYTES_FIELD_NUMBER: _ClassVar[int]
    timeout_ms: int
    max_bytes: int
    def __init__(self, timeout_ms: _Optional[int] = ..., max_bytes: _Optional[int] = ...) -> None: ...

class WireError(_message.Message):
    __slots__ = ("code", "message", "retryable")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RETRYABLE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    retryable: bool
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ..., retryable: _Optional[bool] = ...) -> None: ...

class DeviceHello(_message.Message):
    __slots__ = ("bridge_version", "device_id", "tools")
    BRIDGE_VERSION_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    bridge_version: str
    device_id: str
    tools: _containers.RepeatedCompositeFieldContainer[Tool]
    def __init__(self, bridge_version: _Optional[str] = ..., device_id: _Optional[str] = ..., tools: _Optional[_Iterable[_Union[Tool, _Mapping]]] = ...) -> None: ...

class DeviceHelloAck(_message.Message):
    __slots__ = ("device_id", "heartbeat_ms", "max_frame_bytes", "max_in_flight")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_FRAME_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    heartbeat_ms: int
    max_frame_bytes: int
    max_in_flight: int
    def __init__(self, device_id: _Optional[str] = ..., heartbeat_ms: _Optional[int] = ..., max_frame_bytes: _Optional[int] = ..., max_in_flight: _Optional[int] = ...) -> None: ...

class Ping(_message.Message):
    __slots__ = ("nonce", "sent_at_ms")
    NONCE_FIELD_NUMBER: _ClassVar[int]
    SENT_AT_MS_FIELD_NUMBER: _ClassVar[int]
    nonce: str
    sent_at_ms: float
    def __init__(self, nonce: _Optional[str] = ..., sent_at_ms: _Optional[float] = ...) -> None: ...

class Pong(_message.Message):
    __slots__ = ("nonce", "sent_at_ms")
    NONCE_FIELD_NUMBER: _ClassVar[int]
    SENT_AT_MS_FIELD_NUMBER: _ClassVar[int]
    nonce: str
    sent_at_ms: float
    def __init__(self, nonce: _Optional[str] = ..., sent_at_ms: _Optional[float] = ...) -> None: ...

class ToolCall(_message.Message):
    __slots__ = ("call_id", "tenant", "device_id", "tool", "version", "args_json", "deadline_ms", "caps", "traceparent", "policy", "audit_id")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    TOOL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ARGS_JSON_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_MS_FIELD_NUMBER: _ClassVar[int]
    CAPS_FIELD_NUMBER: _ClassVar[int]
    TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    AUDIT_ID_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    tenant: str
    device_id: str
    tool: str
    version: str
    args_json: bytes
    deadline_ms: int
    caps: Caps
    traceparent: str
    policy: str
    audit_id: str
    def __init__(self, call_id: _Optional[str] = ..., tenant: _Optional[str] = ..., device_id: _Optional[str] = ..., tool: _Optional[str] = ..., version: _Optional[str] = ..., args_json: _Optional[bytes] = ..., deadline_ms: _Optional[int] = ..., caps: _Optional[_Union[Caps, _Mapping]] = ..., traceparent: _Optional[str] = ..., policy: _Optional[str] = ..., audit_id: _Optional[str] = ...) -> None: ...

class ToolResult(_message.Message):
    __slots__ = ("call_id", "result_json", "error", "device_rtt_ms")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    DEVICE_RTT_MS_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    result_json: bytes
    error: WireError
    device_rtt_ms: float
    def __init__(self, call_id: _Optional[str] = ..., result_json: _Optional[bytes] = ..., error: _Optional[_Union[WireError, _Mapping]] = ..., device_rtt_ms: _Optional[float] = ...) -> None: ...

class ToolCancel(_message.Message):
    __slots__ = ("call_id", "reason")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    reason: str
    def __init__(self, call_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ToolProgress(_message.Message):
    __slots__ = ("call_id", "progress", "total", "message")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    progress: float
    total: float
    message: str
    def __init__(self, call_id: _Optional[str] = ..., progress: _Optional[float] = ..., total: _Optional[float] = ..., message: _Optional[str] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("code", "message", "retryable", "call_id")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RETRYABLE_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    retryable: bool
    call_id: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ..., retryable: _Optional[bool] = ..., call_id: _Optional[str] = ...) -> None: ...

class Redirect(_message.Message):
    __slots__ = ("tenant", "shard_id", "shard_url")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    SHARD_ID_FIELD_NUMBER: _ClassVar[int]
    SHARD_URL_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    shard_id: str
    shard_url: str
    def __init__(self, tenant: _Optional[str] = ..., shard_id: _Optional[str] = ..., shard_url: _Optional[str] = ...) -> None: ...

class CatalogGet(_message.Message):
    __slots__ = ("request_id", "tenant", "device_id")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    tenant: str
    device_id: str
    def __init__(self, request_id: _Optional[str] = ..., tenant: _Optional[str] = ..., device_id: _Optional[str] = ...) -> None: ...

class Catalog(_message.Message):
    __slots__ = ("request_id", "tenant", "device_id", "online", "tools", "bridge_version", "rtt_ms")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    ONLINE_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    BRIDGE_VERSION_FIELD_NUMBER: _ClassVar[int]
    RTT_MS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    tenant: str
    device_id: str
    online: bool
    tools: _containers.RepeatedCompositeFieldContainer[Tool]
    bridge_version: str
    rtt_ms: float
    def __init__(self, request_id: _Optional[str] = ..., tenant: _Optional[str] = ..., device_id: _Optional[str] = ..., online: _Optional[bool] = ..., tools: _Optional[_Iterable[_Union[Tool, _Mapping]]] = ..., bridge_version: _Optional[str] = ..., rtt_ms: _Optional[float] = ...) -> None: ...
