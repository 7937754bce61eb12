"""The host process: its supervision tree, wired from a ``HostConfig``.

::

    host (one_for_one)
    ├─ telemetry       samples sessions, mailboxes and breakers into gauges
    ├─ audit_writer    the append-only audit (tool receipts, turn records, signed checkpoints)
    ├─ audit_exporter  [audit.export_endpoint] ships the audit as OTLP logs from its cursor
    ├─ policy_cache    [tools on] each tenant's verified policy bundle, kept fresh
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

import contextlib
import logging
import os
import ssl
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import trio

from actors.audit import (
    Appended,
    AuditConfig,
    AuditExportConfig,
    AuditExporter,
    AuditFileError,
    AuditMessage,
    AuditWriter,
    CheckpointSigner,
    FsyncPolicy,
)
from actors.errors import PolicyError
from actors.mcp import McpClientConfig, McpServerCommand, mcp_client_spec
from actors.policy import (
    BundlePreparer,
    BundleRejected,
    PolicyBundle,
    PolicyCache,
    PolicyCacheConfig,
    RejectReason,
    StateError,
    check_source,
    load_state,
    policy_cache_keys,
)
from actors.provider import BreakerState, LlmProvider
from actors.redaction import (
    RedactionSettings,
    RedactionSettingsError,
    TenantRedaction,
    installed_log_redaction,
    load_settings_file,
)
from actors.relay import KeyFileError, Shard
from actors.session import Outbox, SessionContext, SessionDeps, ToolRunnerFactory
from actors.session.tools import ToolRunner
from actors.telemetry import Metrics, Telemetry, TelemetryConfigError, TelemetrySampler
from actors.tools import (
    PolicyGate,
    SessionTools,
    StdioToolLink,
    ToolGateway,
    ToolLink,
    ToolsConfig,
)
from actors.tools._relay_link import RelayLinkSettings, RelayToolLink
from contracts.generated import agent_pb2
from supervisors._config import ConfigError
from supervisors._exits import leaves, one_line
from supervisors.edges.debug_http import DebugHttpBindError, DebugHttpConfig, DebugHttpConfigError
from supervisors.edges.debug_http import check_config as check_debug_config
from supervisors.edges.grpc import (
    BindError,
    GrpcServerConfig,
    HealthService,
    service_from_descriptor,
)
from supervisors.tls import (
    ALPN_HTTP1,
    TlsConfigError,
    client_ssl_context,
    generate_dev_certs,
    server_ssl_context,
    warn_plaintext,
)
from zl_actors import (
    ActorRef,
    ActorSnapshot,
    ActorSpec,
    ActorSystem,
    Backoff,
    SpawnError,
    SupervisorSpec,
    open_actor_system,
)

from ._auth import CallerAuth
from ._chat_edge import make_stream_chat_handler
from ._config import HostConfig
from ._edges import DebugHttpActor, DrainAndStop, GetAddress, GetBinding, GrpcServerActor
from ._provider import (
    ProviderStack,
    check_provider_section,
    open_host_provider,
    provider_actor_spec,
)

log = logging.getLogger("zl.host")

# Flushing the telemetry exporters at shutdown is bounded by this.
TELEMETRY_CLOSE_TIMEOUT_S = 5.0
# The drain of the gRPC edge gets its grace plus this before the host stops regardless.
DRAIN_MARGIN_S = 2.0
AGENT_SERVICE = "zl.agent.v0.Agent"
#: The device of a stdio session that names none: the host's own MCP server.
STDIO_DEVICE = "local"


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
    audit_signer(config)
    CallerAuth.from_config(config.auth)
    if section.client_ca and not (section.tls_cert or section.dev_certs_dir):
        raise ConfigError("grpc.client_ca: mutual TLS needs TLS (grpc.tls_cert or dev_certs_dir)")
    if config.tools.mode != "none":
        policy_config(config)
    if config.tools.mode == "stdio":
        mcp_command(config)
    if config.tools.mode == "relay":
        relay_shards(config)
    if config.debug.enabled:
        try:
            check_debug_config(config.debug.to_edge_config(), tls=False)
        except (DebugHttpConfigError, ValueError) as exc:
            raise ConfigError(f"debug: {exc}") from None
    redaction_settings(config)


def redaction_settings(config: HostConfig) -> RedactionSettings:
    """The settings of a tenant without its own: ``redaction.settings_file``, or all on.

    Raises:
        ConfigError: the file cannot be read, is not JSON, or is not a valid section.
    """
    path = config.redaction.settings_file
    if not path:
        return RedactionSettings.default()
    try:
        return load_settings_file(Path(path))
    except RedactionSettingsError as exc:
        raise ConfigError(f"redaction.settings_file: {exc}") from None


def grpc_tls(config: HostConfig) -> tuple[ssl.SSLContext | None, str | None]:
    """The gRPC edge's TLS context and the CA a client should trust (if we made it).

    Raises:
        ConfigError: no certificate, no dev-certs folder and no explicit plaintext flag.
    """
    section = config.grpc
    client_ca = section.client_ca or None
    if section.tls_cert and section.tls_key:
        try:
            return server_ssl_context(section.tls_cert, section.tls_key, client_ca=client_ca), None
        except TlsConfigError as exc:
            raise ConfigError(
                f"grpc.tls_cert, grpc.tls_key, grpc.client_ca: {exc}; give a PEM certificate "
                "and its key, or grpc.dev_certs_dir for development certificates"
            ) from None
    if section.dev_certs_dir:
        try:
            certs = generate_dev_certs(Path(section.dev_certs_dir))
            context = server_ssl_context(certs.server_cert, certs.server_key, client_ca=client_ca)
            return context, str(certs.ca_cert)
        except (OSError, TlsConfigError) as exc:
            raise ConfigError(
                f"grpc.dev_certs_dir: cannot make or use development certificates in "
                f"{section.dev_certs_dir}: {exc}; choose a folder this user may write"
            ) from None
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
            raise ConfigError(
                f"tools.relay_token_file: cannot read {tools.relay_token_file}: {exc.strerror}; "
                "give the file holding the host token (zl token host)"
            ) from None
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
    token = relay_token(config)
    context = None
    if all(shard.url.startswith("wss://") for shard in shards):
        if not tools.relay_ca:
            raise ConfigError("tools.relay_ca: the CA bundle that signs the relays is required")
        try:
            context = client_ssl_context(
                tools.relay_ca,
                client_cert=tools.relay_client_cert or None,
                client_key=tools.relay_client_key or None,
                alpn=ALPN_HTTP1,
            )
        except TlsConfigError as exc:
            raise ConfigError(
                f"tools.relay_ca, tools.relay_client_cert, tools.relay_client_key: {exc}"
            ) from None
    elif any(shard.url.startswith("wss://") for shard in shards):
        raise ConfigError("tools.relay_shards: mix of wss:// and ws:// shards")
    else:
        warn_plaintext("host -> relay WebSocket", flag="ws:// in tools.relay_shards")
    return RelayLinkSettings(
        shards=shards,
        token=token,
        ssl_context=context,
        heartbeat_s=tools.relay_heartbeat_s,
        binary_frames=tools.relay_frames == "binary",
    )


async def _spawn(
    system: ActorSystem,
    spec: ActorSpec[Any],
    *,
    setting: str,
    causes: tuple[type[BaseException], ...],
    advice: str,
) -> ActorRef[Any]:
    """Spawn ``spec``; a start that failed because of ``setting`` is a ``ConfigError``.

    Raises:
        ConfigError: the child failed to start with one of ``causes``; names the setting.
    """
    try:
        return await system.spawn(spec)
    except SpawnError as exc:
        cause = next((e for e in leaves(exc) if isinstance(e, causes)), None)
        if cause is not None:
            raise ConfigError(f"{setting}: {one_line(cause)}; {advice}") from None
        raise


def audit_signer(config: HostConfig) -> CheckpointSigner | None:
    """The checkpoint signer of ``audit.signing_key``, if set.

    Raises:
        ConfigError: the key file cannot be used.
    """
    if not config.audit.signing_key:
        return None
    try:
        return CheckpointSigner.from_file(config.audit.signing_key)
    except KeyFileError as exc:
        raise ConfigError(f"audit.signing_key: {exc}") from None


class _AuditHead:
    """The seq of the last record written (the exporter's pending count), and its metric."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.seq = -1

    def written(self, appended: Appended) -> None:
        self.seq = max(self.seq, appended.seq)
        self.metrics.add_audit_records(appended.kind)


def _exporter_spec(config: HostConfig, telemetry: Telemetry, head: _AuditHead) -> ActorSpec[None]:
    section = config.audit
    export = AuditExportConfig(
        endpoint=section.export_endpoint,
        audit_path=Path(section.path),
        batch_records=section.export_batch_records,
        interval_s=section.export_interval_s,
        timeout_s=section.export_timeout_s,
    )

    def progress(pending: int, pending_bytes: int, exported: int) -> None:
        telemetry.metrics.set_audit_pending(pending, pending_bytes)
        if exported:
            telemetry.metrics.add_audit_exported(exported)

    return ActorSpec(
        name="audit_exporter",
        factory=lambda: AuditExporter(export, head_seq=lambda: head.seq, on_progress=progress),
    )


_BREAKER_GAUGE = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


def breaker_sampler(stack: ProviderStack) -> Callable[[Metrics, ActorSnapshot], None]:
    """Samples each upstream's breaker (the mock, which has none, reads as closed)."""

    def sample(metrics: Metrics, tree: ActorSnapshot) -> None:
        del tree
        status = stack.status()
        seen = set()
        for breaker in status.breakers:
            metrics.set_breaker_state(_BREAKER_GAUGE[breaker.state], upstream=breaker.name)
            seen.add(breaker.name)
        for name in status.chain:
            if name not in seen:
                metrics.set_breaker_state(0, upstream=name)

    return sample


def policy_config(config: HostConfig) -> PolicyCacheConfig | None:
    """The policy cache's settings (None: policy is off, in development only).

    Raises:
        ConfigError: tools without a policy source, or a key or CA file that is unusable.
    """
    section = config.policy
    if section.insecure_dev_no_policy:
        return None
    if not section.source or not section.trusted_keys:
        raise ConfigError(
            "policy: tools run only under a signed policy; set policy.source "
            "(https://.../{tenant} or file:.../{tenant}.jws) and policy.trusted_keys, or "
            "policy.insecure_dev_no_policy = true (development only)"
        )
    try:
        check_source(section.source)
    except ValueError as exc:
        raise ConfigError(f"policy.source: {exc}") from None
    try:
        keys = policy_cache_keys(section.trusted_keys)
    except KeyFileError as exc:
        raise ConfigError(f"policy.trusted_keys: {exc}") from None
    if section.state_dir:
        try:
            load_state(Path(section.state_dir))
        except StateError as exc:
            raise ConfigError(f"policy.state_dir: {exc}") from None
    context = None
    if section.source.startswith("https://") and section.ca:
        context = client_ssl_context(section.ca, alpn=ALPN_HTTP1)
    elif section.source.startswith("http://"):
        warn_plaintext("host -> policy control plane", flag="http:// in policy.source")
    return PolicyCacheConfig(
        source=section.source,
        trusted_keys=keys,
        ssl_context=context,
        max_ttl_s=section.max_ttl_s,
        clock_skew_s=section.clock_skew_s,
        state_dir=Path(section.state_dir) if section.state_dir else None,
        refresh_s=section.refresh_s,
        fetch_timeout_s=section.fetch_timeout_s,
        retry=Backoff(initial_s=section.retry_initial_s, max_s=section.retry_max_s, jitter=1.0),
        max_tenants=section.max_tenants,
    )


def redaction_from_bundles(redaction: TenantRedaction) -> BundlePreparer:
    """Each tenant's accepted bundle sets its redaction settings (its ``redaction`` section).

    The section is compiled when the bundle is verified, before it is accepted: one the
    redactor cannot use (a tenant pattern RE2 cannot compile) has the whole bundle rejected
    ``policy.invalid`` (reason ``redaction``), logged and counted like any other rejection,
    and the tenant keeps its current bundle and settings. A bundle with no section (or an
    empty one) gives the tenant the host's default, ``redaction.settings_file``.
    """

    def prepare(tenant: str, bundle: PolicyBundle) -> Callable[[], None]:
        try:
            return redaction.prepare_update(tenant, bundle.redaction or None)
        except RedactionSettingsError as exc:
            raise BundleRejected(RejectReason.REDACTION, str(exc)) from None

    return prepare


def tenant_loader(gate: PolicyGate) -> Callable[[str], Awaitable[None]]:
    """What a session awaits before it takes its redactor: the tenant's bundle, loaded.

    The cache fetches a tenant's bundle when it is first asked for it; asking at the start
    of each session means its first message is redacted under the tenant's own settings.
    A tenant whose bundle cannot be had gets the default redaction (and no tools).
    """

    async def load(tenant: str) -> None:
        with contextlib.suppress(PolicyError):
            await gate.view(tenant)

    return load


async def _start_policy(
    system: ActorSystem,
    config: HostConfig,
    telemetry: Telemetry | None,
    redaction: TenantRedaction,
) -> PolicyGate:
    settings = policy_config(config)
    if settings is None:
        log.warning(
            "NO POLICY: policy.insecure_dev_no_policy is set, so every tool call runs with no "
            "signed policy (no allow-list, no caps but the host's). Development only."
        )
        return PolicyGate(cache=None)
    on_rejection = None if telemetry is None else telemetry.metrics.add_policy_rejection
    prepare = redaction_from_bundles(redaction)
    cache = await system.spawn(
        ActorSpec(
            name="policy_cache",
            factory=lambda: PolicyCache(settings, on_rejection=on_rejection, prepare=prepare),
        )
    )
    return PolicyGate(cache=cache, clock_skew_s=settings.clock_skew_s)


async def _start_tools(
    system: ActorSystem,
    config: HostConfig,
    audit: ActorRef[AuditMessage],
    telemetry: Telemetry | None,
    redaction: TenantRedaction,
) -> tuple[ToolRunnerFactory, PolicyGate] | None:
    """Start the policy cache, tool link and gateway.

    Returns:
        The factory giving each session its tools, and the policy gate; None with tools off.
    """
    link: ToolLink
    if config.tools.mode == "none":
        return None
    gate = await _start_policy(system, config, telemetry, redaction)
    if config.tools.mode == "relay":
        tool_link = await system.spawn(SupervisorSpec(name="tool_link"))
        link = await RelayToolLink.start(
            tool_link,
            relay_link_settings(config),
            on_rtt=None if telemetry is None else telemetry.metrics.record_host_to_device_rtt,
        )
    else:
        client = await _spawn(
            system,
            mcp_client_spec(
                "mcp_server",
                McpClientConfig(command=McpServerCommand(argv=mcp_command(config), name="mcp-fs")),
            ),
            setting="tools.command" if config.tools.command else "tools.roots",
            causes=(Exception,),
            advice="the local MCP server did not start",
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
            policy=gate,
            telemetry=telemetry,
        )

    return factory, gate


async def run_host(
    config: HostConfig,
    *,
    shutdown: trio.Event,
    provider: LlmProvider | None = None,
    telemetry: Telemetry | None = None,
    redaction: TenantRedaction | None = None,
    task_status: trio.TaskStatus[HostAddresses] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the host until ``shutdown`` is set, then drain and stop.

    Reports its addresses through ``task_status`` once every edge listens. ``provider``
    and ``telemetry`` replace the configured ones (for embedding the host and for tests
    that watch it); a telemetry passed in is the caller's to close. ``redaction`` is where
    every session's redaction settings come from: the one object the policy cache feeds
    with each tenant's accepted bundle and the sessions take their redactors from (made
    here when not given); a tenant whose bundle has no section gets
    ``redaction.settings_file``, or every built-in class.

    Raises:
        ConfigError: a setting is unusable (checked before anything listens).
    """
    check_config(config)
    auth = CallerAuth.from_config(config.auth)
    ssl_context, ca_cert = grpc_tls(config)
    grpc_config = GrpcServerConfig(
        host=config.grpc.host,
        port=config.grpc.port,
        allow_plaintext=ssl_context is None,
        max_message_bytes=config.grpc.max_message_bytes,
        shutdown_grace_s=config.grpc.shutdown_grace_s,
        max_connections=config.grpc.max_connections,
        idle_timeout_s=config.grpc.idle_timeout_s,
    )
    debug_config = config.debug.to_edge_config()
    own_telemetry = telemetry is None
    if telemetry is None:
        try:
            telemetry = Telemetry.from_config(config.telemetry.to_telemetry_config())
        except TelemetryConfigError as exc:
            raise ConfigError(f"telemetry.exporter: {exc}") from None
    if redaction is None:
        redaction = TenantRedaction(redaction_settings(config))
    # The process's log filter counts its redactions in this host's metrics while it runs.
    log_filter = installed_log_redaction()
    counting = telemetry
    if log_filter is not None and log_filter.filter.on_redacted is None:
        log_filter.filter.on_redacted = lambda counts: counting.metrics.add_redactions(
            counts, site="log"
        )
    else:
        log_filter = None
    try:
        await _run_tree(
            config,
            shutdown=shutdown,
            provider=provider,
            telemetry=telemetry,
            redaction=redaction,
            ssl_context=ssl_context,
            ca_cert=ca_cert,
            grpc_config=grpc_config,
            debug_config=debug_config,
            auth=auth,
            task_status=task_status,
        )
    finally:
        if log_filter is not None:
            log_filter.filter.on_redacted = None
        if own_telemetry:
            with trio.move_on_after(TELEMETRY_CLOSE_TIMEOUT_S, shield=True):
                await telemetry.aclose()


async def _run_tree(
    config: HostConfig,
    *,
    shutdown: trio.Event,
    provider: LlmProvider | None,
    telemetry: Telemetry,
    redaction: TenantRedaction,
    ssl_context: ssl.SSLContext | None,
    ca_cert: str | None,
    grpc_config: GrpcServerConfig,
    debug_config: DebugHttpConfig,
    auth: CallerAuth,
    task_status: trio.TaskStatus[HostAddresses],
) -> None:
    signer = audit_signer(config)
    head = _AuditHead(telemetry.metrics)
    async with (
        open_host_provider(config.provider) as provider_stack,
        open_actor_system("host", faults=config.debug.faults) as system,
    ):
        await system.spawn(
            ActorSpec(
                name="telemetry",
                factory=lambda: TelemetrySampler(
                    telemetry.metrics,
                    [breaker_sampler(provider_stack)],
                    interval_s=config.telemetry.sample_interval_s,
                ),
            )
        )
        audit = await _spawn(
            system,
            ActorSpec(
                name="audit_writer",
                factory=lambda: AuditWriter(
                    AuditConfig(
                        path=Path(config.audit.path),
                        fsync=FsyncPolicy(
                            every_records=config.audit.fsync_every_records,
                            every_s=config.audit.fsync_every_s,
                        ),
                        on_written=head.written,
                        signer=signer,
                        checkpoint_every=config.audit.checkpoint_every,
                        checkpoint_every_s=config.audit.checkpoint_every_s,
                    )
                ),
            ),
            setting="audit.path",
            causes=(AuditFileError, OSError),
            advice="create its folder, or set audit.path (ZL_AUDIT__PATH) to a writable file",
        )
        tools = await _start_tools(system, config, audit, telemetry, redaction)
        if config.audit.export_endpoint:
            await system.spawn(_exporter_spec(config, telemetry, head))
        deps = SessionDeps(
            provider=provider if provider is not None else provider_stack.provider,
            limits=config.sessions.limit_policy(),
            default_model=config.provider.default_model,
            tool_runner_factory=None if tools is None else tools[0],
            telemetry=telemetry,
            audit=audit,
            provider_name=config.provider.kind,
            redaction=redaction,
            load_tenant=None if tools is None or not tools[1].enabled else tenant_loader(tools[1]),
            default_device=STDIO_DEVICE if config.tools.mode == "stdio" else "",
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
            {"StreamChat": make_stream_chat_handler(sessions, deps, auth=auth)},
        )
        grpc_server = await _spawn(
            system,
            ActorSpec(
                name="grpc_server",
                factory=lambda: GrpcServerActor(
                    services=[chat, health.service],
                    config=grpc_config,
                    ssl_context=ssl_context,
                    health=health,
                ),
            ),
            setting="grpc.host, grpc.port",
            causes=(BindError,),
            advice="stop what holds it, or choose another grpc.port (ZL_GRPC__PORT)",
        )
        grpc_host, grpc_port = await grpc_server.ask(GetAddress())
        debug_url = None
        if config.debug.enabled:
            debug = await _spawn(
                system,
                ActorSpec(
                    name="debug_http",
                    factory=lambda: DebugHttpActor(config=debug_config, telemetry=telemetry),
                ),
                setting="debug.host, debug.port",
                causes=(DebugHttpBindError, DebugHttpConfigError),
                advice="choose another debug.port (0 picks one) or set debug.enabled = false",
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
