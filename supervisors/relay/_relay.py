"""The relay process: its supervision tree, its two WSS listeners and its debug endpoint.

::

    relay (one_for_one)
    ├─ telemetry         samples queue depth, calls in flight and devices into gauges
    ├─ router            the device registry; routes calls and cancels
    ├─ devices           one temporary DeviceConnection per connected bridge
    └─ hosts             one temporary HostConnection per connected host
    (tasks beside the tree: device listener, host listener, debug_http)
"""

from __future__ import annotations

import itertools
import logging
import ssl

import attrs
import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from trio_websocket import ConnectionClosed, WebSocketConnection, WebSocketRequest

from actors.relay import (
    SUBPROTOCOL,
    BadFrame,
    DeviceClaims,
    DeviceHello,
    Forbidden,
    HostClaims,
    KeyFileError,
    Unauthenticated,
    authorize,
    load_public_key,
    redirect_for,
    verify_token,
)
from actors.relay._codec import FrameCodec, choose_subprotocol, codec_for
from actors.relay._device_conn import DeviceConnection, read_frames
from actors.relay._host_conn import HostConnection, RelayStats
from actors.relay._router import Router, RttMeter
from actors.relay._wire import (
    CLOSE_BAD_FRAME,
    CLOSE_TRY_LATER,
    CLOSE_WRONG_SHARD,
    close_quietly,
    close_with_error,
)
from actors.relay.messages import RouterMessage
from actors.telemetry import Metrics, Sample, Telemetry, TelemetryConfigError, TelemetrySampler
from supervisors._config import ConfigError
from supervisors._process import raise_fd_limit
from supervisors.edges.debug_http import serve_debug_http
from supervisors.tls import ALPN_HTTP1, TlsConfigError, server_ssl_context, warn_plaintext
from zl_actors import (
    ActorRef,
    ActorSnapshot,
    ActorSpec,
    Restart,
    SupervisorRef,
    SupervisorSpec,
    TooManyChildren,
    open_actor_system,
)

from ._config import DEVICE_PATH, HOST_PATH, RelayConfig, check_config
from ._gate import Handler, HandshakeGate, Ticket, plan_descriptors, serve_gated_websocket

log = logging.getLogger("zl.relay")

#: Messages trio-websocket buffers per connection before it stops reading the socket.
WS_MESSAGE_QUEUE_SIZE = 4
#: The WebSocket opening handshake (after TCP and TLS) must finish within this.
WS_CONNECT_TIMEOUT_S = 10.0
WS_DISCONNECT_TIMEOUT_S = 2.0
#: Grace for connection actors to close their sockets at shutdown.
STOP_GRACE_S = 3.0
#: Flushing the telemetry exporters at shutdown is bounded by this.
TELEMETRY_CLOSE_TIMEOUT_S = 5.0
#: What trio-websocket reads from a socket at a time (its default, 4 KiB, takes two reads
#: for a 4 KiB tool result).
WS_RECEIVE_BUFFER_BYTES = 65_536


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
    device_gate: HandshakeGate
    host_gate: HandshakeGate
    telemetry: Telemetry
    stats: RelayStats
    serial: itertools.count[int] = attrs.field(factory=itertools.count)

    async def _accept(
        self, request: WebSocketRequest, path: str, ticket: Ticket
    ) -> WebSocketConnection | None:
        if request.path.split("?")[0] != path:
            await request.reject(404, body=f"the endpoint here is {path}".encode())
            return None
        # Binary frames when the peer offers them, else JSON (for older peers and debugging).
        subprotocol = choose_subprotocol(request.proposed_subprotocols)
        try:
            if subprotocol is None:
                await request.reject(400, body=f"subprotocol {SUBPROTOCOL} is required".encode())
                return None
            ticket.ws = await request.accept(subprotocol=subprotocol)
        except ConnectionClosed:
            # The peer left during the opening handshake (a client that gave up waiting):
            # that ends its own connection, never the listener and every device on it.
            log.info("relay: a peer left during the WebSocket handshake")
            return None
        return ticket.ws

    async def device_handler(self, request: WebSocketRequest, ticket: Ticket) -> None:
        ws = await self._accept(request, DEVICE_PATH, ticket)
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
                log.info(
                    "relay %s: device of tenant %s redirected to shard %s",
                    self.config.shard_id,
                    claims.tenant,
                    redirect.shard_id,
                )
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
        # Proved who it is: it no longer counts against the handshake caps.
        self.device_gate.settle(ticket)
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
                expires_at=claims.expires_at,
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

    async def host_handler(self, request: WebSocketRequest, ticket: Ticket) -> None:
        ws = await self._accept(request, HOST_PATH, ticket)
        if ws is None:
            return
        try:
            claims = verify_token(_bearer(request), self.keys, self.config.audience, kind="host")
        except Unauthenticated as exc:
            log.info("relay: host connection refused: %s", exc)
            await close_with_error(ws, exc.to_wire())
            return
        assert isinstance(claims, HostClaims)
        self.host_gate.settle(ticket)
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
                telemetry=self.telemetry,
                stats=self.stats,
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


