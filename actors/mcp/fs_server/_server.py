"""The ``fs.read`` MCP server's stdio loop: one JSON-RPC message per line, both protocol eras.

One reader task parses stdin line by line; each ``tools/call`` runs in its own task in a
nursery (at most ``MAX_IN_FLIGHT_CALLS`` at once, the reader waits for a slot: back-pressure
on stdin) and reads in a worker thread (at most ``MAX_CONCURRENT_READS`` threads). One
writer task owns stdout, fed by a bounded channel, so lines never interleave. A malformed
line gets a JSON-RPC error and the loop goes on; ``notifications/cancelled`` cancels the
call's scope and no result is sent for it. End of stdin stops the reader; calls still
running get ``SHUTDOWN_GRACE_S`` to finish.

::

    McpError (actors.mcp._jsonrpc)
     └── ServerStopped           stdout is gone or stuck: the client cannot hear us any more
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import trio

from actors.errors import ZlError

from .._eras import (
    AUDIT_ID_META_KEY,
    TENANT_META_KEY,
    TRACEPARENT_META_KEY,
    Admitted,
    CacheHint,
    EraGate,
    Implementation,
)
from .._jsonrpc import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    MAX_LINE_BYTES,
    JsonRpcError,
    LineSplitter,
    McpError,
    Message,
    Notification,
    OversizedLine,
    Request,
    Response,
    encode_message,
    parse_message,
)
from ._tool import TOOL_NAME, RootSet, parse_args, read_file, tool_descriptor

if TYPE_CHECKING:  # the lean bridge distribution ships without OpenTelemetry
    from actors.telemetry import Telemetry

logger = logging.getLogger("actors.mcp.fs_server")

SERVER_NAME = "zl-mcp-fs"
SERVER_VERSION = "1.0.0"
INSTRUCTIONS = (
    "fs.read returns the content of one regular file under the allow-listed roots "
    "(relative paths start at the first root). Long files come back cut with truncated: true; "
    "read on with offset."
)
ERROR_META_KEY = "dev.zerolatency/error"
"""Result ``_meta`` key carrying a failed call's catalog code, message and retryable flag."""

MAX_IN_FLIGHT_CALLS = 64
MAX_CONCURRENT_READS = 8
OUTBOX_CAPACITY = 64
"""Lines waiting for stdout; a full outbox makes answering tasks wait (back-pressure)."""
STDIN_CHUNK_BYTES = 64 * 1024
STDOUT_WRITE_TIMEOUT_S = 30.0
"""A line stdout cannot take within this long means the client stopped reading: exit."""
SHUTDOWN_GRACE_S = 5.0
TOOLS_LIST_TTL_MS = 300_000
DISCOVER_TTL_MS = 300_000
# The tool list holds nothing about the user (the roots are not in it): any cache may share it.
_LIST_HINT = CacheHint(ttl_ms=TOOLS_LIST_TTL_MS, scope="public")
_DISCOVER_HINT = CacheHint(ttl_ms=DISCOVER_TTL_MS, scope="public")
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
# The relay frames' id pattern: a tenant or audit id from ``_meta`` is kept only if it fits.
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")


class ServerStopped(McpError):
    """stdout closed or stopped draining: nothing we send can arrive."""


def _traceparent(meta: Mapping[str, Any]) -> str:
    # Only a well-formed W3C value reaches the log, so a client cannot forge log lines.
    value = meta.get(TRACEPARENT_META_KEY)
    return value if isinstance(value, str) and _TRACEPARENT.match(value) else "-"


def _meta_id(meta: Mapping[str, Any], key: str) -> str | None:
    value = meta.get(key)
    return value if isinstance(value, str) and _ID.match(value) else None


def _span_attributes(meta: Mapping[str, Any]) -> dict[str, str]:
    """MCP's semantic conventions, plus the tenant and audit id the caller sent in ``_meta``."""
    from actors.telemetry import ATTR_AUDIT, ATTR_TENANT  # only with telemetry (see _main)

    attributes = {"mcp.method.name": "tools/call", "gen_ai.tool.name": TOOL_NAME}
    for attribute, key in ((ATTR_TENANT, TENANT_META_KEY), (ATTR_AUDIT, AUDIT_ID_META_KEY)):
        value = _meta_id(meta, key)
        if value is not None:
            attributes[attribute] = value
    return attributes


def error_result(error: ZlError) -> dict[str, Any]:
    """An ``isError: true`` tool result for ``error``, its code first in the text."""
    wire = error.to_wire()
    return {
        "content": [{"type": "text", "text": f"{wire.code}: {wire.message}"}],
        "isError": True,
        "_meta": {
            ERROR_META_KEY: {
                "code": wire.code,
                "message": wire.message,
                "retryable": wire.retryable,
            }
        },
    }


