"""The host's configuration (TOML + ``ZL_*`` environment; see ``supervisors._config``)."""

from __future__ import annotations

import attrs

from actors.session import LimitPolicy
from actors.session.messages import SessionLimits
from supervisors._telemetry import TelemetrySection as TelemetrySection
from supervisors.edges.debug_http import DebugHttpConfig

from ._provider import MockSection as MockSection
from ._provider import ProviderSection as ProviderSection


@attrs.frozen(kw_only=True)
class GrpcSection:
    host: str = "127.0.0.1"
    port: int = attrs.field(
        default=50051, validator=[attrs.validators.ge(0), attrs.validators.le(65_535)]
    )
    #: PEM certificate and key for TLS.
    tls_cert: str = ""
    tls_key: str = ""
    #: Make (or reuse) development certificates in this folder and serve with them.
    dev_certs_dir: str = ""
    #: Serve without TLS: development only, and the log says so.
    insecure_dev_plaintext: bool = False
    max_message_bytes: int = 4 * 1024 * 1024
    shutdown_grace_s: float = 10.0
    #: Connections served at once; one more is closed at once.
    max_connections: int = attrs.field(default=1_024, validator=attrs.validators.gt(0))
    #: A connection with no call open for this long is closed (GOAWAY).
    idle_timeout_s: float = attrs.field(default=120.0, validator=attrs.validators.gt(0))
    #: Mutual TLS: clients (the BFF) must present a certificate signed by this CA.
    client_ca: str = ""


@attrs.frozen(kw_only=True)
class AuthSection:
    """Who may call the host: caller tokens (EdDSA JWTs) checked on every StreamChat."""

    #: Ed25519 public keys (PEM) of the token issuers (the BFF, an identity provider).
    trusted_keys: list[str] = attrs.Factory(list)
    audience: str = "zl-host"
    #: Accepted ``iss`` values; empty accepts any issuer whose key is trusted.
    issuers: list[str] = attrs.Factory(list)
    max_ttl_s: float = attrs.field(default=3600.0, validator=attrs.validators.gt(0))
    clock_skew_s: float = attrs.field(default=30.0, validator=attrs.validators.ge(0))
    #: Accept a stream that carries no token at all: development only, and the log says so.
    #: A token that is sent is still verified.
    insecure_dev_no_auth: bool = False


@attrs.frozen(kw_only=True)
class PolicySection:
    """Signed policy bundles: where they come from and how they are checked."""

    #: ``https://.../{tenant}...`` (the control plane) or ``file:.../{tenant}.jws`` (dev).
    source: str = ""
    #: The control plane's Ed25519 public keys (PEM); two at once while rotating.
    trusted_keys: list[str] = attrs.Factory(list)
    #: CA bundle that signs an HTTPS control plane (empty: the system's CAs).
    ca: str = ""
    max_ttl_s: float = attrs.field(default=900.0, validator=attrs.validators.gt(0))
    clock_skew_s: float = attrs.field(default=30.0, validator=attrs.validators.ge(0))
    #: Each tenant's last accepted revision, so that a restart cannot roll policy back.
    state_dir: str = ".zl/policy-state"
    #: Longest time between two checks of a tenant's bundle (If-None-Match).
    refresh_s: float = attrs.field(default=30.0, validator=attrs.validators.gt(0))
    fetch_timeout_s: float = attrs.field(default=5.0, validator=attrs.validators.gt(0))
    retry_initial_s: float = attrs.field(default=0.5, validator=attrs.validators.gt(0))
    retry_max_s: float = attrs.field(default=30.0, validator=attrs.validators.gt(0))
    max_tenants: int = attrs.field(default=10_000, validator=attrs.validators.gt(0))
    #: Run tools with no policy at all: development and benchmarks only; logged loudly.
    insecure_dev_no_policy: bool = False


@attrs.frozen(kw_only=True)
class DebugSection:
    enabled: bool = True
    host: str = "127.0.0.1"
    #: 0 picks a free port (printed at start-up); 7081 is where `zl tree` looks by default.
    port: int = attrs.field(
        default=7081, validator=[attrs.validators.ge(0), attrs.validators.le(65_535)]
    )
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
    #: Ed25519 private key (PEM, ``zl token keygen``) that signs every checkpoint; empty:
    #: checkpoints are hash-chained but not signed.
    signing_key: str = ""
    #: A checkpoint after this many records, and this often when records came since.
    checkpoint_every: int = attrs.field(default=1000, validator=attrs.validators.gt(0))
    checkpoint_every_s: float = attrs.field(default=60.0, validator=attrs.validators.gt(0))
    #: Export every record as OTLP logs to this collector (``{url}/v1/logs``); empty: off.
    #: The audit file is the spool: a cursor beside it says what the collector has.
    export_endpoint: str = ""
    export_batch_records: int = attrs.field(default=512, validator=attrs.validators.gt(0))
    export_interval_s: float = attrs.field(default=1.0, validator=attrs.validators.gt(0))
    export_timeout_s: float = attrs.field(default=10.0, validator=attrs.validators.gt(0))


@attrs.frozen(kw_only=True)
class RedactionSection:
    """What is redacted before the model and the logs (docs/redaction.md)."""

    #: A JSON file holding a policy bundle's ``redaction`` section (classes, patterns,
    #: pseudonyms): the settings of every tenant whose bundle brings none. Empty: every
    #: built-in class on.
    settings_file: str = ""


@attrs.frozen(kw_only=True)
class HostConfig:
    grpc: GrpcSection = GrpcSection()
    debug: DebugSection = DebugSection()
    provider: ProviderSection = attrs.field(factory=ProviderSection)
    sessions: SessionsSection = SessionsSection()
    tools: ToolsSection = ToolsSection()
    audit: AuditSection = AuditSection()
    telemetry: TelemetrySection = attrs.field(factory=TelemetrySection)
    redaction: RedactionSection = RedactionSection()
    auth: AuthSection = AuthSection()
    policy: PolicySection = PolicySection()
