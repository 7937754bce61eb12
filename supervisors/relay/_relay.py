"""The relay process: its supervision tree, its two WSS listeners and its debug endpoint.

::

    relay (one_for_one)
    ├─ router            the device registry; routes calls and cancels
    ├─ devices           one temporary DeviceConnection per connected bridge
    └─ hosts             one temporary HostConnection per connected host
    (tasks beside the tree: device listener, host listener, debug_http)
"""

from __future__ import annotations

import itertools
import logging
import ssl
from collections.abc import Awaitable, Callable

import attrs
import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from trio_websocket import ConnectionClosed, WebSocketConnection, WebSocketRequest, WebSocketServer

from actors.relay import (
    SUBPROTOCOL,
    BadFrame,
    DeviceClaims,
    DeviceHello,
    Forbidden,
    HostClaims,
    Unauthenticated,
    authorize,
    load_public_key,
    redirect_for,
    verify_token,
)
from actors.relay._codec import FrameCodec, choose_subprotocol, codec_for
from actors.relay._device_conn import DeviceConnection, read_frames
from actors.relay._host_conn import HostConnection
from actors.relay._router import Router, RttMeter
from actors.relay._wire import (
    CLOSE_BAD_FRAME,
    CLOSE_TRY_LATER,
    CLOSE_WRONG_SHARD,
    close_quietly,
    close_with_error,
)
from actors.relay.messages import RouterMessage
from supervisors.edges.debug_http import serve_debug_http
from supervisors.tls import ALPN_HTTP1, server_ssl_context, warn_plaintext
from zl_actors import (
    ActorRef,
    ActorSpec,
    EagerSocketStream,
    Restart,
    SupervisorRef,
    SupervisorSpec,
    TooManyChildren,
    open_actor_system,
)

from ._config import DEVICE_PATH, HOST_PATH, RelayConfig, check_config

log = logging.getLogger("zl.relay")

#: Messages trio-websocket buffers per connection before it stops reading the socket.
WS_MESSAGE_QUEUE_SIZE = 4
#: The WebSocket opening handshake (after TCP and TLS) must finish within this.
WS_CONNECT_TIMEOUT_S = 10.0
WS_DISCONNECT_TIMEOUT_S = 2.0
#: Grace for connection actors to close their sockets at shutdown.
STOP_GRACE_S = 3.0
#: What trio-websocket reads from a socket at a time (its default, 4 KiB, takes two reads
#: for a 4 KiB tool result).
WS_RECEIVE_BUFFER_BYTES = 65_536


class _EagerListener(trio.abc.Listener[trio.abc.Stream]):
    """A TCP listener whose connections are ``EagerSocketStream``s, under TLS when given.

    Why: Trio's socket stream ends every send and receive with a scheduling point (and two
    context managers) even when the kernel had the bytes at once; a relayed call crosses the
    relay's sockets four times. TLS is set up as ``trio.SSLListener`` does (the handshake
    happens on the first read or write, in the connection's own task).
    """

    def __init__(self, inner: trio.SocketListener, ssl_context: ssl.SSLContext | None) -> None:
        self.inner = inner
        self.ssl_context = ssl_context

    @property
    def port(self) -> int:
        return int(self.inner.socket.getsockname()[1])

    async def accept(self) -> trio.abc.Stream:
        stream = EagerSocketStream.from_trio(await self.inner.accept())
        if self.ssl_context is None:
            return stream
        return trio.SSLStream(stream, self.ssl_context, server_side=True, https_compatible=True)

    async def aclose(self) -> None:
        await self.inner.aclose()


@attrs.frozen(kw_only=True)
class RelayAddresses:
    """Where a running relay listens (reported once it accepts connections)."""

    shard_id: str
    device_url: str
    host_url: str
    debug_url: str | None


def _bearer(request: WebSocketRequest) -> str | None:
    for name, value in request.headers:
        if name.lower() == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
    return None


