"""The BFF process: its supervision tree, wired from a ``BffConfig``.

::

    bff (one_for_one)
    ├─ sessions        one temporary ChatSession per session, each owning one StreamChat
    └─ http_server     Hypercorn (Trio worker) serving the Starlette app over HTTPS

The gRPC channel to the host lives around the actor system (as the host's HTTP pool does),
so a restarted child never pulls it from under running sessions; its connections are made
on first use and again after one is lost. At shutdown the HTTP server drains first (open
SSE streams may finish within ``http.shutdown_grace_s``), then the sessions are stopped,
each resetting its stream to the host.
"""

from __future__ import annotations

import logging
import socket
import ssl
from pathlib import Path
from typing import Any

import attrs
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.config import Sockets
from hypercorn.trio.run import worker_serve
from hypercorn.utils import wrap_app

from actors.relay import KeyFileError
from supervisors._config import ConfigError
from supervisors.edges.grpc import GrpcClientConfig, open_grpc_channel
from supervisors.tls import (
    ALPN_H2,
    TlsConfigError,
    client_ssl_context,
    generate_dev_certs,
    server_ssl_context,
    warn_plaintext,
)
from zl_actors import Actor, ActorContext, ActorSpec, Request, SupervisorSpec, open_actor_system

from ._app import BffState, make_app
from ._auth import CallerVerifier
from ._config import BffConfig, check_config
from ._table import SessionTable

log = logging.getLogger("zl.bff")

#: Connections waiting in the kernel's accept queue.
LISTEN_BACKLOG = 256
#: The drain of the HTTP server gets its grace plus this before the BFF stops regardless.
DRAIN_MARGIN_S = 2.0


@attrs.frozen(kw_only=True)
class BffAddresses:
    """Where a running BFF listens (what ``zl bff`` prints and writes to --ready-file)."""

    url: str
    host: str
    port: int
    tls: bool
    #: The CA a browser or client should trust, when the BFF made development certificates.
    ca_cert: str | None


def _listen(host: str, port: int, unacked_timeout_s: float, send_buffer: int) -> socket.socket:
    info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(info[0], info[1], info[2])
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "TCP_USER_TIMEOUT"):
            # Inherited by accepted sockets: a client that stops reading for good (its
            # window shut) cannot hold a response, and the turn behind it, forever.
            sock.setsockopt(
                socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(unacked_timeout_s * 1000)
            )
        # Inherited by accepted sockets: each SSE event leaves when it is written (no Nagle
        # wait behind the previous one's acknowledgement).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if send_buffer:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
        sock.bind(info[4])
        sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"http: cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


def _http_tls(config: BffConfig) -> tuple[str, str, str | None] | None:
    """(cert, key, CA to trust if we made it) for the listener, or None for plaintext."""
    http = config.http
    if http.tls_cert:
        return http.tls_cert, http.tls_key, None
    if http.dev_certs_dir:
        certs = generate_dev_certs(Path(http.dev_certs_dir))
        return str(certs.server_cert), str(certs.server_key), str(certs.ca_cert)
    warn_plaintext("client -> BFF HTTP", flag="http.insecure_dev_plaintext")
    return None


def host_client_config(config: BffConfig) -> GrpcClientConfig:
    """How the BFF dials the host (TLS with the configured CA; mutual TLS if a cert is set)."""
    host = config.host
    context: ssl.SSLContext | None = None
    if host.insecure_dev_plaintext:
        warn_plaintext("BFF -> host gRPC", flag="host.insecure_dev_plaintext")
    else:
        try:
            context = client_ssl_context(
                host.ca,
                client_cert=host.client_cert or None,
                client_key=host.client_key or None,
                alpn=ALPN_H2,
            )
        except TlsConfigError as exc:
            raise ConfigError(f"host: {exc}") from None
    return GrpcClientConfig(
        target=host.target,
        ssl_context=context,
        server_hostname=host.server_name,
        connect_timeout_s=host.connect_timeout_s,
        stream_window_bytes=host.stream_window_bytes,
        max_connections=host.max_connections,
    )


def check_files(config: BffConfig) -> None:
    """Open every key and certificate the configuration names, before anything starts.

    Raises:
        ConfigError: naming the setting and what is wrong with its file.
    """
    make_verifier(config)
    host = config.host
    if not host.insecure_dev_plaintext:
        try:
            client_ssl_context(
                host.ca, client_cert=host.client_cert or None, client_key=host.client_key or None
            )
        except TlsConfigError as exc:
            raise ConfigError(f"host: {exc}") from None
    if config.http.tls_cert:
        try:
            server_ssl_context(config.http.tls_cert, config.http.tls_key)
        except TlsConfigError as exc:
            raise ConfigError(f"http: {exc}") from None


def make_verifier(config: BffConfig) -> CallerVerifier:
    auth = config.auth
    try:
        return CallerVerifier(
            public_keys=auth.public_keys,
            jwks_file=auth.jwks_file or None,
            audience=auth.audience,
            issuers=auth.issuers,
            max_ttl_s=auth.max_ttl_s,
            leeway_s=auth.leeway_s,
        )
    except KeyFileError as exc:
        raise ConfigError(f"auth: {exc}") from None


