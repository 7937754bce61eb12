"""The host process: its supervision tree, wired from a ``HostConfig``.

::

    host (one_for_one)
    ├─ audit_writer    the append-only audit (tool receipts)
    ├─ mcp_server      [tools.mode = "stdio"] the local MCP server, restarted if it crashes
    ├─ tool_link       [tools.mode = "relay"] one connection actor per relay shard
    ├─ tool_gateway    which tools a session may offer (device catalogs, cached)
    ├─ provider        the LLM provider chain's status (breakers, usage); streams go direct
    ├─ sessions        one temporary Session per StreamChat ─ turn ─ tool_call
    ├─ grpc_server     the gRPC edge (StreamChat, health, reflection)
    └─ debug_http      /debug/actors

Children start in that order and stop in reverse: at shutdown the gRPC edge drains first,
then the sessions that remain are stopped, and the audit is closed last.
"""

from __future__ import annotations

import logging
import os
import ssl
import sys
from pathlib import Path

import attrs
import trio

from actors.audit import AuditConfig, AuditMessage, AuditWriter, FsyncPolicy
from actors.mcp import McpClientConfig, McpServerCommand, mcp_client_spec
from actors.provider import LlmProvider
from actors.relay import Shard
from actors.session import Outbox, SessionContext, SessionDeps, ToolRunnerFactory
from actors.session.tools import ToolRunner
from actors.telemetry import Telemetry, TelemetryConfigError
from actors.tools import SessionTools, StdioToolLink, ToolGateway, ToolLink, ToolsConfig
from actors.tools._relay_link import RelayLinkSettings, RelayToolLink
from contracts.generated import agent_pb2
from supervisors._config import ConfigError
from supervisors.edges.debug_http import DebugHttpConfig, DebugHttpConfigError
from supervisors.edges.debug_http import check_config as check_debug_config
from supervisors.edges.grpc import GrpcServerConfig, HealthService, service_from_descriptor
from supervisors.tls import (
    ALPN_HTTP1,
    client_ssl_context,
    generate_dev_certs,
    server_ssl_context,
    warn_plaintext,
)
from zl_actors import ActorRef, ActorSpec, ActorSystem, SupervisorSpec, open_actor_system

from ._chat_edge import make_stream_chat_handler
from ._config import HostConfig
from ._edges import DebugHttpActor, DrainAndStop, GetAddress, GetBinding, GrpcServerActor
from ._provider import check_provider_section, open_host_provider, provider_actor_spec

log = logging.getLogger("zl.host")

# Flushing the telemetry exporters at shutdown is bounded by this.
TELEMETRY_CLOSE_TIMEOUT_S = 5.0
# The drain of the gRPC edge gets its grace plus this before the host stops regardless.
DRAIN_MARGIN_S = 2.0
AGENT_SERVICE = "zl.agent.v0.Agent"


@attrs.frozen(kw_only=True)
class HostAddresses:
    """Where a running host listens (what ``zl host`` prints and writes to --ready-file)."""

    grpc_host: str
    grpc_port: int
    tls: bool
    ca_cert: str | None
    debug_url: str | None


def check_config(config: HostConfig) -> None:
    """Refuse unusable settings before anything starts.

    Raises:
        ConfigError: naming the setting.
    """
    section = config.grpc
    if bool(section.tls_cert) != bool(section.tls_key):
        raise ConfigError("grpc: set both grpc.tls_cert and grpc.tls_key, or neither")
    if not (section.tls_cert or section.dev_certs_dir or section.insecure_dev_plaintext):
        raise ConfigError(
            "grpc: TLS is required; set grpc.tls_cert and grpc.tls_key, or grpc.dev_certs_dir "
            "for development certificates, or grpc.insecure_dev_plaintext = true "
            "(development only)"
        )
    check_provider_section(config.provider)
    if config.tools.mode == "stdio":
        mcp_command(config)
    if config.tools.mode == "relay":
        relay_shards(config)
    if config.debug.enabled:
        try:
            check_debug_config(config.debug.to_edge_config(), tls=False)
        except (DebugHttpConfigError, ValueError) as exc:
            raise ConfigError(f"debug: {exc}") from None


