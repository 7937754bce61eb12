"""The relay's configuration: TOML (``--config``) plus ``ZL_*`` variables.

Parsing and the variable convention are in ``supervisors._config``.

Example::

    shard_id = "relay-1"
    audience = "zl-relay"
    public_keys = ["/etc/zl/relay-signing.pub"]

    [[shards]]
    shard_id = "relay-1"
    url = "wss://relay-1.relay.svc:8443/v1/device"
    host_url = "wss://relay-1.relay.svc:8444/v1/host"

    [devices]            # the endpoint bridges dial
    host = "0.0.0.0"
    port = 8443
    [hosts]              # the endpoint hosts dial
    host = "0.0.0.0"
    port = 8444
    [tls]
    cert = "/etc/zl/tls/server.pem"
    key = "/etc/zl/tls/server.key"
    host_client_ca = "/etc/zl/tls/ca.pem"   # optional: mutual TLS on the host endpoint
    [limits]
    heartbeat_s = 5.0
    max_in_flight = 32
    [debug]              # /debug/actors, /metrics, /debug/dashboard
    port = 7082
    [telemetry]
    exporter = "otlp"
    otlp_endpoint = "http://otel-collector:4318"
"""

from __future__ import annotations

import attrs
from attrs.validators import ge, gt, le

from actors.relay import Shard
from actors.relay._limits import RelayLimits
from supervisors._telemetry import TelemetrySection
from supervisors.edges.debug_http import DebugHttpConfig

DEVICE_PATH = "/v1/device"
HOST_PATH = "/v1/host"
#: Device connections one shard accepts (each is one actor); one more is closed with 1013.
DEFAULT_MAX_DEVICES = 20_000
DEFAULT_MAX_HOSTS = 256
#: Connections per endpoint that have not proved who they are yet (TLS, upgrade, token,
#: hello); one more closes the oldest of them. Also capped by the descriptor limit.
DEFAULT_MAX_PENDING_HANDSHAKES = 512
#: Of those, from one source address; one more from it is closed at once.
DEFAULT_MAX_PENDING_PER_SOURCE = 32


@attrs.frozen(kw_only=True)
class ShardSection:
    """One shard of the deployment: its id, the URL devices dial and the URL hosts dial."""

    shard_id: str
    url: str
    host_url: str


@attrs.frozen(kw_only=True)
class ListenSection:
    host: str = "127.0.0.1"
    port: int = attrs.field(default=0, validator=[ge(0), le(65_535)])


@attrs.frozen(kw_only=True)
class TlsSection:
    """Server certificate; ``host_client_ca`` turns on mutual TLS for the host endpoint.

    ``insecure_dev_plaintext`` serves ws:// without TLS and logs a warning (development only).
    """

    cert: str | None = None
    key: str | None = None
    host_client_ca: str | None = None
    insecure_dev_plaintext: bool = False


@attrs.frozen(kw_only=True)
class RelayConfig:
    shard_id: str
    shards: tuple[ShardSection, ...]
    public_keys: tuple[str, ...]
    audience: str = "zl-relay"
    devices: ListenSection = ListenSection()
    hosts: ListenSection = ListenSection()
    tls: TlsSection = TlsSection()
    limits: RelayLimits = attrs.field(factory=RelayLimits)
    debug: DebugHttpConfig | None = None
    #: Traces (a span per routed call), metrics (queue depth, calls in flight, devices);
    #: ``/metrics`` is served on the debug endpoint when ``debug`` is set.
    telemetry: TelemetrySection = attrs.field(factory=TelemetrySection)
    max_devices: int = attrs.field(default=DEFAULT_MAX_DEVICES, validator=gt(0))
    max_hosts: int = attrs.field(default=DEFAULT_MAX_HOSTS, validator=gt(0))
    max_pending_handshakes: int = attrs.field(
        default=DEFAULT_MAX_PENDING_HANDSHAKES, validator=gt(0)
    )
    max_pending_per_source: int = attrs.field(
        default=DEFAULT_MAX_PENDING_PER_SOURCE, validator=gt(0)
    )

    def device_shards(self) -> tuple[Shard, ...]:
        return tuple(Shard(shard_id=s.shard_id, url=s.url) for s in self.shards)

    def host_shards(self) -> tuple[Shard, ...]:
        return tuple(Shard(shard_id=s.shard_id, url=s.host_url) for s in self.shards)


def check_config(config: RelayConfig) -> None:
    """Refuse a configuration that cannot run.

    Raises:
        ValueError: naming the setting: this shard not in ``shards``, no public key, or
            neither TLS files nor the plaintext dev flag.
    """
    if all(s.shard_id != config.shard_id for s in config.shards):
        raise ValueError(f"shard_id {config.shard_id!r} is not in [[shards]]")
    config.device_shards()  # validates the ids
    if not config.public_keys:
        raise ValueError("public_keys must name at least one Ed25519 public key file")
    limits = config.limits
    if limits.max_host_frame_bytes < limits.max_frame_bytes:
        raise ValueError(
            f"limits.max_host_frame_bytes ({limits.max_host_frame_bytes}) must be at least "
            f"limits.max_frame_bytes ({limits.max_frame_bytes}), or results from devices "
            "could not reach their hosts"
        )
    if not config.tls.insecure_dev_plaintext and not (config.tls.cert and config.tls.key):
        raise ValueError("tls.cert and tls.key are required (or tls.insecure_dev_plaintext = true)")
