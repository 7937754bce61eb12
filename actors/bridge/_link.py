"""``RelayLink``: the bridge's connection to its relay shard, kept up for as long as it runs.

It dials (``Authorization: Bearer``, subprotocol ``zl.relay.v1+proto`` preferred over
``zl.relay.v1`` unless JSON frames are asked for, TLS verified against the configured CA),
announces the MCP server's catalog in ``device.hello``, follows a ``redirect`` to the
tenant's shard, then serves: pings are answered, each ``tool.call`` runs as a task that
asks the MCP client, ``tool.cancel`` cancels it (the MCP server gets
``notifications/cancelled``). Any failure ends the connection; the next attempt waits
``min(initial * 2**n, max)`` seconds times a random factor in [0.5, 1.5] (jitter keeps a
fleet of bridges from reconnecting in lockstep after a relay restart).
"""

from __future__ import annotations

import contextlib
import logging
import random
import ssl
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import attrs
import trio
from attrs.validators import gt
from trio_websocket import ConnectionClosed, HandshakeError, WebSocketConnection

from actors.errors import Overloaded, PolicyError, ToolError, WireError, internal_error
from actors.mcp import CallTool, CancelCall, ListTools, McpClientMessage, call_meta, call_tool
from actors.relay import (
    DEFAULT_MAX_FRAME_BYTES,
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
    result_budget,
)
from actors.relay._codec import FrameWriter, WriterClosed, open_frame_writer
from actors.relay._dial import open_relay_websocket
from zl_actors import Actor, ActorContext, ActorError, ActorRef

from ._local import (
    UNVERSIONED,
    LocalCaps,
    ResultTooLarge,
    announced_tools,
    capped_arguments,
    effective_caps,
    fit_result,
)
from ._policy import DevicePolicy, DevicePolicyConfig
from .messages import BridgeMessage, BridgeStatus, GetBridgeStatus, LinkState

if TYPE_CHECKING:  # the lean bridge distribution ships without OpenTelemetry
    from actors.telemetry import Telemetry

log = logging.getLogger("zl.bridge")

BRIDGE_VERSION: Final = "0.1.0"
#: Frames the relay may send before the bridge reads them (trio-websocket's queue).
WS_MESSAGE_QUEUE_SIZE: Final = 8
#: The relay's heartbeat is announced in the ack; silence for this many intervals = dead relay.
DEAD_AFTER_HEARTBEATS: Final = 2.5
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
        policy: what signed policy every call is checked against; None runs calls with no
            policy at all (development only: the CLI logs it loudly).
        reconnect: backoff between attempts.
        connect_timeout_s: TCP + TLS + WebSocket handshake.
        hello_timeout_s: the relay's answer to ``device.hello``.
        send_timeout_s: a relay that does not take a frame within this is dropped.
        max_frame_bytes: the largest frame accepted from the relay; results are made to fit
            the smaller of this and the relay's announced limit.
        token_file: where ``token`` came from: read again before every reconnection, so
            that a token replaced in the file (a renewal) is used, and a refused token that
            the file still holds stops the bridge instead of retrying forever.
        binary_frames: offer the binary subprotocol first (the relay then uses it); False
            speaks JSON only, for debugging with a plain WebSocket client.
    """

    relay_url: str
    device_id: str
    token: str = attrs.field(repr=False)
    ssl_context: ssl.SSLContext | None = None
    policy: DevicePolicyConfig | None
    caps: LocalCaps = attrs.field(factory=LocalCaps)
    reconnect: Reconnect = attrs.field(factory=Reconnect)
    connect_timeout_s: float = attrs.field(default=10.0, validator=gt(0))
    hello_timeout_s: float = attrs.field(default=10.0, validator=gt(0))
    send_timeout_s: float = attrs.field(default=10.0, validator=gt(0))
    max_frame_bytes: int = attrs.field(default=DEFAULT_MAX_FRAME_BYTES, validator=gt(0))
    token_file: Path | None = None
    binary_frames: bool = True


class _Redirected(Exception):
    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url


class _Refused(Exception):
    """The relay refused this bridge's token or device id (it will not fix itself)."""


class BridgeStopped(Exception):
    """An error no retry can fix: a wrong endpoint, or a refused token the file still holds.

    The message says what is wrong and which setting to change.
    """