def ok_result(structured: dict[str, Any]) -> dict[str, Any]:
    """A successful tool result: ``structuredContent`` and its JSON text mirror."""
    text = json.dumps(structured, ensure_ascii=False, separators=(",", ":"))
    return {
        "content": [{"type": "text", "text": text}],
        "structuredContent": structured,
        "isError": False,
    }


class FsServer:
    """Serves fs.read over one stdio connection.

    Args:
        roots: the allow-listed roots (owned by the caller).
        max_in_flight_calls: calls running at once; the reader waits beyond it.
        max_concurrent_reads: worker threads reading at once.
        telemetry: where each call's span goes (a child of the ``_meta`` traceparent).
    """

    def __init__(
        self,
        roots: RootSet,
        *,
        max_in_flight_calls: int = MAX_IN_FLIGHT_CALLS,
        max_concurrent_reads: int = MAX_CONCURRENT_READS,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._telemetry = telemetry
        self._roots = roots
        self._gate = EraGate(
            server_info=Implementation(name=SERVER_NAME, version=SERVER_VERSION),
            capabilities={"tools": {"listChanged": False}},
            instructions=INSTRUCTIONS,
        )
        self._slots = trio.Semaphore(max_in_flight_calls)
        self._read_limiter = trio.CapacityLimiter(max_concurrent_reads)
        self._in_flight: dict[str | int, trio.CancelScope] = {}

    async def serve(
        self,
        receive: trio.abc.ReceiveStream,
        send: trio.abc.SendStream,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve until ``receive`` ends, then let running calls finish (with a grace deadline).

        Raises:
            ServerStopped: ``send`` broke or stayed blocked past ``STDOUT_WRITE_TIMEOUT_S``.

        On cancellation every running call is cancelled and nothing more is written.
        """
        out_send, out_receive = trio.open_memory_channel[bytes](OUTBOX_CAPACITY)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._write_loop, out_receive, send)
            async with out_send, trio.open_nursery() as calls:
                task_status.started()
                await self._read_loop(receive, out_send, calls)
                calls.cancel_scope.deadline = trio.current_time() + SHUTDOWN_GRACE_S

    async def _write_loop(
        self, lines: trio.MemoryReceiveChannel[bytes], send: trio.abc.SendStream
    ) -> None:
        async with lines:
            async for line in lines:
                try:
                    with trio.fail_after(STDOUT_WRITE_TIMEOUT_S):
                        await send.send_all(line)
                except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                    raise ServerStopped("stdout is closed") from exc
                except trio.TooSlowError as exc:
                    raise ServerStopped("stdout stopped draining") from exc

    async def _read_loop(
        self,
        receive: trio.abc.ReceiveStream,
        out: trio.MemorySendChannel[bytes],
        calls: trio.Nursery,
    ) -> None:
        splitter = LineSplitter(max_line_bytes=MAX_LINE_BYTES)
        while True:
            # No deadline: an idle client is normal; it ends the session by closing stdin.
            data = await receive.receive_some(STDIN_CHUNK_BYTES)
            if not data:
                if splitter.pending():
                    logger.warning(
                        "stdin ended inside a line of %d bytes; ignored", splitter.pending()
                    )
                return
            for item in splitter.feed(data):
                await self._on_line(item, out, calls)

    async def _on_line(
        self, item: bytes | OversizedLine, out: trio.MemorySendChannel[bytes], calls: trio.Nursery
    ) -> None:
        if isinstance(item, OversizedLine):
            logger.warning("dropped a line of %d bytes (limit %d)", item.size, MAX_LINE_BYTES)
            error = JsonRpcError(
                INVALID_REQUEST, f"message too large: {item.size} bytes (limit {MAX_LINE_BYTES})"
            )
            await out.send(encode_message(error.to_response()))
            return
        try:
            message: Message = parse_message(item)
        except JsonRpcError as exc:
            logger.warning("bad line: %s", exc)
            if not exc.from_notification:
                await out.send(encode_message(exc.to_response()))
            return
        if isinstance(message, Request):
            await self._on_request(message, out, calls)
        elif isinstance(message, Notification):
            self._on_notification(message)
        else:
            logger.warning("ignored a response (id %r): this server sends no requests", message.id)

    async def _on_request(
        self, request: Request, out: trio.MemorySendChannel[bytes], calls: trio.Nursery
    ) -> None:
        try:
            admitted = self._gate.admit(request)
            if request.method == "tools/call":
                await self._start_call(request, admitted, out, calls)
                return
            result = self._answer(request, admitted)
        except JsonRpcError as exc:
            logger.info("refused %s id=%r: %s", request.method, request.id, exc.message)
            await out.send(encode_message(exc.with_request_id(request.id).to_response()))
            return
        await out.send(encode_message(Response(id=request.id, result=result)))

    def _answer(self, request: Request, admitted: Admitted) -> dict[str, Any]:
        if request.method == "initialize":
            result = self._gate.initialize_result(request)
            logger.info("initialize: protocol %s", result["protocolVersion"])
            return result
        if request.method == "server/discover":
            return self._gate.discover_result(_DISCOVER_HINT)
        if request.method == "tools/list":
            return self._gate.shape(admitted, {"tools": [tool_descriptor()]}, _LIST_HINT)
        return self._gate.shape(admitted, {})  # ping

    async def _start_call(
        self,
        request: Request,
        admitted: Admitted,
        out: trio.MemorySendChannel[bytes],
        calls: trio.Nursery,
    ) -> None:
        params = request.params or {}
        name = params.get("name")
        if not isinstance(name, str):
            raise JsonRpcError(INVALID_PARAMS, "tools/call needs params.name (a string)")
        if name != TOOL_NAME:
            raise JsonRpcError(INVALID_PARAMS, f"Unknown tool: {name}")
        if request.id in self._in_flight:
            raise JsonRpcError(INVALID_REQUEST, f"request id {request.id!r} is already in flight")
        await self._slots.acquire()
        # Registered before the task starts, so a cancel on the very next line finds it.
        scope = trio.CancelScope()
        self._in_flight[request.id] = scope
        calls.start_soon(self._run_call, request, admitted, scope, out)

    async def _run_call(
        self,
        request: Request,
        admitted: Admitted,
        scope: trio.CancelScope,
        out: trio.MemorySendChannel[bytes],
    ) -> None:
        telemetry = self._telemetry
        if telemetry is None:
            await self._call(request, admitted, scope, out)
            return
        from actors.telemetry import ATTR_ERROR_CODE, ATTR_OUTCOME

        traceparent = _traceparent(admitted.meta)
        with telemetry.hop_span(
            f"tools/call {TOOL_NAME}",
            traceparent=None if traceparent == "-" else traceparent,
            attributes=_span_attributes(admitted.meta),
        ) as span:
            outcome = await self._call(request, admitted, scope, out)
            span.set_attribute(ATTR_OUTCOME, "ok" if outcome == "ok" else "error")
            if outcome != "ok":
                span.set_attribute(ATTR_ERROR_CODE, outcome)

    async def _call(
        self,
        request: Request,
        admitted: Admitted,
        scope: trio.CancelScope,
        out: trio.MemorySendChannel[bytes],
    ) -> str:
        """Run one ``tools/call``; its outcome (``ok``, a catalog code, or ``cancelled``)."""
        started = trio.current_time()
        arguments = (request.params or {}).get("arguments", {})
        outcome = "cancelled"
        try:
            with scope:
                try:
                    checked = parse_args(arguments)
                    structured = await trio.to_thread.run_sync(
                        read_file,
                        self._roots,
                        checked,
                        limiter=self._read_limiter,
                        # A read cannot be interrupted mid-syscall; it is bounded by maxBytes,
                        # so the thread is left to finish and its result dropped.
                        abandon_on_cancel=True,
                    )
                    body, status = ok_result(structured), "ok"
                except ZlError as exc:
                    body, status = error_result(exc), exc.code
                except Exception as exc:
                    # A bug must cost one call, not the server.
                    logger.exception("fs.read failed unexpectedly")
                    body = error_result(
                        ZlError("tool.failed", f"internal error ({type(exc).__name__})")
                    )
                    status = "tool.failed"
                await out.send(
                    encode_message(Response(id=request.id, result=self._gate.shape(admitted, body)))
                )
                outcome = status
        finally:
            del self._in_flight[request.id]
            self._slots.release()
            logger.info(
                "tools/call id=%r tool=%s path=%r outcome=%s ms=%.2f traceparent=%s",
                request.id,
                TOOL_NAME,
                arguments.get("path") if isinstance(arguments, dict) else None,
                outcome,
                (trio.current_time() - started) * 1000,
                _traceparent(admitted.meta),
            )
        return outcome

    def _on_notification(self, notification: Notification) -> None:
        params = notification.params or {}
        if notification.method == "notifications/initialized":
            self._gate.note_initialized()
        elif notification.method == "notifications/cancelled":
            request_id = params.get("requestId")
            scope = self._in_flight.get(request_id) if isinstance(request_id, str | int) else None
            if scope is not None:
                logger.info("cancel id=%r reason=%r", request_id, params.get("reason"))
                scope.cancel()
            else:
                logger.info("cancel for unknown or finished id=%r ignored", request_id)
        else:
            logger.debug("ignored notification %s", notification.method)
