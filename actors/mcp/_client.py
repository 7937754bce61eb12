"""``McpStdioClient``: the actor that runs one local MCP server over stdio and calls its tools.

::

    McpError (actors.mcp._jsonrpc)
     ├── HandshakeFailed         no era both sides speak (raised from on_start)
     └── ServerUnavailable       the process could not start, exited, closed a pipe,
                                 stopped reading stdin or missed the start-up deadline

    Errors an asker gets (actors.errors):
     ToolError      tool.timeout, tool.unavailable, tool.failed, tool.not_found,
                    tool.invalid_args, tool.cancelled
     Overloaded     overloaded: max_concurrent_calls calls already in flight
     InvalidRequest invalid_request: a call_id already in flight

One incarnation of the actor is one server process. ``on_start`` spawns it, negotiates the
era and loads the catalog, all within ``startup_timeout_s``; a failure there fails the
start, and the supervisor retries with its backoff. Tasks in the incarnation's nursery
own the pipes: a writer (the only task that writes stdin, fed by a bounded outbox), a
stdout reader that matches responses to requests, a stderr logger, the process watcher
and one task per call. When the process dies, closes stdout or stops reading stdin, every
call in flight is answered with ``tool.unavailable`` at once and the actor fails with
``ServerUnavailable``, so its supervisor restarts it (run it as a permanent child).

On any end of the incarnation (stop, restart, failure) the watcher stops the process in
order (stdin EOF, SIGTERM, SIGKILL; bounded by ``stop_budget_s``) and closes its pipes.
"""

from __future__ import annotations

import collections
import itertools
import logging
from collections.abc import Mapping
from typing import Any

import attrs
import trio

from actors.errors import InvalidRequest, Overloaded, ToolError
from zl_actors import (
    Actor,
    ActorContext,
    DeferredReply,
)

from ._client_config import McpClientConfig
from ._client_wire import (
    HandshakeFailed,
    call_error,
    initialize_params,
    printable,
    read_call_result,
    read_discover,
    read_initialize,
    read_tools_page,
    request_params,
)
from ._eras import LEGACY_VERSION, MODERN_VERSION, Era, Implementation
from ._jsonrpc import (
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    ErrorObject,
    ErrorResponse,
    JsonRpcError,
    LineSplitter,
    McpError,
    Notification,
    OversizedLine,
    Request,
    RequestId,
    Response,
    encode_message,
    parse_message,
)
from ._process import open_server_process, stop_server_process
from .messages import (
    CallTool,
    CancelCall,
    ClientStatus,
    GetClientStatus,
    ListTools,
    McpClientMessage,
    ToolCatalog,
    ToolInfo,
)

logger = logging.getLogger("actors.mcp.client")

MAILBOX_CAPACITY = 256
"""Asks waiting for the client; senders wait beyond it (back-pressure to the gateway)."""
OUTBOX_CAPACITY = 128
"""Lines waiting for stdin; calls wait for room (back-pressure), each within its deadline."""
READ_CHUNK_BYTES = 64 * 1024
ABANDON_CHECK_INTERVAL_S = 0.1
"""How often calls in flight are checked for askers that gave up (timeout, cancellation)."""
EXIT_STATUS_WAIT_S = 0.5
"""After stdout closes, how long to wait for the exit status to put it in the error."""
LOG_EXCERPT_BYTES = 200


class ServerUnavailable(McpError):
    """The server process is gone or unusable; the client actor fails with it."""


@attrs.define
class _Pending:
    """One request of ours waiting for its response (set by the stdout reader)."""

    event: trio.Event = attrs.Factory(trio.Event)
    answer: Response | ErrorResponse | ToolError | None = None

    def settle(self, answer: Response | ErrorResponse | ToolError) -> None:
        if self.answer is None:
            self.answer = answer
            self.event.set()


@attrs.define
class _Call:
    """A ``tools/call`` in flight."""

    request: CallTool
    request_id: RequestId
    line: bytes
    reply: DeferredReply
    timeout_s: float
    pending: _Pending = attrs.Factory(_Pending)
    cancel_reason: str | None = None


