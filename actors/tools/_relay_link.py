"""The relay ``ToolLink``: the host reaches devices through Tool Relay shards.

One ``ShardConnection`` actor per shard URL keeps a persistent WebSocket (TLS, host
bearer token, optional client certificate) and multiplexes every call to that shard's
tenants over it, matching results by call id. It reconnects with backoff and jitter;
calls made while it is down wait for the connection within their own deadline.
``RelayToolLink`` picks the shard of a tenant by rendezvous hashing and follows a
``redirect`` when a shard says the tenant lives elsewhere.

Errors: ``actors.errors.ToolError`` with the code the relay or the device gave
(``relay.device_offline``, ``relay.overloaded``, ``relay.forbidden``, ``tool.not_found``,
``tool.timeout``, ...) or ``tool.unavailable`` when no shard connection works.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import random
import ssl
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

import attrs
import trio
from attrs.validators import gt
from trio_websocket import ConnectionClosed, HandshakeError, WebSocketConnection

from actors.errors import ToolError, ToolsUnreachable
from actors.relay import (
    DEFAULT_MAX_HOST_FRAME_BYTES,
    OFFERED_SUBPROTOCOLS,
    SUBPROTOCOL,
    BadFrame,
    Caps,
    Catalog,
    CatalogGet,
    ErrorFrame,
    Frame,
    FrameCodec,
    Ping,
    Pong,
    Redirect,
    Shard,
    ToolCall,
    ToolCancel,
    ToolResult,
    codec_for,
    shard_for,
)
from actors.relay._codec import FrameWriter, WriterClosed, open_frame_writer
from actors.relay._dial import open_relay_websocket
from zl_actors import (
    Actor,
    ActorContext,
    ActorError,
    ActorRef,
    ActorSpec,
    AskTimeout,
    DeferredReply,
    Request,
    SupervisorRef,
)

from .link import ToolDescriptor, ToolInvocation, ToolOutput

log = logging.getLogger("zl.tools.relay")

SHARD_MAILBOX_CAPACITY: Final = 1024
#: Calls that may wait for a shard connection to come (up); one more is refused.
MAX_WAITING: Final = 1024
#: Frames trio-websocket buffers from a shard before it stops reading the socket.
WS_MESSAGE_QUEUE_SIZE: Final = 64
#: The link waits this much past a call's timeout for the device's own tool.timeout.
ASK_GRACE_S: Final = 2.0
CATALOG_TIMEOUT_S: Final = 5.0
CANCEL_REASON: Final = "the host gave up on the call"
ERROR_META_KEY: Final = "dev.zerolatency/error"
_LINK: Final = "the relay link"


def _shard_tuple(shards: Iterable[Shard]) -> tuple[Shard, ...]:
    return tuple(shards)


@attrs.frozen(kw_only=True)
class RelayLinkSettings:
    """How the host reaches its relay shards.

    Args:
        shards: every shard, with the URL hosts dial (``wss://.../v1/host``).
        token: the host bearer token (``zl token host``).
        ssl_context: verifies the relays (``client_ssl_context(ca, alpn=ALPN_HTTP1)``, with
            a client certificate for mutual TLS); None only for ws:// in development.
        heartbeat_s: ping interval (also the host→relay RTT sample rate).
        connect_timeout_s: TCP + TLS + WebSocket handshake.
        reconnect_initial_s, reconnect_max_s: backoff between attempts (jittered).
        max_frame_bytes: the host link's frame limit: the largest frame accepted from a
            relay, and sent to one (a larger ``tool.call`` fails only that call). At least
            the relays' ``limits.max_host_frame_bytes``.
        binary_frames: offer the binary subprotocol first (the relay then uses it); False
            speaks JSON only.
    """

    shards: tuple[Shard, ...] = attrs.field(converter=_shard_tuple)
    token: str = attrs.field(repr=False)
    ssl_context: ssl.SSLContext | None = None
    heartbeat_s: float = attrs.field(default=5.0, validator=gt(0))
    connect_timeout_s: float = attrs.field(default=10.0, validator=gt(0))
    reconnect_initial_s: float = attrs.field(default=0.2, validator=gt(0))
    reconnect_max_s: float = attrs.field(default=10.0, validator=gt(0))
    send_timeout_s: float = attrs.field(default=10.0, validator=gt(0))
    max_frame_bytes: int = attrs.field(default=DEFAULT_MAX_HOST_FRAME_BYTES, validator=gt(0))
    binary_frames: bool = True


# --- the per-shard actor's protocol -----------------------------------------------------


@attrs.frozen(kw_only=True)
class SendCall(Request[ToolResult | Redirect]):
    """Send a call; answered by its ``tool.result`` or by a ``redirect`` for its tenant."""

    frame: ToolCall


@attrs.frozen(kw_only=True)
class SendCancel:
    """Cancel a call in flight (forgotten locally; ``tool.cancel`` goes to the relay)."""

    call_id: str
    reason: str


@attrs.frozen(kw_only=True)
class FetchCatalog(Request[Catalog | Redirect]):
    tenant: str
    device_id: str


@attrs.frozen(kw_only=True)
class GetShardRtt(Request[float | None]):
    """The last host↔relay round trip in milliseconds (None before the first pong)."""


ShardMessage = SendCall | SendCancel | FetchCatalog | GetShardRtt


@attrs.define
class _Pending:
    reply: DeferredReply
    tenant: str
    frame: Frame


#: Called with a host↔device round trip in milliseconds; runs in the shard connection's
#: read loop, so it must be quick and must not raise (a metric's ``record``).
RttObserver = Callable[[float], None]


class ShardConnection(Actor[ShardMessage]):
    """The persistent, multiplexed connection to one relay shard (see the module docstring).

    Args:
        url: the shard's host endpoint.
        settings: how to reach it.
        on_rtt: given host↔relay plus relay↔device round trip for every ``tool.result``
            that carries the relay's ``device_rtt_ms``, once this connection has its own.
    """

    mailbox_capacity = SHARD_MAILBOX_CAPACITY

    def __init__(
        self,
        url: str,
        settings: RelayLinkSettings,
        *,
        on_rtt: RttObserver | None = None,
        shard_id: str = "?",
    ) -> None:
        self.url = url
        self.shard_id = shard_id
        #: Why the last connection attempt failed or the connection dropped (None while
        #: connected, or before the first attempt has ended).
        self.down_reason: str | None = None
        self.settings = settings
        self.on_rtt = on_rtt
        #: The open connection's writer (None while there is no connection).
        self.writer: FrameWriter | None = None
        #: Whether the last attempt connected (so that its end is a drop, not a failure).
        self.connected = False
        self.pending: dict[str, _Pending] = {}
        self.waiting: list[str] = []
        self.rtt_ms: float | None = None
        self.rng = random.Random()
        self.nonces = itertools.count()

    async def on_start(self, ctx: ActorContext[ShardMessage]) -> None:
        ctx.nursery.start_soon(self._run)

    async def handle(self, message: ShardMessage, ctx: ActorContext[ShardMessage]) -> object:
        match message:
            case SendCall(frame=frame):
                self._enqueue(frame.call_id, frame.tenant, frame, ctx)
            case FetchCatalog(tenant=tenant, device_id=device_id):
                if self.writer is None and self.down_reason is not None:
                    # Known to be down: say so now, rather than let the session wait out its
                    # catalog timeout and answer without tools as if the device had none.
                    ctx.defer_reply().fail(
                        ToolsUnreachable(
                            f"relay shard {self.shard_id} ({self.url}) is unreachable: "
                            f"{self.down_reason}"
                        )
                    )
                    return None
                request_id = f"cat-{uuid.uuid4().hex}"
                get = CatalogGet(request_id=request_id, tenant=tenant, device_id=device_id)
                self._enqueue(request_id, tenant, get, ctx)
            case SendCancel(call_id=call_id, reason=reason):
                if self.pending.pop(call_id, None) is not None and self.writer is not None:
                    self._send_soon(None, ToolCancel(call_id=call_id, reason=reason), ctx)
            case GetShardRtt():
                return self.rtt_ms
        return None

    def _enqueue(
        self, key: str, tenant: str, frame: Frame, ctx: ActorContext[ShardMessage]
    ) -> None:
        reply = ctx.defer_reply()
        if len(self.pending) >= MAX_WAITING + SHARD_MAILBOX_CAPACITY:
            reply.fail(ToolError("relay.overloaded", "too many calls waiting for the relay"))
            return
        self.pending[key] = _Pending(reply=reply, tenant=tenant, frame=frame)
        if self.writer is not None:
            self._send_soon(key, frame, ctx)
        else:
            # Encoded (and measured) when the connection comes: its codec decides the size.
            self.waiting.append(key)

    def _send_soon(self, key: str | None, frame: Frame, ctx: ActorContext[ShardMessage]) -> None:
        """Queue ``frame`` on the connection's writer, which coalesces what is ready."""
        writer = self.writer
        if writer is None:
            return
        try:
            writer.send_nowait(frame)
        except trio.WouldBlock:
            # The writer's queue is full (the relay reads slowly): wait for room in a task of
            # its own, so that this actor keeps taking results meanwhile.
            ctx.nursery.start_soon(self._send_quietly, writer, key, frame)
        except BadFrame as exc:
            self._refused(key, frame, exc)
        except WriterClosed:
            pass  # the connection is going; its calls are failed when it ends

    async def _send_quietly(self, writer: FrameWriter, key: str | None, frame: Frame) -> None:
        try:
            await writer.send(frame)
        except BadFrame as exc:
            self._refused(key, frame, exc)
        except WriterClosed:
            pass

    def _refused(self, key: str | None, frame: Frame, exc: BadFrame) -> None:
        """A frame this side cannot send: its call (or catalog request) fails, nothing else.

        Measured before it is sent: a frame over the link's limit would make the relay close
        the connection (1009) that every tenant's calls share.
        """
        pending = self.pending.pop(key, None) if key is not None else None
        if pending is None:
            log.warning("relay link: not sending a %s frame: %s", frame.TYPE, exc.message)
            return
        if key in self.waiting:
            self.waiting.remove(key)
        pending.reply.fail(ToolError(exc.code, exc.message))

    async def _run(self) -> None:
        attempt = 0
        while True:
            try:
                await self._connect_once()
                attempt = 0
                reason = "connection closed"
            except (HandshakeError, ConnectionClosed, OSError, trio.TooSlowError, BadFrame) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            if self.connected:
                log.info(
                    "relay shard %s (%s): connection dropped: %s", self.shard_id, self.url, reason
                )
            elif attempt == 0 or self.down_reason != reason:
                log.info("relay shard %s (%s): cannot connect: %s", self.shard_id, self.url, reason)
            self.down_reason = reason
            self.connected = False
            for key in [k for k in self.waiting if isinstance(self.pending[k].frame, CatalogGet)]:
                # A catalog is asked for when a turn starts: tell it now that the shard is
                # unreachable. Calls wait on within their own deadlines.
                self.waiting.remove(key)
                self.pending.pop(key).reply.fail(
                    ToolsUnreachable(
                        f"relay shard {self.shard_id} ({self.url}) is unreachable: {reason}"
                    )
                )
            for key, pending in list(self.pending.items()):
                if key not in self.waiting:
                    # Sent on the lost connection: its result cannot come back any more.
                    del self.pending[key]
                    pending.reply.fail(
                        ToolError("tool.unavailable", f"relay connection lost ({reason})")
                    )
            attempt += 1
            delay = min(
                self.settings.reconnect_initial_s * 2 ** (attempt - 1),
                self.settings.reconnect_max_s,
            )
            await trio.sleep(delay * self.rng.uniform(0.5, 1.5))

    async def _connect_once(self) -> None:
        async with open_relay_websocket(
            self.url,
            self.settings.ssl_context,
            token=self.settings.token,
            message_queue_size=WS_MESSAGE_QUEUE_SIZE,
            max_message_size=self.settings.max_frame_bytes,
            connect_timeout_s=self.settings.connect_timeout_s,
            subprotocols=OFFERED_SUBPROTOCOLS if self.settings.binary_frames else (SUBPROTOCOL,),
        ) as ws:
            codec = codec_for(ws.subprotocol)
            self.connected = True
            self.down_reason = None
            log.info(
                "relay shard %s (%s): connected (%s frames)",
                self.shard_id,
                self.url,
                "binary" if codec.binary else "JSON",
            )
            try:
                async with open_frame_writer(
                    ws,
                    codec,
                    limit=self.settings.max_frame_bytes,
                    link=_LINK,
                    timeout_s=self.settings.send_timeout_s,
                ) as (writer, nursery):
                    self.writer = writer
                    waiting, self.waiting = self.waiting, []
                    for key in waiting:
                        if key in self.pending:
                            await self._send_quietly(writer, key, self.pending[key].frame)
                    nursery.start_soon(self._pinger, writer)
                    await self._read(ws, codec)
            finally:
                self.writer = None

    async def _pinger(self, writer: FrameWriter) -> None:
        while True:
            ping = Ping(nonce=f"h{next(self.nonces)}", sent_at_ms=trio.current_time() * 1000)
            await self._send_quietly(writer, None, ping)
            await trio.sleep(self.settings.heartbeat_s)

    async def _read(self, ws: WebSocketConnection, codec: FrameCodec) -> None:
        idle_s = self.settings.heartbeat_s * 3
        while True:
            with trio.move_on_after(idle_s) as idle:
                data = await ws.get_message()
            if idle.cancelled_caught:
                raise trio.TooSlowError(f"no frame from the relay for {idle_s:g} s")
            # The relay validated every frame where it entered (from a device); trusted here,
            # but still read strictly: a frame that cannot be read fails only its own call.
            try:
                frames = codec.decode_each(
                    data, max_bytes=self.settings.max_frame_bytes, validate=False
                )
            except BadFrame as exc:
                self._bad_frame(exc)
                continue
            for frame in frames:
                if isinstance(frame, BadFrame):
                    self._bad_frame(frame)
                else:
                    await self._on_frame(frame)

    def _bad_frame(self, exc: BadFrame) -> None:
        pending = self.pending.pop(exc.call_id, None) if exc.call_id else None
        log.warning(
            "relay shard %s sent a bad frame (call %s): %s",
            self.shard_id,
            exc.call_id or "?",
            exc.message,
        )
        if pending is not None:
            pending.reply.fail(ToolError(exc.code, exc.message))

    async def _on_frame(self, frame: Frame) -> None:
        match frame:
            case ToolResult(call_id=key, device_rtt_ms=device_rtt):
                self._resolve(key, frame)
                if device_rtt is not None:
                    self._observe_rtt(device_rtt)
            case Catalog(request_id=key):
                self._resolve(key, frame)
            case ErrorFrame(call_id=str(key)) if key in self.pending:
                self.pending.pop(key).reply.fail(ToolError(frame.code, frame.message))
            case Redirect(tenant=tenant):
                for key, pending in list(self.pending.items()):
                    if pending.tenant == tenant:
                        del self.pending[key]
                        pending.reply.resolve(frame)
            case Pong(sent_at_ms=sent_at_ms):
                self.rtt_ms = max(0.0, trio.current_time() * 1000 - sent_at_ms)
            case Ping(nonce=nonce, sent_at_ms=sent_at_ms):
                if self.writer is not None:
                    pong = Pong(nonce=nonce, sent_at_ms=sent_at_ms)
                    await self._send_quietly(self.writer, None, pong)
            case ErrorFrame(code=code, message=message):
                log.warning("relay %s reports %s: %s", self.url, code, message)
            case _:
                log.debug("relay link: ignoring %s frame", frame.TYPE)

    def _resolve(self, key: str, frame: ToolResult | Catalog) -> None:
        pending = self.pending.pop(key, None)
        if pending is not None:
            pending.reply.resolve(frame)

    def _observe_rtt(self, device_rtt_ms: float) -> None:
        # Both legs are the latest heartbeat samples, not this call's own duration, which
        # would add the tool's work to the network's round trip.
        if self.on_rtt is not None and self.rtt_ms is not None:
            self.on_rtt(self.rtt_ms + device_rtt_ms)


# --- the link ---------------------------------------------------------------------------


def _text_of(content: Any) -> str:
    if not isinstance(content, list):
        return ""
    return "\n".join(
        block.get("text", "")
        for block in content
        if isinstance(block, dict) and block.get("type") == "text"
    )


def output_of(result: dict[str, Any]) -> ToolOutput:
    """A ``ToolOutput`` from the MCP ``CallToolResult`` a device sent back."""
    text = _text_of(result.get("content"))
    if result.get("isError") is True:
        meta = result.get("_meta")
        error = meta.get(ERROR_META_KEY) if isinstance(meta, dict) else None
        code = error.get("code") if isinstance(error, dict) else None
        message = error.get("message") if isinstance(error, dict) else None
        return ToolOutput(
            structured=None,
            text=text,
            is_error=True,
            error_code=code if isinstance(code, str) else None,
            error_message=message if isinstance(message, str) else (text or None),
        )
    structured = result.get("structuredContent")
    return ToolOutput(structured=structured if isinstance(structured, dict) else None, text=text)


class RelayToolLink:
    """``ToolLink`` over relay shards.

    Build it with :meth:`start` inside the host's tree; it starts one ``ShardConnection``
    child under ``parent`` per shard it needs, on first use. ``on_rtt`` is handed to each
    (see ``ShardConnection``): the host records it as ``host_to_device_rtt_ms``.
    """

    def __init__(
        self,
        parent: SupervisorRef,
        settings: RelayLinkSettings,
        *,
        on_rtt: RttObserver | None = None,
    ) -> None:
        self.parent = parent
        self.settings = settings
        self.on_rtt = on_rtt
        self.connections: dict[str, ActorRef[ShardMessage]] = {}
        self.overrides: dict[str, str] = {}
        #: Which shard each URL is (from the configuration and from redirects), for names
        #: in the actor tree and in logs.
        self.shard_ids: dict[str, str] = {shard.url: shard.shard_id for shard in settings.shards}
        self.lock = trio.Lock()
        self.serial = itertools.count()

    @classmethod
    async def start(
        cls,
        parent: SupervisorRef,
        settings: RelayLinkSettings,
        *,
        on_rtt: RttObserver | None = None,
    ) -> RelayToolLink:
        """A link whose shard connections are children of ``parent`` (opened lazily)."""
        if not settings.shards:
            raise ValueError("the relay link needs at least one shard")
        return cls(parent, settings, on_rtt=on_rtt)

    async def _connection(self, url: str) -> ActorRef[ShardMessage]:
        async with self.lock:
            ref = self.connections.get(url)
            if ref is None:
                shard_id = self.shard_ids.get(url, "?")
                spec = ActorSpec(
                    # The shard in the name: `zl tree` shows which shard each connection is for.
                    name=f"relay_shard_{next(self.serial)}:{shard_id}",
                    factory=lambda: ShardConnection(
                        url, self.settings, on_rtt=self.on_rtt, shard_id=shard_id
                    ),
                )
                ref = await self.parent.start_child(spec)
                self.connections[url] = ref
            return ref

    def _follow(self, redirect: Redirect) -> None:
        log.info(
            "relay: tenant %s is served by shard %s (%s); following the redirect",
            redirect.tenant,
            redirect.shard_id,
            redirect.shard_url,
        )
        self.overrides[redirect.tenant] = redirect.shard_url
        self.shard_ids.setdefault(redirect.shard_url, redirect.shard_id)

    def url_for(self, tenant: str) -> str:
        """The shard URL for ``tenant``: a redirect learnt earlier, else rendezvous hashing."""
        return self.overrides.get(tenant) or shard_for(tenant, self.settings.shards).url

    async def catalog(self, *, tenant: str, device_id: str) -> tuple[ToolDescriptor, ...]:
        answer = await self._catalog(tenant, device_id)
        if not answer.online:
            raise ToolError(
                "tool.unavailable", f"device {device_id!r} is not connected to the relay"
            )
        return tuple(
            ToolDescriptor(
                name=t.name,
                version=t.version,
                description=t.description,
                input_schema=t.input_schema,
                output_schema=t.output_schema,
            )
            for t in answer.tools
        )

    async def _catalog(self, tenant: str, device_id: str) -> Catalog:
        for _ in range(3):
            ref = await self._connection(self.url_for(tenant))
            try:
                answer = await ref.ask(
                    FetchCatalog(tenant=tenant, device_id=device_id), timeout=CATALOG_TIMEOUT_S
                )
            except ToolError:
                raise
            except (AskTimeout, ActorError) as exc:
                shard = self.shard_ids.get(self.url_for(tenant), "?")
                raise ToolsUnreachable(
                    f"relay shard {shard} ({self.url_for(tenant)}) did not answer: {exc}"
                ) from None
            if isinstance(answer, Redirect):
                self._follow(answer)
                continue
            return answer
        raise ToolError("tool.unavailable", "relay redirects did not settle")

    async def host_to_device_rtt_ms(self, *, tenant: str, device_id: str) -> float | None:
        """Host↔relay plus relay↔device round trip, as last measured (None if unknown)."""
        answer = await self._catalog(tenant, device_id)
        ref = await self._connection(self.url_for(tenant))
        link_rtt = await ref.ask(GetShardRtt(), timeout=CATALOG_TIMEOUT_S)
        if answer.rtt_ms is None or link_rtt is None:
            return None
        return link_rtt + answer.rtt_ms

    async def invoke(self, call: ToolInvocation) -> ToolOutput:
        deadline_ms = max(1, round(call.timeout_s * 1000))
        frame = ToolCall(
            call_id=call.call_id,
            tenant=call.tenant,
            device_id=call.device_id,
            tool=call.tool,
            version=call.version,
            args=dict(call.arguments),
            deadline_ms=deadline_ms,
            caps=Caps(timeout_ms=deadline_ms, max_bytes=call.max_bytes),
            traceparent=call.traceparent,
            audit_id=call.audit_id,
            policy=call.policy,
        )
        give_up_at = trio.current_time() + call.timeout_s + ASK_GRACE_S
        for _ in range(3):
            ref = await self._connection(self.url_for(call.tenant))
            answer = await self._ask(ref, frame, give_up_at)
            if isinstance(answer, Redirect):
                self._follow(answer)
                continue
            if answer.error is not None:
                raise ToolError(answer.error.code, answer.error.message)
            return output_of(answer.result or {})
        raise ToolError("tool.unavailable", "relay redirects did not settle")

    async def _ask(
        self, ref: ActorRef[ShardMessage], frame: ToolCall, give_up_at: float
    ) -> ToolResult | Redirect:
        finished = False
        try:
            answer = await ref.ask(
                SendCall(frame=frame), timeout=max(0.001, give_up_at - trio.current_time())
            )
            finished = True
            return answer
        except AskTimeout:
            raise ToolError(
                "tool.timeout", f"{frame.tool}: no answer from the device in time"
            ) from None
        except ToolError:
            finished = True
            raise
        except ActorError as exc:
            finished = True
            raise ToolError("tool.unavailable", f"relay link: {exc}") from None
        finally:
            if not finished:
                # Timeout or cancellation: the relay and the device are told (bounded: no wait).
                with contextlib.suppress(ActorError):
                    ref.send_nowait(SendCancel(call_id=frame.call_id, reason=CANCEL_REASON))


def relay_link_shards(entries: Sequence[tuple[str, str]]) -> tuple[Shard, ...]:
    """``Shard`` objects from (shard_id, host URL) pairs, e.g. read from the host's config."""
    return tuple(Shard(shard_id=shard_id, url=url) for shard_id, url in entries)