@attrs.frozen(kw_only=True)
class DrainAndStop(Request[None]):
    """Stop accepting, let open requests finish within ``grace_s``, then end them."""

    grace_s: float


class HttpServerActor(Actor[DrainAndStop]):
    """Serves the app with Hypercorn's Trio worker on a socket bound before it starts."""

    mailbox_capacity = 4

    def __init__(self, *, app: Any, hypercorn: HypercornConfig, sockets: Sockets) -> None:
        self.app = app
        self.hypercorn = hypercorn
        self.sockets = sockets
        self.shutdown = trio.Event()
        self.stopped = trio.Event()

    async def on_start(self, ctx: ActorContext[DrainAndStop]) -> None:
        async def serve(task_status: trio.TaskStatus[list[str]]) -> None:
            try:
                await worker_serve(
                    wrap_app(self.app, self.hypercorn.wsgi_max_body_size, "asgi"),
                    self.hypercorn,
                    sockets=self.sockets,
                    shutdown_trigger=self.shutdown.wait,
                    task_status=task_status,
                )
            finally:
                self.stopped.set()

        await ctx.nursery.start(serve)

    async def handle(self, message: DrainAndStop, ctx: ActorContext[DrainAndStop]) -> None:
        self.hypercorn.graceful_timeout = message.grace_s
        self.shutdown.set()
        reply = ctx.defer_reply()

        async def wait() -> None:
            await self.stopped.wait()
            reply.resolve(None)

        ctx.nursery.start_soon(wait)


def _hypercorn_config(
    config: BffConfig, tls: tuple[str, str, str | None] | None
) -> HypercornConfig:
    http = config.http
    hypercorn = HypercornConfig()
    if tls is not None:
        hypercorn.certfile, hypercorn.keyfile = tls[0], tls[1]
    hypercorn.alpn_protocols = ["h2", "http/1.1"]
    hypercorn.keep_alive_timeout = http.keep_alive_timeout_s
    hypercorn.ssl_handshake_timeout = min(http.read_timeout_s, 60.0)
    hypercorn.graceful_timeout = http.shutdown_grace_s
    hypercorn.include_server_header = False
    hypercorn.accesslog = None
    hypercorn.errorlog = logging.getLogger("zl.bff.hypercorn")
    return hypercorn


async def run_bff(
    config: BffConfig,
    *,
    shutdown: trio.Event,
    task_status: trio.TaskStatus[BffAddresses] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the BFF until ``shutdown`` is set, then drain and stop.

    Reports its addresses through ``task_status`` once the listener is bound.

    Raises:
        ConfigError: a setting is unusable (checked before anything listens).
    """
    check_config(config)
    verifier = make_verifier(config)
    client_config = host_client_config(config)
    tls = _http_tls(config)
    hypercorn = _hypercorn_config(config, tls)
    http = config.http
    listener = _listen(http.host, http.port, http.unacked_timeout_s, http.send_buffer_bytes)
    sockets = Sockets(
        secure_sockets=[listener] if tls is not None else [],
        insecure_sockets=[] if tls is not None else [listener],
        quic_sockets=[],
    )
    bound_host, bound_port = listener.getsockname()[:2]
    try:
        async with (
            open_grpc_channel(client_config) as channel,
            open_actor_system("bff") as system,
        ):
            sessions = await system.spawn(
                SupervisorSpec(
                    name="sessions",
                    max_children=config.sessions.max_sessions,
                    stop_grace_s=config.sessions.stop_grace_s,
                )
            )
            table = SessionTable(
                max_sessions=config.sessions.max_sessions,
                max_per_user=config.sessions.max_sessions_per_user,
            )
            state = BffState(
                config=config, verifier=verifier, channel=channel, sessions=sessions, table=table
            )
            app = make_app(state)
            server = await system.spawn(
                ActorSpec(
                    name="http_server",
                    factory=lambda: HttpServerActor(app=app, hypercorn=hypercorn, sockets=sockets),
                )
            )
            scheme = "https" if tls is not None else "http"
            shown = (
                "localhost"
                if bound_host in ("127.0.0.1", "::1") and tls is not None
                else bound_host
            )
            if ":" in shown:
                shown = f"[{shown}]"
            task_status.started(
                BffAddresses(
                    url=f"{scheme}://{shown}:{bound_port}",
                    host=bound_host,
                    port=bound_port,
                    tls=tls is not None,
                    ca_cert=tls[2] if tls is not None else None,
                )
            )
            await shutdown.wait()
            grace = config.http.shutdown_grace_s
            log.info("bff: draining HTTP requests (grace %.1f s)", grace)
            await server.ask(DrainAndStop(grace_s=grace), timeout=grace + DRAIN_MARGIN_S)
    finally:
        listener.close()
