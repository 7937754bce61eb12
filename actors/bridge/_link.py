"""``RelayLink``: the bridge's connection to its relay shard, kept up for as long as it runs.

It dials (``Authorization: Bearer``, subprotocol ``zl.relay.v1+proto`` preferred over
``zl.relay.v1`` unless JSON frames are asked for, TLS verified against the configured CA),
announces the MCP server's catalog in ``device.hello``, follows a ``redirect`` to the
tenant's shard, then serves: pings are answered, each ``tool.call``
runs as a task that asks the MCP client, ``tool.cancel`` cancels it (the MCP server gets
``notifications/cancelled``). Any failure ends the connection; the next attempt waits
``min(initial * 2**n, max)`` seconds times a random factor in [0.5, 1.5] (jitter keeps a
fleet of bridges from reconnecting in lockstep after a relay restart).
"""

from __future__ import annotations

import contextlib
import logging
import random
import ssl
from collections.abc import Mapping
from typing import Any, Final

import attrs
import trio
from attrs.validators import gt
from trio_websocket import ConnectionClosed, HandshakeError, WebSocketConnection

from actors.errors import Overloaded, ToolError, WireError, internal_error
from actors.mcp import CallTool, CancelCall, ListTools, McpClientMessage, call_tool
from actors.relay import (
    OFFERED_SUBPROTOCOLS,
    SUBPROTOCOL,
    BadFrame,
    DeviceHello,
    DeviceHelloAck,
    ErrorFrame,
    Frame,
    FrameCodec,
    Ping,
    Pong,
    Redirect,
    ToolCall,
    ToolCancel,
    ToolResult,
    codec_for,
)
from actors.relay._codec import FrameWriter, WriterClosed
from actors.relay._dial import open_relay_websocket
from zl_actors import Actor, ActorContext, ActorError, ActorRef

from ._local import LocalCaps, announced_tools, capped_arguments, effective_caps, result_size
from .messages import BridgeMessage, BridgeStatus, GetBridgeStatus, LinkState

log = logging.getLogger("zl.bridge")

BRIDGE_VERSION: Final = "0.1.0"
#: Frames the relay may send before the bridge reads them (trio-websocket's queue).
WS_MESSAGE_QUEUE_SIZE: Final = 8
#: The relay's heartbeat is announced in the ack; silence for this many intervals = dead relay.
DEAD_AFTER_HEARTBEATS: Final = 2.5
#: Result frames larger than this share of the relay's frame limit are refused locally.
FRAME_HEADROOM_BYTES: Final = 1024
CATALOG_TIMEOUT_S: Final = 10.0
#: Most redirects followed in a row (a misconfigured deployment must not loop forever).
MAX_REDIRECTS: Final = 3


@attrs.frozen(kw_only=True)
class Reconnect:
    """Backoff between connection attempts."""

    initial_s: float = attrs.field(default=0.5, validator=gt(0))
    max_s: float = attrs.field(default=30.0, validator=gt(0))

    def delay(self, attempt: int, rng: random.Random) -> float:
        base = min(self.initial_s * 2.0 ** max(0, attempt - 1), self.max_s)
        return base * rng.uniform(0.5, 1.5)


@attrs.frozen(kw_only=True)
class RelayLinkConfig:
    """How the bridge reaches its relay.

    Args:
        relay_url: ``wss://host:port/v1/device`` (any shard; redirects are followed).
        device_id: this device (must match the token).
        token: the device bearer token.
        ssl_context: verifies the relay against the CA bundle; None only for ``ws://``
            with the plaintext dev flag (the CLI logs the warning).
        caps: the bridge's own ceiling on every call.
        reconnect: backoff between attempts.
        connect_timeout_s: TCP + TLS + WebSocket handshake.
        hello_timeout_s: the relay's answer to ``device.hello``.
        send_timeout_s: a relay that does not take a frame within this is dropped.
        max_frame_bytes: the largest frame the bridge accepts (and the most it sends).
        binary_frames: offer the binary subprotocol first (the relay then uses it); False
            speaks JSON only, for debugging with a plain WebSocket client.
    """

    relay_url: str
    device_id: str
    token: str = attrs.field(repr=False)
    ssl_context: ssl.SSLContext | None = None
    caps: LocalCaps = attrs.field(factory=LocalCaps)
    reconnect: Reconnect = attrs.field(factory=Reconnect)
    connect_timeout_s: float = attrs.field(default=10.0, validator=gt(0))
    hello_timeout_s: float = attrs.field(default=10.0, validator=gt(0))
    send_timeout_s: float = attrs.field(default=10.0, validator=gt(0))
    max_frame_bytes: int = attrs.field(default=1024 * 1024, validator=gt(0))
    binary_frames: bool = True