def relay_sampler(shard_id: str, stats: RelayStats) -> Sample:
    """Samples the shard's calls in flight, queued frames and connected devices."""

    def sample(metrics: Metrics, tree: ActorSnapshot) -> None:
        queued = devices = 0
        for node in tree.walk():
            if node.actor_type in (DeviceConnection.__name__, HostConnection.__name__, "Router"):
                queued += node.mailbox.depth
            if node.actor_type == DeviceConnection.__name__:
                devices += 1
        metrics.set_relay_queue_depth(queued, shard=shard_id)
        metrics.set_relay_in_flight(max(0, stats.calls_in_flight), shard=shard_id)
        metrics.set_relay_devices(devices, shard=shard_id)

    return sample


async def run_relay(
    config: RelayConfig,
    *,
    telemetry: Telemetry | None = None,
    task_status: trio.TaskStatus[RelayAddresses] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run one relay shard until cancelled.

    Args:
        config: the shard's configuration (checked here first).
        task_status: receives the :class:`RelayAddresses` once both endpoints listen.

    Raises:
        ValueError: the configuration cannot run (see ``check_config``).
        ConfigError: a public key, certificate or key file cannot be used, or a port
            cannot be bound; the message names the setting.

    On cancellation the listeners close, every connection actor closes its socket
    (1001, going away) within ``STOP_GRACE_S``, and the tree stops. A telemetry passed in
    is the caller's to close; the relay's own is flushed (bounded) as it stops.
    """
    check_config(config)
    own_telemetry = telemetry is None
    if telemetry is None:
        try:
            telemetry = Telemetry.from_config(
                config.telemetry.to_telemetry_config(service_name="zl-relay")
            )
        except TelemetryConfigError as exc:
            raise ValueError(f"telemetry: {exc}") from None
    try:
        await _run_relay(config, telemetry, task_status)
    finally:
        if own_telemetry:
            with trio.move_on_after(TELEMETRY_CLOSE_TIMEOUT_S, shield=True):
                await telemetry.aclose()


async def _run_relay(
    config: RelayConfig, telemetry: Telemetry, task_status: trio.TaskStatus[RelayAddresses]
) -> None:
    try:
        keys = [load_public_key(path) for path in config.public_keys]
    except KeyFileError as exc:
        raise ConfigError(
            f"public_keys: {exc}; give the relay's Ed25519 public key files"
        ) from None
    try:
        device_ctx, host_ctx = _contexts(config)
    except TlsConfigError as exc:
        raise ConfigError(f"tls.cert, tls.key, tls.host_client_ca: {exc}") from None
    scheme = "ws" if device_ctx is None else "wss"
    if device_ctx is None:
        warn_plaintext(
            f"relay shard {config.shard_id} endpoints", flag="tls.insecure_dev_plaintext"
        )
    soft, _ = raise_fd_limit()
    plan = plan_descriptors(
        soft,
        max_pending=config.max_pending_handshakes,
        max_devices=config.max_devices,
        max_hosts=config.max_hosts,
    )
    stats = RelayStats()
    async with open_actor_system("relay", stop_grace_s=STOP_GRACE_S) as system:
        await system.spawn(
            ActorSpec(
                name="telemetry",
                factory=lambda: TelemetrySampler(
                    telemetry.metrics,
                    [relay_sampler(config.shard_id, stats)],
                    interval_s=config.telemetry.sample_interval_s,
                ),
            )
        )
        heartbeat_s = config.limits.heartbeat_s
        router = await system.spawn(
            ActorSpec(name="router", factory=lambda: Router(heartbeat_s=heartbeat_s))
        )
        devices = await system.spawn(
            SupervisorSpec(name="devices", max_children=plan.max_devices, stop_grace_s=STOP_GRACE_S)
        )
        hosts = await system.spawn(
            SupervisorSpec(name="hosts", max_children=plan.max_hosts, stop_grace_s=STOP_GRACE_S)
        )

        def gate(name: str) -> HandshakeGate:
            return HandshakeGate(
                max_pending=plan.max_pending,
                max_per_source=config.max_pending_per_source,
                name=name,
            )

        relay = _Relay(
            config=config,
            keys=keys,
            router=router,
            devices=devices,
            hosts=hosts,
            device_gate=gate("device"),
            host_gate=gate("host"),
            telemetry=telemetry,
            stats=stats,
        )
        async with trio.open_nursery() as nursery:

            async def listen(
                handler: Handler,
                host: str,
                port: int,
                context: ssl.SSLContext | None,
                max_bytes: int,
                gate: HandshakeGate,
            ) -> int:
                try:
                    bound: int = await nursery.start(
                        lambda task_status: serve_gated_websocket(
                            handler,
                            host,
                            port,
                            context,
                            gate=gate,
                            message_queue_size=WS_MESSAGE_QUEUE_SIZE,
                            max_message_size=max_bytes,
                            receive_buffer_size=WS_RECEIVE_BUFFER_BYTES,
                            connect_timeout_s=WS_CONNECT_TIMEOUT_S,
                            disconnect_timeout_s=WS_DISCONNECT_TIMEOUT_S,
                            task_status=task_status,
                        )
                    )
                except OSError as exc:
                    section = f"{gate.name}s"
                    raise ConfigError(
                        f"{section}.host, {section}.port: cannot listen on {host}:{port}: "
                        f"{exc.strerror or exc}; stop what holds it or choose another port"
                    ) from None
                return bound

            limits = config.limits
            device_port = await listen(
                relay.device_handler,
                config.devices.host,
                config.devices.port,
                device_ctx,
                limits.max_frame_bytes,
                relay.device_gate,
            )
            host_port = await listen(
                relay.host_handler,
                config.hosts.host,
                config.hosts.port,
                host_ctx,
                limits.max_host_frame_bytes,
                relay.host_gate,
            )
            debug_url = None
            debug = config.debug
            if debug is not None:
                labelled = attrs.evolve(
                    debug, label=debug.label or f"relay shard {config.shard_id}"
                )
                binding = await nursery.start(
                    lambda task_status: serve_debug_http(
                        system,
                        config=labelled,
                        telemetry=telemetry,
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
                "relay %s: devices at %s, hosts at %s; %d descriptors: up to %d devices, "
                "%d hosts, %d pending handshakes per endpoint (%d per source)",
                config.shard_id,
                addresses.device_url,
                addresses.host_url,
                plan.limit,
                plan.max_devices,
                plan.max_hosts,
                plan.max_pending,
                config.max_pending_per_source,
            )
            task_status.started(addresses)
