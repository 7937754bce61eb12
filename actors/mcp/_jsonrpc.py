"""JSON-RPC 2.0 messages and MCP's stdio line framing, shared by MCP clients and servers.

::

    McpError                     (Exception) anything wrong with MCP traffic
     └── JsonRpcError            a JSON-RPC error object to send back (.code, .data, .request_id)

On stdio, MCP puts exactly one JSON-RPC message on each line (UTF-8, ``\\n``-terminated,
no embedded newlines). :class:`LineSplitter` cuts a byte stream into such lines with a
bounded buffer, :func:`parse_message` turns one line into a typed message (or raises the
:class:`JsonRpcError` the peer should get back), and :func:`encode_message` does the
reverse. Nothing here does I/O, so both ends reuse it and test it without processes.
"""

from __future__ import annotations

import json
from typing import Any, TypeAlias

import attrs

from actors.strict_json import StrictJsonError, loads

JSONRPC_VERSION = "2.0"

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
# MCP 2026-07-28 allocates -32020..-32099; -32022 is "UnsupportedProtocolVersion".
UNSUPPORTED_PROTOCOL_VERSION = -32022

MAX_LINE_BYTES = 1024 * 1024
"""Longest line a reader keeps. Requests are small; a longer line is reported and skipped
so one bad peer cannot make the reader hold an unbounded buffer."""

RequestId: TypeAlias = str | int


class McpError(Exception):
    """Base of every error about MCP traffic itself (framing, JSON-RPC, protocol era)."""