def grpc_tls(config: HostConfig) -> tuple[ssl.SSLContext | None, str | None]:
    """The gRPC edge's TLS context and the CA a client should trust (if we made it).

    Raises:
        ConfigError: no certificate, no dev-certs folder and no explicit plaintext flag.
    """
    section = config.grpc
    if section.tls_cert and section.tls_key:
        return server_ssl_context(section.tls_cert, section.tls_key), None
    if section.dev_certs_dir:
        certs = generate_dev_certs(Path(section.dev_certs_dir))
        return server_ssl_context(certs.server_cert, certs.server_key), str(certs.ca_cert)
    if section.insecure_dev_plaintext:
        warn_plaintext("BFF -> host gRPC", flag="grpc.insecure_dev_plaintext")
        return None, None
    raise ConfigError(
        "grpc: TLS is required; set grpc.tls_cert and grpc.tls_key, or grpc.dev_certs_dir for "
        "development certificates, or grpc.insecure_dev_plaintext = true (development only)"
    )


def mcp_command(config: HostConfig) -> list[str]:
    """The stdio MCP server's command: as configured, or our fs.read server on the roots."""
    tools = config.tools
    if tools.command:
        return list(tools.command)
    if not tools.roots:
        raise ConfigError('tools: mode "stdio" needs tools.command or tools.roots')
    return [sys.executable, "-m", "actors.mcp.fs_server", *tools.roots]


def relay_shards(config: HostConfig) -> tuple[Shard, ...]:
    """The relay shards from ``tools.relay_shards`` (``id=url`` each).

    Raises:
        ConfigError: naming the entry that is malformed.
    """
    shards = []
    for index, entry in enumerate(config.tools.relay_shards):
        shard_id, sep, url = entry.partition("=")
        if not sep or not url.startswith(("wss://", "ws://")):
            raise ConfigError(
                f"tools.relay_shards[{index}]: expected id=wss://host:port/v1/host, got {entry!r}"
            )
        shards.append(Shard(shard_id=shard_id.strip(), url=url.strip()))
    if not shards:
        raise ConfigError('tools: mode "relay" needs tools.relay_shards')
    return tuple(shards)


def relay_token(config: HostConfig) -> str:
    tools = config.tools
    if tools.relay_token_file:
        try:
            return Path(tools.relay_token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"tools.relay_token_file: {exc.strerror}") from None
    token = os.environ.get(tools.relay_token_env, "")
    if not token:
        raise ConfigError(
            "tools: the relay needs a host token in tools.relay_token_file or "
            f"${tools.relay_token_env}"
        )
    return token


def relay_link_settings(config: HostConfig) -> RelayLinkSettings:
    """How the host reaches the relays; TLS unless every shard is ws:// (development)."""
    tools = config.tools
    shards = relay_shards(config)
    context = None
    if all(shard.url.startswith("wss://") for shard in shards):
        if not tools.relay_ca:
            raise ConfigError("tools.relay_ca: the CA bundle that signs the relays is required")
        context = client_ssl_context(
            tools.relay_ca,
            client_cert=tools.relay_client_cert or None,
            client_key=tools.relay_client_key or None,
            alpn=ALPN_HTTP1,
        )
    elif any(shard.url.startswith("wss://") for shard in shards):
        raise ConfigError("tools.relay_shards: mix of wss:// and ws:// shards")
    else:
        warn_plaintext("host -> relay WebSocket", flag="ws:// in tools.relay_shards")
    return RelayLinkSettings(
        shards=shards,
        token=relay_token(config),
        ssl_context=context,
        heartbeat_s=tools.relay_heartbeat_s,
        binary_frames=tools.relay_frames == "binary",
    )


async def _start_tools(
    system: ActorSystem,
    config: HostConfig,
    audit: ActorRef[AuditMessage],
    telemetry: Telemetry | None,
) -> ToolRunnerFactory | None:
    """Start the tool link and gateway; the factory that gives each session its tools."""
    link: ToolLink
    if config.tools.mode == "none":
        return None
    if config.tools.mode == "relay":
        tool_link = await system.spawn(SupervisorSpec(name="tool_link"))
        link = await RelayToolLink.start(
            tool_link,
            relay_link_settings(config),
            on_rtt=None if telemetry is None else telemetry.metrics.record_host_to_device_rtt,
        )
    else:
        client = await system.spawn(
            mcp_client_spec(
                "mcp_server",
                McpClientConfig(command=McpServerCommand(argv=mcp_command(config), name="mcp-fs")),
            )
        )
        link = StdioToolLink(client)
    gateway = await system.spawn(
        ActorSpec(name="tool_gateway", factory=lambda: ToolGateway(link=link))
    )
    tools_config = ToolsConfig(timeout_ms=config.tools.timeout_ms, max_bytes=config.tools.max_bytes)

    def factory(session: SessionContext, outbox: Outbox) -> ToolRunner:
        return SessionTools(
            session=session,
            outbox=outbox,
            gateway=gateway,
            link=link,
            audit=audit,
            config=tools_config,
            telemetry=telemetry,
        )

    return factory