class McpStdioClient(Actor[McpClientMessage]):
    """Runs the configured MCP server and serves ``ListTools``, ``CallTool``, ``CancelCall``.

    Args:
        config: the command, limits and era choice (shared by every restart).

    Over ``max_concurrent_calls`` calls in flight a new call is refused at once with
    ``Overloaded`` (code ``overloaded``, retryable) rather than queued, so a slow server
    never holds the mailbox; ``CancelCall`` and ``ListTools`` are always served.
    """

    mailbox_capacity = MAILBOX_CAPACITY

    def __init__(self, config: McpClientConfig) -> None:
        self._config = config
        self._limits = config.limits
        self._name = config.command.name
        self._ids = itertools.count(1)
        self._pending: dict[RequestId, _Pending] = {}
        self._calls: dict[str, _Call] = {}
        self._outbox_send, self._outbox_receive = trio.open_memory_channel[bytes](OUTBOX_CAPACITY)
        self._process: trio.Process | None = None
        self._nursery: trio.Nursery | None = None
        self._era: Era | None = None
        self._version: str | None = None
        self._server_info: Implementation | None = None
        self._catalog: ToolCatalog | None = None
        self._refreshing = False
        self._stderr_tail: collections.deque[str] = collections.deque(
            maxlen=self._limits.stderr_tail_lines
        )
        self._calls_started = 0
        self._garbage_lines = 0
        self._unmatched = 0
        self._stderr_lines = 0
        self._refreshes = 0
        self._down: str | None = None

    # -- lifecycle ----------------------------------------------------------------------

    async def on_start(self, ctx: ActorContext[McpClientMessage]) -> None:
        self._nursery = ctx.nursery
        with trio.move_on_after(self._limits.startup_timeout_s) as startup:
            self._process = await ctx.nursery.start(self._watch_process)
            ctx.nursery.start_soon(self._write_loop)
            ctx.nursery.start_soon(self._read_stdout)
            ctx.nursery.start_soon(self._read_stderr)
            ctx.nursery.start_soon(self._sweep_abandoned)
            await self._negotiate()
            self._catalog = await self._list_tools()
        if startup.cancelled_caught:
            raise ServerUnavailable(
                f"mcp server {self._name} did not start within "
                f"{self._limits.startup_timeout_s:g} s{self._tail()}"
            )
        assert self._catalog is not None
        assert self._process is not None
        logger.info(
            "mcp server %s (pid %d) ready: protocol %s, server %s, tools %s",
            self._name,
            self._process.pid,
            self._version,
            self._server_info,
            ", ".join(self._catalog.names),
        )

    async def handle(
        self, message: McpClientMessage, ctx: ActorContext[McpClientMessage]
    ) -> object:
        match message:
            case CallTool():
                self._start_call(message, ctx)
            case CancelCall(call_id=call_id, reason=reason):
                call = self._calls.get(call_id)
                if call is not None and call.cancel_reason is None:
                    call.cancel_reason = reason
                    call.pending.event.set()
            case ListTools():
                assert self._catalog is not None  # set by on_start
                return self._catalog
            case GetClientStatus():
                return self._status()
        return None

    # -- the process and its pipes ------------------------------------------------------

    async def _watch_process(self, *, task_status: trio.TaskStatus[trio.Process]) -> None:
        try:
            process = await open_server_process(self._config.command)
        except OSError as exc:
            raise ServerUnavailable(f"mcp server {self._name} could not start: {exc}") from exc
        logger.info("mcp server %s started: pid %d", self._name, process.pid)
        try:
            task_status.started(process)
            await process.wait()
        finally:
            with trio.move_on_after(self._limits.stop_budget_s, shield=True):
                await stop_server_process(process, self._limits, name=self._name)
        self._server_down(f"exited with status {process.returncode}")

    def _server_down(self, why: str) -> None:
        """Answer every call in flight with ``tool.unavailable`` and fail the actor.

        Several tasks see the same death (stdout EOF, the exit, a broken stdin); the first
        raises ``ServerUnavailable`` and the others return, so the failure is one error.
        """
        if self._down is not None:
            return
        text = f"mcp server {self._name} {why}{self._tail()}"
        self._down = text
        logger.warning("%s", text)
        error = ToolError("tool.unavailable", text)
        for call in self._calls.values():
            call.reply.fail(error)
        for pending in self._pending.values():
            pending.settle(error)
        raise ServerUnavailable(text)

    async def _enqueue(self, line: bytes) -> None:
        """Queue ``line`` for stdin, waiting for room (back-pressure).

        Raises:
            ServerUnavailable: the writer has ended (the server is down).
        """
        try:
            await self._outbox_send.send(line)
        except trio.BrokenResourceError:
            raise ServerUnavailable(self._down or f"mcp server {self._name} is down") from None

    def _tail(self) -> str:
        return f"; last stderr: {' | '.join(self._stderr_tail)}" if self._stderr_tail else ""

    async def _write_loop(self) -> None:
        assert self._process is not None
        assert self._process.stdin is not None
        stdin = self._process.stdin
        async with self._outbox_receive:
            async for line in self._outbox_receive:
                try:
                    with trio.fail_after(self._limits.write_timeout_s):
                        await stdin.send_all(line)
                except trio.TooSlowError:
                    self._server_down(f"stopped reading stdin ({self._limits.write_timeout_s:g} s)")
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    self._server_down("closed stdin")

    async def _read_stdout(self) -> None:
        assert self._process is not None
        assert self._process.stdout is not None
        stdout = self._process.stdout
        splitter = LineSplitter(max_line_bytes=self._limits.max_line_bytes)
        while True:
            # No deadline: an idle server is normal; each call has its own deadline.
            try:
                data = await stdout.receive_some(READ_CHUNK_BYTES)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            if not data:
                break
            for item in splitter.feed(data):
                self._on_line(item)
        process = self._process
        with trio.move_on_after(EXIT_STATUS_WAIT_S):
            await process.wait()
        status = "" if process.returncode is None else f" (exit status {process.returncode})"
        self._server_down(f"closed stdout{status}")

    async def _read_stderr(self) -> None:
        assert self._process is not None
        assert self._process.stderr is not None
        stderr = self._process.stderr
        limit = self._limits.max_stderr_line_bytes
        splitter = LineSplitter(max_line_bytes=limit)
        while True:
            try:
                data = await stderr.receive_some(READ_CHUNK_BYTES)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return
            if not data:
                return
            for item in splitter.feed(data):
                self._stderr_lines += 1
                if isinstance(item, OversizedLine):
                    text = f"(a line of {item.size} bytes, over {limit}, dropped)"
                else:
                    text = printable(item, limit)
                self._stderr_tail.append(text)
                logger.info("[%s stderr] %s", self._name, text)

    def _on_line(self, item: bytes | OversizedLine) -> None:
        if isinstance(item, OversizedLine):
            self._garbage_lines += 1
            logger.warning(
                "mcp server %s sent a line of %d bytes (limit %d); dropped",
                self._name,
                item.size,
                self._limits.max_line_bytes,
            )
            return
        try:
            message = parse_message(item)
        except JsonRpcError as exc:
            self._garbage_lines += 1
            logger.warning(
                "mcp server %s sent a bad line (%s): %s",
                self._name,
                exc.message,
                printable(item, LOG_EXCERPT_BYTES),
            )
            pending = self._pending.get(exc.request_id) if exc.request_id is not None else None
            if pending is not None:
                # A response that is JSON but not strict JSON (a number past 2**53, a lone
                # surrogate, deep nesting) is a result the host refuses; anything else is a
                # broken server.
                code = "tool.invalid_result" if exc.code == PARSE_ERROR else "tool.failed"
                pending.settle(
                    ToolError(code, f"the server's response is malformed: {exc.message}")
                )
            return
        if isinstance(message, Response | ErrorResponse):
            pending = self._pending.get(message.id) if message.id is not None else None
            if pending is None:
                self._unmatched += 1
                logger.info(
                    "mcp server %s: response to unknown or finished request %r ignored",
                    self._name,
                    message.id,
                )
            else:
                pending.settle(message)
        elif isinstance(message, Request):
            self._answer_server_request(message)
        else:
            self._on_notification(message)

    def _answer_server_request(self, request: Request) -> None:
        # We declare no client capabilities, so only ping is ours to answer.
        answer: Response | ErrorResponse
        if request.method == "ping":
            answer = Response(id=request.id, result={})
        else:
            answer = ErrorResponse(
                id=request.id,
                error=ErrorObject(
                    code=METHOD_NOT_FOUND, message=f"method not found: {request.method}"
                ),
            )
        try:
            self._outbox_send.send_nowait(encode_message(answer))
        except trio.WouldBlock:
            logger.warning("outbox full: dropped the answer to server request %r", request.id)
        except trio.BrokenResourceError:
            pass  # the writer has ended: the server is going down

    def _on_notification(self, notification: Notification) -> None:
        if notification.method == "notifications/tools/list_changed":
            if not self._refreshing and self._nursery is not None and self._catalog is not None:
                self._refreshing = True
                self._nursery.start_soon(self._refresh_catalog)
        elif notification.method == "notifications/message":
            params = notification.params or {}
            logger.info(
                "[%s log] %s %s",
                self._name,
                params.get("level"),
                printable(str(params.get("data")).encode(), LOG_EXCERPT_BYTES),
            )
        else:
            logger.debug("mcp server %s: notification %s", self._name, notification.method)

    # -- requests of our own: negotiation and the catalog -------------------------------

    async def _rpc(
        self, method: str, params: Mapping[str, Any] | None, timeout_s: float
    ) -> Response | ErrorResponse | ToolError | None:
        """Send one request and wait for its answer; ``None`` if none came within ``timeout_s``."""
        request_id = next(self._ids)
        pending = _Pending()
        self._pending[request_id] = pending
        try:
            with trio.move_on_after(timeout_s):
                params_out = None if params is None else dict(params)
                await self._enqueue(
                    encode_message(Request(id=request_id, method=method, params=params_out))
                )
                await pending.event.wait()
        finally:
            del self._pending[request_id]
        return pending.answer

    def _params(self, params: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        assert self._era is not None
        return request_params(self._era, self._config.client_info, params)

    async def _negotiate(self) -> None:
        info = self._config.client_info
        if self._config.era is not Era.LEGACY:
            answer = await self._rpc(
                "server/discover",
                request_params(Era.MODERN, info),
                self._limits.probe_timeout_s,
            )
            if isinstance(answer, Response):
                self._server_info = read_discover(answer.result)
                self._era, self._version = Era.MODERN, MODERN_VERSION
                return
            if self._config.era is Era.MODERN:
                raise HandshakeFailed(f"server/discover failed: {_describe(answer)}")
            logger.info(
                "mcp server %s: server/discover %s; trying initialize (%s)",
                self._name,
                _describe(answer),
                LEGACY_VERSION,
            )
        answer = await self._rpc(
            "initialize", initialize_params(info), self._limits.startup_timeout_s
        )
        if not isinstance(answer, Response):
            raise HandshakeFailed(f"initialize failed: {_describe(answer)}")
        self._version, self._server_info = read_initialize(answer.result)
        self._era = Era.LEGACY
        await self._enqueue(encode_message(Notification(method="notifications/initialized")))

    async def _list_tools(self) -> ToolCatalog:
        tools: list[ToolInfo] = []
        cursor: str | None = None
        for _ in range(self._limits.max_tool_pages):
            params = {"cursor": cursor} if cursor is not None else None
            answer = await self._rpc(
                "tools/list", self._params(params), self._limits.request_timeout_s
            )
            if not isinstance(answer, Response):
                raise HandshakeFailed(f"tools/list failed: {_describe(answer)}")
            page, cursor = read_tools_page(answer.result)
            tools.extend(page)
            if cursor is None or len(tools) >= self._limits.max_tools:
                break
        else:
            logger.warning(
                "mcp server %s: tools/list still paging after %d pages; catalog cut there",
                self._name,
                self._limits.max_tool_pages,
            )
        assert self._era is not None
        assert self._version is not None
        return ToolCatalog(
            tools=tuple(tools[: self._limits.max_tools]),
            era=self._era,
            protocol_version=self._version,
            server_info=self._server_info,
        )

    async def _refresh_catalog(self) -> None:
        try:
            self._catalog = await self._list_tools()
            self._refreshes += 1
            logger.info("mcp server %s: tools now %s", self._name, ", ".join(self._catalog.names))
        except HandshakeFailed as exc:
            logger.warning(
                "mcp server %s: catalog refresh failed, kept the old one: %s", self._name, exc
            )
        finally:
            self._refreshing = False

    # -- tool calls ---------------------------------------------------------------------

    def _start_call(self, request: CallTool, ctx: ActorContext[McpClientMessage]) -> None:
        try:
            reply = ctx.defer_reply()
        except RuntimeError:
            logger.warning("CallTool %s was sent, not asked; ignored", request.call_id)
            return
        if reply.answered:
            return  # the asker gave up while the request waited in the mailbox
        assert self._catalog is not None
        if request.call_id in self._calls:
            reply.fail(InvalidRequest("invalid_request", f"call {request.call_id} is in flight"))
            return
        if self._catalog.get(request.tool) is None:
            reply.fail(ToolError("tool.not_found", f"{self._name} has no tool {request.tool!r}"))
            return
        if len(self._calls) >= self._limits.max_concurrent_calls:
            reply.fail(
                Overloaded(
                    "overloaded",
                    f"{self._name}: {self._limits.max_concurrent_calls} tool calls in flight",
                )
            )
            return
        request_id = next(self._ids)
        params = request_params(
            self._era or Era.LEGACY,
            self._config.client_info,
            {"name": request.tool, "arguments": dict(request.arguments)},
            traceparent=request.traceparent,
            meta=request.meta,
        )
        try:
            line = encode_message(Request(id=request_id, method="tools/call", params=params))
        except (TypeError, ValueError) as exc:
            reply.fail(ToolError("tool.invalid_args", f"arguments are not JSON: {exc}"))
            return
        call = _Call(
            request=request,
            request_id=request_id,
            line=line,
            reply=reply,
            timeout_s=request.timeout_s or self._limits.default_call_timeout_s,
        )
        self._calls[request.call_id] = call
        self._pending[request_id] = call.pending
        self._calls_started += 1
        ctx.nursery.start_soon(self._run_call, call)

    async def _run_call(self, call: _Call) -> None:
        started = trio.current_time()
        tool = call.request.tool
        try:
            with trio.move_on_after(call.timeout_s):
                await self._enqueue(call.line)
                await call.pending.event.wait()
            answer = call.pending.answer
            if answer is None:
                reason = call.cancel_reason or f"timeout after {call.timeout_s:g} s"
                await self._send_cancel(call.request_id, reason)
                if call.cancel_reason is None:
                    call.reply.fail(ToolError("tool.timeout", f"{tool}: {reason}"))
                else:
                    call.reply.fail(ToolError("tool.cancelled", f"{tool}: {reason}"))
            elif isinstance(answer, ToolError):
                call.reply.fail(answer)
            elif isinstance(answer, ErrorResponse):
                call.reply.fail(call_error(tool, answer.error))
            else:
                elapsed = trio.current_time() - started
                try:
                    result = read_call_result(call.request.call_id, tool, answer.result, elapsed)
                except ToolError as exc:
                    call.reply.fail(exc)
                else:
                    call.reply.resolve(result)
        except ServerUnavailable as exc:
            # The task that saw the death fails the actor; this call only needs its answer.
            call.reply.fail(ToolError("tool.unavailable", str(exc)))
        finally:
            self._pending.pop(call.request_id, None)
            if self._calls.get(call.request.call_id) is call:
                del self._calls[call.request.call_id]

    async def _send_cancel(self, request_id: RequestId, reason: str) -> None:
        params = self._params({"requestId": request_id, "reason": reason})
        line = encode_message(Notification(method="notifications/cancelled", params=params))
        with trio.move_on_after(self._limits.write_timeout_s) as scope:
            await self._enqueue(line)
        if scope.cancelled_caught:
            logger.warning(
                "mcp server %s: could not queue the cancel of %r", self._name, request_id
            )

    async def _sweep_abandoned(self) -> None:
        # A caller whose ask timed out or was cancelled leaves no message; its reply slot
        # turns answered. Polling keeps the cost at one timer for all calls.
        while True:
            await trio.sleep(ABANDON_CHECK_INTERVAL_S)
            for call in list(self._calls.values()):
                if call.reply.answered and call.cancel_reason is None:
                    call.cancel_reason = "the caller gave up"
                    call.pending.event.set()

    def _status(self) -> ClientStatus:
        return ClientStatus(
            server_name=self._name,
            pid=self._process.pid if self._process is not None else None,
            era=self._era,
            protocol_version=self._version,
            server_info=self._server_info,
            calls_in_flight=len(self._calls),
            calls_started=self._calls_started,
            garbage_lines=self._garbage_lines,
            unmatched_responses=self._unmatched,
            stderr_lines=self._stderr_lines,
            catalog_refreshes=self._refreshes,
        )


def _describe(answer: Response | ErrorResponse | ToolError | None) -> str:
    if answer is None:
        return "got no answer in time"
    if isinstance(answer, ErrorResponse):
        return f"answered error {answer.error.code} ({answer.error.message})"
    if isinstance(answer, ToolError):
        return f"answered garbage ({answer.message})"
    return "answered"