class JsonRpcError(McpError):
    """A failure that is answered with a JSON-RPC error object.

    Args:
        code: the JSON-RPC error code (standard or MCP-defined).
        message: a short description for a person.
        data: optional structured detail (JSON-serialisable).
        request_id: the id of the request that failed, or ``None`` if it could not be read.
        from_notification: the bad message was a notification (it had a method and no id);
            JSON-RPC never answers those, so the receiver only logs it.
    """

    def __init__(
        self,
        code: int,
        message: str,
        *,
        data: Any = None,
        request_id: RequestId | None = None,
        from_notification: bool = False,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.data = data
        self.request_id = request_id
        self.from_notification = from_notification

    def with_request_id(self, request_id: RequestId | None) -> JsonRpcError:
        """The same error bound to ``request_id``."""
        return JsonRpcError(self.code, self.message, data=self.data, request_id=request_id)

    def to_response(self) -> ErrorResponse:
        """The error response message carrying this error."""
        return ErrorResponse(
            id=self.request_id,
            error=ErrorObject(code=self.code, message=self.message, data=self.data),
        )


@attrs.frozen(kw_only=True)
class Request:
    """A call that expects exactly one response with the same id."""

    id: RequestId
    method: str
    params: dict[str, Any] | None = None


@attrs.frozen(kw_only=True)
class Notification:
    """A one-way message; it never gets a response."""

    method: str
    params: dict[str, Any] | None = None


@attrs.frozen(kw_only=True)
class Response:
    """A successful answer to the request with the same id."""

    id: RequestId
    result: dict[str, Any]


@attrs.frozen(kw_only=True)
class ErrorObject:
    """The ``error`` member of an error response."""

    code: int
    message: str
    data: Any = None


@attrs.frozen(kw_only=True)
class ErrorResponse:
    """A failed answer; ``id`` is ``None`` when the request's id could not be read."""

    id: RequestId | None
    error: ErrorObject


@attrs.frozen(kw_only=True)
class OversizedLine:
    """A line longer than the splitter's limit; its bytes were dropped."""

    size: int


Message: TypeAlias = Request | Notification | Response | ErrorResponse


def _salvage_id(line: bytes | str) -> RequestId | None:
    """The ``id`` of a line that is JSON but not strict JSON (e.g. a huge number inside)."""
    try:
        raw = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if isinstance(raw, dict):
        value = raw.get("id")
        if _is_request_id(value):
            return value
    return None


def _is_request_id(value: Any) -> bool:
    # bool is an int subclass in Python but not a JSON-RPC id; MCP forbids null ids.
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def parse_message(line: bytes | str) -> Message:
    """Parse one framed line into a typed JSON-RPC message.

    Args:
        line: one line without its trailing newline (a trailing ``\\r`` is tolerated).

    Returns:
        The request, notification, response or error response it holds.

    Raises:
        JsonRpcError: ``PARSE_ERROR`` for bytes that are not UTF-8 strict JSON
            (``actors.strict_json``: no integer past 2**53, lone surrogate, NaN, duplicate
            key or deep nesting), ``INVALID_REQUEST``
            for JSON that is not a single JSON-RPC 2.0 message (batches included: MCP
            dropped them). ``request_id`` is set whenever the id could be read, so the
            peer can match the error to its request.
    """
    try:
        raw = loads(line)
    except StrictJsonError as exc:
        # Say which request it was if the id can be read at all, so that the call waiting
        # for it fails now rather than at its deadline.
        raise JsonRpcError(
            PARSE_ERROR, f"parse error: {exc}", request_id=_salvage_id(line)
        ) from None
    if isinstance(raw, list):
        raise JsonRpcError(INVALID_REQUEST, "invalid request: JSON-RPC batches are not supported")
    if not isinstance(raw, dict):
        raise JsonRpcError(INVALID_REQUEST, "invalid request: a message must be a JSON object")
    raw_id = raw.get("id")
    known_id: RequestId | None = raw_id if _is_request_id(raw_id) else None
    if raw.get("jsonrpc") != JSONRPC_VERSION:
        raise JsonRpcError(
            INVALID_REQUEST, 'invalid request: "jsonrpc" must be "2.0"', request_id=known_id
        )
    if "method" in raw:
        return _parse_call(raw, known_id)
    if "result" in raw or "error" in raw:
        return _parse_answer(raw, known_id)
    raise JsonRpcError(
        INVALID_REQUEST,
        'invalid request: a message needs "method", "result" or "error"',
        request_id=known_id,
    )


def _parse_call(raw: dict[str, Any], known_id: RequestId | None) -> Request | Notification:
    notification = "id" not in raw
    method = raw["method"]
    if not isinstance(method, str) or not method:
        raise JsonRpcError(
            INVALID_REQUEST,
            'invalid request: "method" must be a string',
            request_id=known_id,
            from_notification=notification,
        )
    params = raw.get("params")
    if params is not None and not isinstance(params, dict):
        # MCP params are always objects; JSON-RPC's positional arrays are not used.
        raise JsonRpcError(
            INVALID_REQUEST,
            'invalid request: "params" must be an object',
            request_id=known_id,
            from_notification=notification,
        )
    if notification:
        return Notification(method=method, params=params)
    if known_id is None:
        raise JsonRpcError(INVALID_REQUEST, 'invalid request: "id" must be a string or an integer')
    return Request(id=known_id, method=method, params=params)


def _parse_answer(raw: dict[str, Any], known_id: RequestId | None) -> Response | ErrorResponse:
    if "error" in raw:
        error = raw["error"]
        if (
            not isinstance(error, dict)
            or not isinstance(error.get("code"), int)
            or not isinstance(error.get("message"), str)
        ):
            raise JsonRpcError(
                INVALID_REQUEST, "invalid response: malformed error object", request_id=known_id
            )
        return ErrorResponse(
            id=known_id,
            error=ErrorObject(code=error["code"], message=error["message"], data=error.get("data")),
        )
    result = raw["result"]
    if known_id is None or not isinstance(result, dict):
        raise JsonRpcError(
            INVALID_REQUEST,
            "invalid response: needs an id and an object result",
            request_id=known_id,
        )
    return Response(id=known_id, result=result)


def message_to_json(message: Message) -> dict[str, Any]:
    """The JSON object form of ``message``."""
    out: dict[str, Any] = {"jsonrpc": JSONRPC_VERSION}
    if isinstance(message, Request | Notification):
        if isinstance(message, Request):
            out["id"] = message.id
        out["method"] = message.method
        if message.params is not None:
            out["params"] = message.params
    elif isinstance(message, Response):
        out["id"] = message.id
        out["result"] = message.result
    else:
        out["id"] = message.id
        error: dict[str, Any] = {"code": message.error.code, "message": message.error.message}
        if message.error.data is not None:
            error["data"] = message.error.data
        out["error"] = error
    return out


def encode_message(message: Message) -> bytes:
    """One framed line: compact UTF-8 JSON and a ``\\n``.

    ``json.dumps`` escapes control characters inside strings, so the line never holds an
    embedded newline, which the stdio transport forbids.
    """
    text = json.dumps(message_to_json(message), ensure_ascii=False, separators=(",", ":"))
    return text.encode("utf-8") + b"\n"


class LineSplitter:
    """Cuts a byte stream into lines, holding at most ``max_line_bytes`` of one line.

    Args:
        max_line_bytes: the longest line kept; longer ones come out as :class:`OversizedLine`.
    """

    def __init__(self, *, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self._max = max_line_bytes
        self._buffer = bytearray()
        self._discarding = False
        self._discarded = 0

    def feed(self, data: bytes | bytearray) -> list[bytes | OversizedLine]:
        """Add ``data`` and return every line it completed (without the newline).

        Empty lines (and lines of only ``\\r``) are skipped: they carry no message.
        """
        out: list[bytes | OversizedLine] = []
        start = 0
        while True:
            newline = data.find(b"\n", start)
            chunk = data[start:] if newline < 0 else data[start:newline]
            if self._discarding:
                self._discarded += len(chunk)
            else:
                self._buffer += chunk
                if len(self._buffer) > self._max:
                    # Past the limit: keep counting, stop storing, until the line ends.
                    self._discarding = True
                    self._discarded = len(self._buffer)
                    self._buffer.clear()
            if newline < 0:
                return out
            if self._discarding:
                out.append(OversizedLine(size=self._discarded))
                self._discarding = False
                self._discarded = 0
            else:
                line = bytes(self._buffer).rstrip(b"\r")
                if line.strip():
                    out.append(line)
            self._buffer.clear()
            start = newline + 1

    def pending(self) -> int:
        """Bytes held for a line that has not ended yet (to report a cut-off last line)."""
        return self._discarded if self._discarding else len(self._buffer)