async def run_host(
    config: HostConfig,
    *,
    shutdown: trio.Event,
    provider: LlmProvider | None = None,
    telemetry: Telemetry | None = None,
    task_status: trio.TaskStatus[HostAddresses] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the host until ``shutdown`` is set, then drain and stop.

    Reports its addresses through ``task_status`` once every edge listens. ``provider``
    and ``telemetry`` replace the configured ones (for embedding the host and for tests
    that watch it); a telemetry passed in is the caller's to close.

    Raises:
        ConfigError: a setting is unusable (checked before anything listens).
    """
    check_config(config)
    ssl_context, ca_cert = grpc_tls(config)
    grpc_config = GrpcServerConfig(
        host=config.grpc.host,
        port=config.grpc.port,
        allow_plaintext=ssl_context is None,
        max_message_bytes=config.grpc.max_message_bytes,
        shutdown_grace_s=config.grpc.shutdown_grace_s,
    )
    debug_config = config.debug.to_edge_config()
    own_telemetry = telemetry is None
    if telemetry is None:
        try:
            telemetry = Telemetry.from_config(config.telemetry.to_telemetry_config())
        except TelemetryConfigError as exc:
            raise ConfigError(f"telemetry: {exc}") from None
    try:
        await _run_tree(
            config,
            shutdown=shutdown,
            provider=provider,
            telemetry=telemetry,
            ssl_context=ssl_context,
            ca_cert=ca_cert,
            grpc_config=grpc_config,
            debug_config=debug_config,
            task_status=task_status,
        )
    finally:
        if own_telemetry:
            with trio.move_on_after(TELEMETRY_CLOSE_TIMEOUT_S, shield=True):
                await telemetry.aclose()


async def _run_tree(
    config: HostConfig,
    *,
    shutdown: trio.Event,
    provider: LlmProvider | None,
    telemetry: Telemetry,
    ssl_context: ssl.SSLContext | None,
    ca_cert: str | None,
    grpc_config: GrpcServerConfig,
    debug_config: DebugHttpConfig,
    task_status: trio.TaskStatus[HostAddresses],
) -> None:
    async with (
        open_host_provider(config.provider) as provider_stack,
        open_actor_system("host", faults=config.debug.faults) as system,
    ):
        audit = await system.spawn(
            ActorSpec(
                name="audit_writer",
                factory=lambda: AuditWriter(
                    AuditConfig(
                        path=Path(config.audit.path),
                        fsync=FsyncPolicy(
                            every_records=config.audit.fsync_every_records,
                            every_s=config.audit.fsync_every_s,
                        ),
                        on_written=lambda appended: telemetry.metrics.add_audit_records(
                            appended.kind
                        ),
                    )
                ),
            )
        )
        deps = SessionDeps(
            provider=provider if provider is not None else provider_stack.provider,
            limits=config.sessions.limit_policy(),
            default_model=config.provider.default_model,
            tool_runner_factory=await _start_tools(system, config, audit, telemetry),
            telemetry=telemetry,
        )
        await system.spawn(provider_actor_spec(provider_stack))
        sessions = await system.spawn(
            SupervisorSpec(
                name="sessions",
                max_children=config.sessions.max_sessions,
                stop_grace_s=config.sessions.stop_grace_s,
            )
        )
        health = HealthService()
        chat = service_from_descriptor(
            agent_pb2.DESCRIPTOR.services_by_name["Agent"],
            {"StreamChat": make_stream_chat_handler(sessions, deps)},
        )
        grpc_server = await system.spawn(
            ActorSpec(
                name="grpc_server",
                factory=lambda: GrpcServerActor(
                    services=[chat, health.service],
                    config=grpc_config,
                    ssl_context=ssl_context,
                    health=health,
                ),
            )
        )
        grpc_host, grpc_port = await grpc_server.ask(GetAddress())
        debug_url = None
        if config.debug.enabled:
            debug = await system.spawn(
                ActorSpec(name="debug_http", factory=lambda: DebugHttpActor(config=debug_config))
            )
            debug_url = (await debug.ask(GetBinding())).url
        task_status.started(
            HostAddresses(
                grpc_host=grpc_host,
                grpc_port=grpc_port,
                tls=ssl_context is not None,
                ca_cert=ca_cert,
                debug_url=debug_url,
            )
        )
        await shutdown.wait()
        grace = config.grpc.shutdown_grace_s
        log.info("host: draining gRPC streams (grace %.1f s)", grace)
        await grpc_server.ask(DrainAndStop(grace_s=grace), timeout=grace + DRAIN_MARGIN_S)
