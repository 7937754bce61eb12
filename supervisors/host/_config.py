"""The host's configuration (TOML + ``ZL_*`` environment; see ``supervisors._config``)."""

from __future__ import annotations

import attrs

from actors.session import LimitPolicy
from actors.session.messages import SessionLimits
from actors.telemetry import TelemetryConfig
from supervisors.edges.debug_http import DebugHttpConfig

from ._provider import MockSection as MockSection
from ._provider import ProviderSection as ProviderSection


@attrs.frozen(kw_only=True)
class GrpcSection:
    host: str = "127.0.0.1"
    port: int = 50051
    #: PEM certificate and key for TLS.
    tls_cert: str = ""
    tls_key: str = ""
    #: Make (or reuse) development certificates in this folder and serve with them.
    dev_certs_dir: str = ""
    #: Serve without TLS: development only, and the log says so.
    insecure_dev_plaintext: bool = False
    max_message_bytes: int = 4 * 1024 * 1024
    shutdown_grace_s: float = 10.0


@attrs.frozen(kw_only=True)
class DebugSection:
    enabled: bool = True
    host: str = "127.0.0.1"
    #: 0 picks a free port (printed at start-up); 7081 is where `zl tree` looks by default.
    port: int = 7081
    #: Required when ``host`` is not a loopback address.
    token: str = ""
    #: Serve without TLS off loopback (the token then crosses the network in clear).
    allow_plaintext: bool = False
    #: Enable fault injection in the actor tree (chaos runs only; ZL_DEBUG__FAULTS=true).
    faults: bool = False

    def to_edge_config(self) -> DebugHttpConfig:
        return DebugHttpConfig(
            host=self.host,
            port=self.port,
            token=self.token or None,
            allow_plaintext=self.allow_plaintext,
        )


@attrs.frozen(kw_only=True)
class SessionsSection:
    """Session caps: how many at once, and each limit's default and maximum."""

    max_sessions: int = attrs.field(default=2000, validator=attrs.validators.gt(0))
    stop_grace_s: float = 2.0
    default_max_turn_ms: int = 60_000
    max_max_turn_ms: int = 600_000
    default_token_budget: int = 100_000
    max_token_budget: int = 10_000_000
    default_max_message_bytes: int = 64 * 1024
    max_max_message_bytes: int = 1024 * 1024

    def limit_policy(self) -> LimitPolicy:
        return LimitPolicy(
            default=SessionLimits(
                max_turn_ms=self.default_max_turn_ms,
                token_budget=self.default_token_budget,
                max_message_bytes=self.default_max_message_bytes,
            ),
            maximum=SessionLimits(
                max_turn_ms=self.max_max_turn_ms,
                token_budget=self.max_token_budget,
                max_message_bytes=self.max_max_message_bytes,
            ),
        )


@attrs.frozen(kw_only=True)
class ToolsSection:
    """Where tools run and the caps the host applies to every call."""

    #: "none" (no tools), "stdio" (run an MCP server here: development and CI), or "relay"
    #: (the production path: the device's bridge, reached through the Tool Relay shards).
    mode: str = attrs.field(
        default="none", validator=attrs.validators.in_(["none", "stdio", "relay"])
    )
    #: stdio: the MCP server's command; empty runs this project's fs.read server on ``roots``.
    command: list[str] = attrs.Factory(list)
    #: stdio: the folders the fs.read server may read.
    roots: list[str] = attrs.Factory(list)
    timeout_ms: int = attrs.field(default=5_000, validator=attrs.validators.gt(0))
    max_bytes: int = attrs.field(default=1024 * 1024, validator=attrs.validators.gt(0))
    #: relay: every shard of the deployment as ``id=wss://host:port/v1/host``.
    relay_shards: list[str] = attrs.Factory(list)
    #: relay: the host's bearer token (``zl token host``), from a file or a variable.
    relay_token_file: str = ""
    relay_token_env: str = "ZL_RELAY_HOST_TOKEN"
    #: relay: the CA bundle that signs the relays' certificates.
    relay_ca: str = ""
    #: relay: this host's certificate and key, for mutual TLS with the relays.
    relay_client_cert: str = ""
    relay_client_key: str = ""
    relay_heartbeat_s: float = attrs.field(default=5.0, validator=attrs.validators.gt(0))
    #: relay: frame encoding offered first, "binary" (zl.relay.v1+proto) or "json"
    #: (zl.relay.v1 only, for debugging with a plain WebSocket client).
    relay_frames: str = attrs.field(
        default="binary", validator=attrs.validators.in_(("binary", "json"))
    )


@attrs.frozen(kw_only=True)
class AuditSection:
    """The append-only audit file (tool receipts, turn summaries)."""

    path: str = ".zl/audit.jsonl"
    #: fsync after this many records, or once the oldest unsynced record is this old; each
    #: record is written to the OS before its call's final event either way.
    fsync_every_records: int = attrs.field(default=64, validator=attrs.validators.gt(0))
    fsync_every_s: float = attrs.field(default=0.5, validator=attrs.validators.gt(0))


@attrs.frozen(kw_only=True)
class TelemetrySection:
    """OpenTelemetry traces and metrics (turn and tool-call spans, TTFT, tool, token metrics)."""

    #: "none" (spans are made and trace context propagates; nothing is exported),
    #: "console" (development) or "otlp" (needs opentelemetry-exporter-otlp-proto-http).
    exporter: str = attrs.field(
        default="none", validator=attrs.validators.in_(["none", "console", "otlp"])
    )
    otlp_endpoint: str = ""
    metric_interval_s: float = attrs.field(default=60.0, validator=attrs.validators.gt(0))

    def to_telemetry_config(self) -> TelemetryConfig:
        return TelemetryConfig(
            service_name="zl-host",
            exporter=self.exporter,
            otlp_endpoint=self.otlp_endpoint or None,
            metric_interval_s=self.metric_interval_s,
        )


@attrs.frozen(kw_only=True)
class HostConfig:
    grpc: GrpcSection = GrpcSection()
    debug: DebugSection = DebugSection()
    provider: ProviderSection = attrs.field(factory=ProviderSection)
    sessions: SessionsSection = SessionsSection()
    tools: ToolsSection = ToolsSection()
    audit: AuditSection = AuditSection()
    telemetry: TelemetrySection = TelemetrySection()