class _Redirected(Exception):
    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url


class RelayLink(Actor[BridgeMessage]):
    """Keeps the bridge connected and serves calls (see the module docstring).

    Args:
        config: where and how to connect.
        mcp: the MCP stdio client actor that runs the tools.
        rng: jitter source (seed it in tests).
    """

    mailbox_capacity = 8

    def __init__(
        self,
        config: RelayLinkConfig,
        mcp: ActorRef[McpClientMessage],
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.mcp = mcp
        self.rng = rng or random.Random()
        self.state: LinkState = "connecting"
        self.url = config.relay_url
        self.attempt = 0
        self.connects = 0
        self.calls: dict[str, trio.CancelScope] = {}
        self.calls_done = 0
        self.last_error: str | None = None
        self.rtt_ms: float | None = None
        self.input_schemas: dict[str, Mapping[str, Any]] = {}

    async def on_start(self, ctx: ActorContext[BridgeMessage]) -> None:
        ctx.nursery.start_soon(self._run)

    async def handle(
        self, message: BridgeMessage, ctx: ActorContext[BridgeMessage]
    ) -> BridgeStatus:
        match message:
            case GetBridgeStatus():
                return BridgeStatus(
                    state=self.state,
                    relay_url=self.url,
                    device_id=self.config.device_id,
                    calls_in_flight=len(self.calls),
                    calls_done=self.calls_done,
                    connects=self.connects,
                    attempt=self.attempt,
                    last_error=self.last_error,
                    rtt_ms=self.rtt_ms,
                )

    async def _run(self) -> None:
        redirects = 0
        while True:
            try:
                await self._connect_once()
                self.last_error = "connection closed"
            except _Redirected as redirect:
                redirects += 1
                if redirects <= MAX_REDIRECTS:
                    log.info("bridge: redirected to %s", redirect.url)
                    self.url = redirect.url
                    continue
                self.last_error = "too many redirects"
            except (
                HandshakeError,
                ConnectionClosed,
                OSError,
                trio.TooSlowError,
                BadFrame,
                ActorError,
                ToolError,
            ) as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"[:300]
            redirects = 0
            self.state = "reconnecting"
            self.attempt += 1
            if self.attempt >= 2:
                # Repeated failures: start again from the configured URL, as the
                # redirect target may be a shard that went away.
                self.url = self.config.relay_url
            delay = self.config.reconnect.delay(self.attempt, self.rng)
            log.info("bridge: %s; reconnecting in %.2f s", self.last_error, delay)
            await trio.sleep(delay)

    async def _connect_once(self) -> None:
        catalog = await self.mcp.ask(ListTools(), timeout=CATALOG_TIMEOUT_S)
        tools = announced_tools(catalog)
        self.input_schemas = {tool.name: tool.input_schema for tool in tools}
        async with open_relay_websocket(
            self.url,
            self.config.ssl_context,
            token=self.config.token,
            message_queue_size=WS_MESSAGE_QUEUE_SIZE,
            max_message_size=self.config.max_frame_bytes,
            connect_timeout_s=self.config.connect_timeout_s,
            subprotocols=OFFERED_SUBPROTOCOLS if self.config.binary_frames else (SUBPROTOCOL,),
        ) as ws:
            codec = codec_for(ws.subprotocol)
            hello = DeviceHello(
                bridge_version=BRIDGE_VERSION, device_id=self.config.device_id, tools=tools
            )
            (message,) = codec.encode([hello], validate=True)
            with trio.fail_after(self.config.send_timeout_s):
                await ws.send_message(message)
            with trio.fail_after(self.config.hello_timeout_s):
                data = await ws.get_message()
            first = codec.decode(data, max_bytes=self.config.max_frame_bytes)[0]
            if isinstance(first, Redirect):
                raise _Redirected(first.shard_url)
            if isinstance(first, ErrorFrame):
                raise ConnectionRefusedError(
                    f"relay refused the bridge: {first.code}: {first.message}"
                )
            if not isinstance(first, DeviceHelloAck):
                raise BadFrame(f"expected device.hello.ack, got {first.TYPE}")
            self.state = "connected"
            self.attempt = 0
            self.connects += 1
            self.last_error = None
            log.info("bridge: connected to %s as %s", self.url, self.config.device_id)
            try:
                await self._serve(ws, codec, first)
            finally:
                for scope in self.calls.values():
                    scope.cancel()

    async def _serve(self, ws: WebSocketConnection, codec: FrameCodec, ack: DeviceHelloAck) -> None:
        idle_s = ack.heartbeat_ms / 1000 * DEAD_AFTER_HEARTBEATS
        max_bytes = min(ack.max_frame_bytes, self.config.max_frame_bytes)
        failure: list[str] = []
        async with trio.open_nursery() as nursery:

            def writer_failed(reason: str) -> None:
                failure.append(reason)
                nursery.cancel_scope.cancel()

            # Every frame to the relay goes through one writer: results of calls that finish
            # together leave in one message on the binary subprotocol.
            writer = FrameWriter(
                ws, codec, timeout_s=self.config.send_timeout_s, on_failure=writer_failed
            )
            nursery.start_soon(writer.run)
            while True:
                with trio.move_on_after(idle_s) as idle:
                    data = await ws.get_message()
                if idle.cancelled_caught:
                    raise trio.TooSlowError(f"no frame from the relay for {idle_s:g} s")
                # The relay validated the host's frames where they entered; the bridge's own
                # defence is its caps and the MCP server's roots, not the frame schema.
                for frame in codec.decode(data, max_bytes=max_bytes, validate=False):
                    await self._on_frame(frame, writer, nursery, ack, max_bytes)
        if failure:
            raise trio.TooSlowError(f"relay link: {failure[0]}")

    async def _on_frame(
        self,
        frame: Frame,
        writer: FrameWriter,
        nursery: trio.Nursery,
        ack: DeviceHelloAck,
        max_bytes: int,
    ) -> None:
        match frame:
            case Ping(nonce=nonce, sent_at_ms=sent_at_ms):
                await _send(writer, Pong(nonce=nonce, sent_at_ms=sent_at_ms))
            case ToolCall(call_id=call_id):
                if call_id in self.calls or len(self.calls) >= ack.max_in_flight:
                    error = WireError(
                        code="relay.overloaded", message="bridge busy", retryable=True
                    )
                    await _send(writer, ToolResult(call_id=call_id, error=error))
                    return
                scope = trio.CancelScope()
                self.calls[call_id] = scope
                nursery.start_soon(self._call, writer, frame, scope, max_bytes)
            case ToolCancel(call_id=call_id, reason=reason):
                if call_id in self.calls:
                    # The MCP client sends notifications/cancelled and answers the
                    # waiting call with tool.cancelled, which goes back as the result.
                    with contextlib.suppress(ActorError):
                        self.mcp.send_nowait(CancelCall(call_id=call_id, reason=reason))
            case ErrorFrame(code=code, message=message):
                log.warning("bridge: relay reports %s: %s", code, message)
            case _:
                log.debug("bridge: ignoring %s frame", frame.TYPE)

    async def _call(
        self, writer: FrameWriter, call: ToolCall, scope: trio.CancelScope, frame_limit: int
    ) -> None:
        caps = effective_caps(call, self.config.caps)
        result: ToolResult
        try:
            with scope:
                arguments = capped_arguments(
                    call.args, self.input_schemas.get(call.tool), caps.max_bytes
                )
                try:
                    output = await call_tool(
                        self.mcp,
                        CallTool(
                            call_id=call.call_id,
                            tool=call.tool,
                            arguments=arguments,
                            timeout_s=caps.timeout_s,
                            traceparent=call.traceparent,
                        ),
                    )
                    raw = dict(output.raw)
                    if result_size(raw) > frame_limit - FRAME_HEADROOM_BYTES:
                        error = WireError(
                            code="tool.failed",
                            message=f"result larger than the {frame_limit}-byte frame limit",
                            retryable=False,
                        )
                        result = ToolResult(call_id=call.call_id, error=error)
                    else:
                        result = ToolResult(call_id=call.call_id, result=raw)
                except (ToolError, Overloaded) as exc:
                    result = ToolResult(call_id=call.call_id, error=exc.to_wire())
                except Exception as exc:
                    log.exception("bridge: call %s failed", call.call_id)
                    result = ToolResult(call_id=call.call_id, error=internal_error(exc))
                await writer.send(result)
        except WriterClosed:
            pass  # the connection is going; the relay fails the call on its side
        finally:
            self.calls.pop(call.call_id, None)
            self.calls_done += 1


async def _send(writer: FrameWriter, frame: Frame) -> None:
    """Queue a frame; a writer that stopped ends the connection (it cancels the serve loop)."""
    with contextlib.suppress(WriterClosed):
        await writer.send(frame)