#: HTTP statuses of a refused WebSocket upgrade that retrying cannot fix (a wrong path or
#: a relay that does not speak the subprotocol): the bridge's configuration is wrong.
PERMANENT_UPGRADE_STATUSES: Final = frozenset({400, 404})
#: Close codes after which the same token is refused again (unauthenticated, forbidden).
REFUSED_CLOSE_CODES: Final = frozenset({4401, 4403})
#: Error codes of a refused hello (the same token would be refused again).
REFUSED_ERROR_CODES: Final = frozenset({"relay.unauthenticated", "relay.forbidden"})


class RelayLink(Actor[BridgeMessage]):
    """Keeps the bridge connected and serves calls (see the module docstring).

    Args:
        config: where and how to connect.
        mcp: the MCP stdio client actor that runs the tools.
        rng: jitter source (seed it in tests).
        on_stopped: called when the link stops for good (``BridgeStopped``): the relay
            refused the token and the token file was not replaced, or the relay URL is
            wrong. Without it the link keeps retrying with backoff.
    """

    mailbox_capacity = 8

    def __init__(
        self,
        config: RelayLinkConfig,
        mcp: ActorRef[McpClientMessage],
        rng: random.Random | None = None,
        on_stopped: Callable[[BridgeStopped], None] | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.config = config
        self.token = config.token
        #: Told once when the link gives up for good (see ``BridgeStopped``); the process
        #: then exits with the message.
        self.on_stopped = on_stopped
        self.mcp = mcp
        self.telemetry = telemetry
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
        #: Frames to the relay must fit this (the smaller of ours and the relay's limit).
        self.frame_limit = config.max_frame_bytes
        self.versions: dict[str, str] = {}
        self.policy = DevicePolicy(config.policy) if config.policy is not None else None
        self.calls_denied = 0

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
        try:
            await self._keep_connected()
        except BridgeStopped as exc:
            self.state = "stopped"
            self.last_error = str(exc)
            log.info("bridge: stopped: %s", exc)
            if self.on_stopped is not None:
                self.on_stopped(exc)

    def _refused(self, reason: str) -> None:
        """The relay refused the token: go on only if the token file now holds another.

        Raises:
            BridgeStopped: the same token would be refused again.
        """
        refused = self.token
        path = self.config.token_file
        if path is not None:
            try:
                self.token = path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise BridgeStopped(
                    f"the relay refused the device token ({reason}), and --token-file {path} "
                    f"cannot be read again: {exc.strerror or exc}"
                ) from None
        if self.token and self.token != refused:
            log.info(
                "bridge: the relay refused the token (%s); using the new one in %s", reason, path
            )
            return
        where = f"--token-file {path}" if path is not None else "the device token"
        raise BridgeStopped(
            f"the relay refused the device token: {reason}; replace {where} "
            "(and check --device-id) and start the bridge again"
        )

    async def _keep_connected(self) -> None:
        redirects = 0
        while True:
            try:
                await self._connect_once()
                self.last_error = "connection closed"
            except _Refused as refused:
                self._refused(str(refused))
                self.last_error = str(refused)
                continue
            except HandshakeError as exc:
                status = getattr(exc, "status_code", None)
                if status in PERMANENT_UPGRADE_STATUSES:
                    body = getattr(exc, "body", None) or b""
                    detail = body.decode("utf-8", "replace")[:200]
                    raise BridgeStopped(
                        f"the relay at {self.url} refused the connection (HTTP {status}: "
                        f"{detail}); check --relay (wss://HOST:PORT/v1/device)"
                    ) from None
                self.last_error = f"{type(exc).__name__}: {exc}"[:300]
            except ConnectionClosed as exc:
                reason = exc.reason
                if reason is not None and reason.code in REFUSED_CLOSE_CODES:
                    self._refused(f"closed {reason.code}: {reason.reason or ''}".strip())
                    self.last_error = f"closed {reason.code}"
                    continue
                self.last_error = f"{type(exc).__name__}: {exc}"[:300]
            except _Redirected as redirect:
                redirects += 1
                if redirects <= MAX_REDIRECTS:
                    log.info("bridge: redirected to %s", redirect.url)
                    self.url = redirect.url
                    continue
                self.last_error = "too many redirects"
            except (
                OSError,
                trio.TooSlowError,
                BadFrame,
                ActorError,
                ToolError,
            ) as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"[:300]
            redirects = 0
            self.state = "reconnecting"
            self._report()
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
        self.versions = {tool.name: tool.version for tool in tools}
        async with open_relay_websocket(
            self.url,
            self.config.ssl_context,
            token=self.token,
            message_queue_size=WS_MESSAGE_QUEUE_SIZE,
            max_message_size=self.config.max_frame_bytes,
            connect_timeout_s=self.config.connect_timeout_s,
            subprotocols=OFFERED_SUBPROTOCOLS if self.config.binary_frames else (SUBPROTOCOL,),
        ) as ws:
            codec = codec_for(ws.subprotocol)
            hello = DeviceHello(
                bridge_version=BRIDGE_VERSION, device_id=self.config.device_id, tools=tools
            )
            message = codec.encode_for_link(
                hello, limit=self.frame_limit, link="the relay link", validate=True
            )
            with trio.fail_after(self.config.send_timeout_s):
                await ws.send_message(message)
            with trio.fail_after(self.config.hello_timeout_s):
                data = await ws.get_message()
            first = codec.decode(data, max_bytes=self.config.max_frame_bytes)[0]
            if isinstance(first, Redirect):
                raise _Redirected(first.shard_url)
            if isinstance(first, ErrorFrame):
                if first.code in REFUSED_ERROR_CODES:
                    raise _Refused(f"{first.code}: {first.message}")
                raise ConnectionRefusedError(
                    f"relay refused the bridge: {first.code}: {first.message}"
                )
            if not isinstance(first, DeviceHelloAck):
                raise BadFrame(f"expected device.hello.ack, got {first.TYPE}")
            self.state = "connected"
            self._report()
            self.attempt = 0
            self.connects += 1
            self.last_error = None
            log.info(
                "bridge: connected to %s as %s (%s frames)",
                self.url,
                self.config.device_id,
                "binary" if codec.binary else "JSON",
            )
            try:
                await self._serve(ws, codec, first)
            finally:
                for scope in self.calls.values():
                    scope.cancel()

    async def _serve(self, ws: WebSocketConnection, codec: FrameCodec, ack: DeviceHelloAck) -> None:
        idle_s = ack.heartbeat_ms / 1000 * DEAD_AFTER_HEARTBEATS
        max_bytes = min(ack.max_frame_bytes, self.config.max_frame_bytes)
        self.frame_limit = max_bytes
        # Every frame to the relay goes through one writer: results of calls that finish
        # together leave in one message on the binary subprotocol, within the frame limit
        # (the smaller of ours and the relay's).
        async with open_frame_writer(
            ws, codec, limit=max_bytes, link="the relay link", timeout_s=self.config.send_timeout_s
        ) as (writer, nursery):
            while True:
                with trio.move_on_after(idle_s) as idle:
                    data = await ws.get_message()
                if idle.cancelled_caught:
                    raise trio.TooSlowError(f"no frame from the relay for {idle_s:g} s")
                # The relay validated the host's frames where they entered; the bridge's own
                # defence is its caps and the MCP server's roots, not the frame schema. Still
                # read strictly: one call's frame that cannot be read fails that call only.
                for frame in codec.decode_each(data, max_bytes=max_bytes, validate=False):
                    if isinstance(frame, BadFrame):
                        log.warning(
                            "bridge: bad frame for call %s: %s", frame.call_id, frame.message
                        )
                        assert frame.call_id is not None
                        await _send(
                            writer, ToolResult(call_id=frame.call_id, error=frame.to_wire())
                        )
                    else:
                        await self._on_frame(frame, writer, nursery, ack, max_bytes)

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
                self._report()
                nursery.start_soon(self._call, writer, frame, scope, max_bytes)
            case ToolCancel(call_id=call_id, reason=reason):
                if call_id in self.calls:
                    # The MCP client sends notifications/cancelled and answers the
                    # waiting call with tool.cancelled, which goes back as the result.
                    with contextlib.suppress(ActorError):
                        self.mcp.send_nowait(CancelCall(call_id=call_id, reason=reason))
            case ErrorFrame(code=code, message=message):
                log.warning("bridge: relay reports %s: %s", code, message)
                if code in REFUSED_ERROR_CODES:
                    # The relay closes next (the token expired mid-connection).
                    self.last_error = f"{code}: {message}"
            case _:
                log.debug("bridge: ignoring %s frame", frame.TYPE)

    def _report(self) -> None:
        if self.telemetry is not None:
            self.telemetry.metrics.set_bridge_state(
                connected=self.state == "connected", calls_in_flight=len(self.calls)
            )

    def _refusal(self, call: ToolCall) -> WireError | None:
        """Why the signed policy does not let ``call`` run here, or None (see ``_policy``)."""
        if self.policy is None:
            return None
        try:
            self.policy.check(call, version=self.versions.get(call.tool, UNVERSIONED))
        except (PolicyError, ToolError) as exc:
            self.calls_denied += 1
            log.warning("bridge: call %s of %s refused: %s", call.call_id, call.tool, exc)
            return exc.to_wire()
        return None

    async def _call(
        self, writer: FrameWriter, call: ToolCall, scope: trio.CancelScope, frame_limit: int
    ) -> None:
        """One call in its own span (a child of the relay's), which the MCP server's
        span is a child of in turn."""
        telemetry = self.telemetry
        if telemetry is None:
            await self._run_call(writer, call, scope, frame_limit, call.traceparent)
            return
        # Only a bridge that was given telemetry has (and loads) OpenTelemetry.
        from actors.telemetry import (
            ATTR_AUDIT,
            ATTR_CALL,
            ATTR_DEVICE,
            ATTR_ERROR_CODE,
            ATTR_OUTCOME,
            ATTR_TENANT,
            ATTR_TOOL,
            traceparent_of,
        )

        attributes = {
            ATTR_CALL: call.call_id,
            ATTR_TENANT: call.tenant,
            ATTR_DEVICE: call.device_id,
            ATTR_TOOL: call.tool,
        }
        if call.audit_id is not None:
            attributes[ATTR_AUDIT] = call.audit_id
        with telemetry.hop_span(
            "bridge tool.call", traceparent=call.traceparent, attributes=attributes
        ) as span:
            outcome = await self._run_call(writer, call, scope, frame_limit, traceparent_of(span))
            span.set_attribute(ATTR_OUTCOME, "ok" if outcome == "ok" else "error")
            if outcome != "ok":
                span.set_attribute(ATTR_ERROR_CODE, outcome)
            telemetry.metrics.record_bridge_call(outcome=outcome)

    async def _run_call(
        self,
        writer: FrameWriter,
        call: ToolCall,
        scope: trio.CancelScope,
        frame_limit: int,
        traceparent: str | None,
    ) -> str:
        """Run ``call`` and send its result; the outcome (``ok`` or the error's code)."""
        caps = effective_caps(call, self.config.caps)
        result: ToolResult | None = None
        try:
            with scope:
                refusal = self._refusal(call)
                if refusal is not None:
                    await _send_result(writer, ToolResult(call_id=call.call_id, error=refusal))
                    return refusal.code
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
                            traceparent=traceparent,
                            meta=call_meta(tenant=call.tenant, audit_id=call.audit_id),
                        ),
                    )
                    try:
                        # Cut to fit the frame, as the host cuts to the cap: never a failure
                        # for a result that is merely long (fit_result says how).
                        raw = fit_result(output.raw, result_budget(frame_limit))
                        result = ToolResult(call_id=call.call_id, result=raw)
                    except ResultTooLarge as exc:
                        error = WireError(
                            code="tool.failed",
                            message=f"result does not fit the {frame_limit}-byte frame: {exc}",
                            retryable=False,
                        )
                        result = ToolResult(call_id=call.call_id, error=error)
                except (ToolError, Overloaded) as exc:
                    result = ToolResult(call_id=call.call_id, error=exc.to_wire())
                except Exception as exc:
                    log.exception("bridge: call %s failed", call.call_id)
                    result = ToolResult(call_id=call.call_id, error=internal_error(exc))
                await _send_result(writer, result)
        except WriterClosed:
            pass  # the connection is going; the relay fails the call on its side
        finally:
            self.calls.pop(call.call_id, None)
            self.calls_done += 1
            self._report()
        if result is None:
            return "tool.cancelled"
        return "ok" if result.error is None else result.error.code


async def _send(writer: FrameWriter, frame: Frame) -> None:
    """Queue a frame; a writer that stopped ends the connection (it cancels the serve loop).

    Raises:
        BadFrame: the frame cannot go on the link (only results can fail, see
            ``_send_result``; the bridge's own frames are small).
    """
    with contextlib.suppress(WriterClosed):
        await _send_result(writer, frame)


async def _send_result(writer: FrameWriter, frame: Frame) -> None:
    """Queue a frame; a result that cannot go out fails its call, never the connection.

    Raises:
        WriterClosed: the writer has stopped.
        BadFrame: a frame other than a result cannot go on the link.
    """
    try:
        await writer.send(frame)
    except BadFrame as exc:
        if exc.call_id is None or not isinstance(frame, ToolResult):
            raise
        await writer.send(ToolResult(call_id=exc.call_id, error=exc.to_wire()))