@attrs.define
class _Relay:
    config: RelayConfig
    keys: list[Ed25519PublicKey]
    router: ActorRef[RouterMessage]
    devices: SupervisorRef
    hosts: SupervisorRef
    serial: itertools.count[int] = attrs.field(factory=itertools.count)

    async def _accept(self, request: WebSocketRequest, path: str) -> WebSocketConnection | None:
        if request.path.split("?")[0] != path:
            await request.reject(404, body=f"the endpoint here is {path}".encode())
            return None
        # Binary frames when the peer offers them, else JSON (for older peers and debugging).
        subprotocol = choose_subprotocol(request.proposed_subprotocols)
        try:
            if subprotocol is None:
                await request.reject(400, body=f"subprotocol {SUBPROTOCOL} is required".encode())
                return None
            return await request.accept(subprotocol=subprotocol)
        except ConnectionClosed:
            # The peer left during the opening handshake (a client that gave up waiting):
            # that ends its own connection, never the listener and every device on it.
            log.info("relay: a peer left during the WebSocket handshake")
            return None

    async def device_handler(self, request: WebSocketRequest) -> None:
        ws = await self._accept(request, DEVICE_PATH)
        if ws is None:
            return
        limits = self.config.limits
        try:
            claims = verify_token(_bearer(request), self.keys, self.config.audience, kind="device")
            assert isinstance(claims, DeviceClaims)
            redirect = redirect_for(
                claims.tenant, self.config.device_shards(), local_shard_id=self.config.shard_id
            )
            if redirect is not None:
                await close_quietly(
                    ws, CLOSE_WRONG_SHARD, f"tenant is served by {redirect.shard_id}", redirect
                )
                return
            codec = codec_for(ws.subprotocol)
            hello = await _read_hello(ws, codec, limits.hello_timeout_s, limits.max_frame_bytes)
            authorize(claims, claims.tenant, hello.device_id)
        except (Unauthenticated, Forbidden, BadFrame) as exc:
            log.info("relay: device connection refused: %s", exc)
            await close_with_error(ws, exc.to_wire())
            return
        except Exception as exc:
            log.info("relay: device connection lost during hello: %s", type(exc).__name__)
            return
        done = trio.Event()
        rtt = RttMeter()
        name = f"{claims.tenant}:{hello.device_id}:{next(self.serial)}"
        spec = ActorSpec(
            name=name,
            factory=lambda: DeviceConnection(
                ws=ws,
                tenant=claims.tenant,
                hello=hello,
                router=self.router,
                limits=limits,
                done=done,
                codec=codec,
                rtt=rtt,
            ),
            restart=Restart.TEMPORARY,
        )
        try:
            device = await self.devices.start_child(spec)
        except TooManyChildren:
            await close_quietly(ws, CLOSE_TRY_LATER, "relay at capacity")
            return
        except Exception as exc:
            log.info("relay: device %s did not start: %s", name, exc)
            return
        # This task reads the connection for the actor: one task fewer per idle device.
        await read_frames(
            ws,
            device,
            idle_s=limits.device_dead_after_s,
            max_bytes=limits.max_frame_bytes,
            codec=codec,
            rtt=rtt,
        )
        await done.wait()

    async def host_handler(self, request: WebSocketRequest) -> None:
        ws = await self._accept(request, HOST_PATH)
        if ws is None:
            return
        try:
            claims = verify_token(_bearer(request), self.keys, self.config.audience, kind="host")
        except Unauthenticated as exc:
            log.info("relay: host connection refused: %s", exc)
            await close_with_error(ws, exc.to_wire())
            return
        assert isinstance(claims, HostClaims)
        done = trio.Event()
        spec = ActorSpec(
            name=f"{claims.host_id}:{next(self.serial)}",
            factory=lambda: HostConnection(
                ws=ws,
                claims=claims,
                router=self.router,
                shards=self.config.host_shards(),
                local_shard_id=self.config.shard_id,
                limits=self.config.limits,
                done=done,
                codec=codec_for(ws.subprotocol),
            ),
            restart=Restart.TEMPORARY,
        )
        try:
            await self.hosts.start_child(spec)
        except TooManyChildren:
            await close_quietly(ws, CLOSE_TRY_LATER, "relay at capacity")
            return
        except Exception:
            await close_quietly(ws, CLOSE_BAD_FRAME, "host connection failed to start")
            return
        await done.wait()


async def _read_hello(
    ws: WebSocketConnection, codec: FrameCodec, timeout_s: float, max_bytes: int
) -> DeviceHello:
    """The connection's first frame, which must be a ``device.hello``.

    Raises:
        BadFrame: nothing within ``timeout_s``, a malformed frame, or another frame type.
        trio_websocket.ConnectionClosed: the peer went away.
    """
    data: str | bytes | None = None
    with trio.move_on_after(timeout_s):
        data = await ws.get_message()
    if data is None:
        raise BadFrame(f"no device.hello within {timeout_s:g} s")
    frames = codec.decode(data, max_bytes=max_bytes)
    hello = frames[0]
    if not isinstance(hello, DeviceHello):
        raise BadFrame(f"the first frame must be device.hello, not {hello.TYPE}")
    if len(frames) > 1:
        raise BadFrame("device.hello must come alone, before any other frame")
    return hello


def _contexts(config: RelayConfig) -> tuple[ssl.SSLContext | None, ssl.SSLContext | None]:
    tls = config.tls
    if tls.cert is None or tls.key is None:
        return None, None
    device = server_ssl_context(tls.cert, tls.key, alpn=ALPN_HTTP1)
    host = server_ssl_context(tls.cert, tls.key, client_ca=tls.host_client_ca, alpn=ALPN_HTTP1)
    for context in (device, host):
        # No TLS 1.3 session tickets: bridges and hosts keep one long connection and never
        # resume, and each ticket is a session the shard makes, encrypts and sends for
        # nothing (memory and CPU per connection, times every device).
        context.num_tickets = 0
    return device, host


async def run_relay(
    config: RelayConfig,
    *,
    task_status: trio.TaskStatus[RelayAddresses] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run one relay shard until cancelled.

    Args:
        config: the shard's configuration (checked here first).
        task_status: receives the :class:`RelayAddresses` once both endpoints listen.

    Raises:
        ValueError: the configuration cannot run (see ``check_config``).
        KeyFileError: a public key file cannot be used.
        TlsConfigError: a certificate or key file cannot be used.
        OSError: a port cannot be bound.

    On cancellation the listeners close, every connection actor closes its socket
    (1001, going away) within ``STOP_GRACE_S``, and the tree stops.
    """
    check_config(config)
    keys = [load_public_key(path) for path in config.public_keys]
    device_ctx, host_ctx = _contexts(config)
    scheme = "ws" if device_ctx is None else "wss"
    if device_ctx is None:
        warn_plaintext(
            f"relay shard {config.shard_id} endpoints", flag="tls.insecure_dev_plaintext"
        )
    async with open_actor_system("relay", stop_grace_s=STOP_GRACE_S) as system:
        heartbeat_s = config.limits.heartbeat_s
        router = await system.spawn(
            ActorSpec(name="router", factory=lambda: Router(heartbeat_s=heartbeat_s))
        )
        devices = await system.spawn(
            SupervisorSpec(
                name="devices", max_children=config.max_devices, stop_grace_s=STOP_GRACE_S
            )
        )
        hosts = await system.spawn(
            SupervisorSpec(name="hosts", max_children=config.max_hosts, stop_grace_s=STOP_GRACE_S)
        )
        relay = _Relay(config=config, keys=keys, router=router, devices=devices, hosts=hosts)
        max_bytes = config.limits.max_frame_bytes
        async with trio.open_nursery() as nursery:

            async def listen(
                handler: Callable[[WebSocketRequest], Awaitable[None]],
                host: str,
                port: int,
                context: ssl.SSLContext | None,
            ) -> int:
                listeners = [
                    _EagerListener(listener, context)
                    for listener in await trio.open_tcp_listeners(port, host=host)
                ]
                server = WebSocketServer(
                    handler,
                    listeners,  # type: ignore[arg-type]  # any trio listener will do
                    message_queue_size=WS_MESSAGE_QUEUE_SIZE,
                    max_message_size=max_bytes,
                    receive_buffer_size=WS_RECEIVE_BUFFER_BYTES,
                    connect_timeout=WS_CONNECT_TIMEOUT_S,
                    disconnect_timeout=WS_DISCONNECT_TIMEOUT_S,
                )
                await nursery.start(server.run)
                return listeners[0].port

            device_port = await listen(
                relay.device_handler, config.devices.host, config.devices.port, device_ctx
            )
            host_port = await listen(
                relay.host_handler, config.hosts.host, config.hosts.port, host_ctx
            )
            debug_url = None
            debug = config.debug
            if debug is not None:
                binding = await nursery.start(
                    lambda task_status: serve_debug_http(
                        system,
                        config=debug,
                        task_status=task_status,
                    )
                )
                debug_url = binding.url
            addresses = RelayAddresses(
                shard_id=config.shard_id,
                device_url=f"{scheme}://{config.devices.host}:{device_port}{DEVICE_PATH}",
                host_url=f"{scheme}://{config.hosts.host}:{host_port}{HOST_PATH}",
                debug_url=debug_url,
            )
            log.info(
                "relay %s: devices at %s, hosts at %s",
                config.shard_id,
                addresses.device_url,
                addresses.host_url,
            )
            task_status.started(addresses)
