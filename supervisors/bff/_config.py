"""The BFF's configuration: TOML (``--config``) plus ``ZL_*`` variables.

Parsing and the variable convention are in ``supervisors._config`` (``ZL_HTTP__PORT=8443``,
``ZL_AUTH__PUBLIC_KEYS=/etc/zl/caller.pub``). Example::

    [http]                  # where browsers and API clients connect (HTTPS)
    host = "0.0.0.0"
    port = 8443
    tls_cert = "/etc/zl/bff.pem"
    tls_key = "/etc/zl/bff-key.pem"

    [host]                  # the model host's gRPC StreamChat (TLS, optionally mutual)
    target = "host.zl.svc:50051"
    ca = "/etc/zl/ca.pem"
    client_cert = "/etc/zl/bff-client.pem"
    client_key = "/etc/zl/bff-client-key.pem"

    [auth]                  # caller tokens (EdDSA JWTs; kid = actors.relay.key_id)
    public_keys = ["/etc/zl/caller.pub"]    # or jwks_file = "/etc/zl/jwks.json"
    audience = "zl-host"

    [sessions]
    max_sessions = 1000
    max_sessions_per_user = 16
"""

from __future__ import annotations

import attrs
from attrs.validators import ge, gt, le

from supervisors._config import ConfigError


@attrs.frozen(kw_only=True)
class HttpSection:
    """The HTTPS listener."""

    host: str = "127.0.0.1"
    #: 0 picks a free port (printed at start-up and written to --ready-file).
    port: int = attrs.field(default=8443, validator=[ge(0), le(65_535)])
    tls_cert: str = ""
    tls_key: str = ""
    #: Make (or reuse) development certificates in this folder and serve with them.
    dev_certs_dir: str = ""
    #: Serve plain HTTP: development only, and the log says so.
    insecure_dev_plaintext: bool = False
    #: Largest request body read (a chat message, a session request, an OpenAI request).
    max_body_bytes: int = attrs.field(default=1024 * 1024, validator=gt(0))
    #: Requests handled at once (an SSE stream counts until it ends); one more gets 503.
    max_concurrent_requests: int = attrs.field(default=4096, validator=gt(0))
    #: Longest a TLS handshake, or a request's body, may take to arrive (408 after it).
    read_timeout_s: float = attrs.field(default=30.0, validator=gt(0))
    #: A connection with no request in progress (idle, or whose headers are still
    #: arriving) is closed after this long: slow clients cannot hold connections.
    keep_alive_timeout_s: float = attrs.field(default=15.0, validator=gt(0))
    #: Bytes a client may leave unacknowledged on a connection (a reader that stopped
    #: reading entirely) for this long before the kernel drops it (TCP_USER_TIMEOUT).
    unacked_timeout_s: float = attrs.field(default=120.0, validator=gt(0))
    #: Kernel send buffer of each client connection (SO_SNDBUF); 0 keeps the kernel's
    #: autotuned default. A smaller one makes a slow reader hold back the host sooner.
    send_buffer_bytes: int = attrs.field(default=0, validator=ge(0))
    #: At shutdown, open streams get this long to finish; then they are ended.
    shutdown_grace_s: float = attrs.field(default=10.0, validator=ge(0))


@attrs.frozen(kw_only=True)
class HostSection:
    """How the BFF reaches the model host's gRPC ``StreamChat``."""

    target: str = "localhost:50051"
    #: The CA that signs the host's certificate.
    ca: str = ".zl/certs/ca.pem"
    #: The TLS name to check on the host's certificate; the target's host by default.
    server_name: str = ""
    #: This BFF's certificate and key, for mutual TLS with the host.
    client_cert: str = ""
    client_key: str = ""
    #: Talk to the host without TLS: development only, and the log says so.
    insecure_dev_plaintext: bool = False
    connect_timeout_s: float = attrs.field(default=5.0, validator=gt(0))
    #: How long the host may take to answer start_session with session.started.
    start_timeout_s: float = attrs.field(default=10.0, validator=gt(0))
    #: How long one gRPC health check may take (GET /v1/health).
    health_timeout_s: float = attrs.field(default=2.0, validator=gt(0))
    #: HTTP/2 connections to the host at most (each carries many sessions).
    max_connections: int = attrs.field(default=4, validator=gt(0))
    #: Window for each session's stream: unread event bytes the host may have in flight.
    stream_window_bytes: int = attrs.field(default=65_535, validator=gt(0))


@attrs.frozen(kw_only=True)
class AuthSection:
    """Caller tokens: who is asking, proven by a signature (docs/bff.md, "Caller tokens")."""

    #: Ed25519 public keys (PEM) that caller tokens may be signed with (rotation: list both).
    public_keys: list[str] = attrs.Factory(list)
    #: Or (and) a JWKS file of OKP/Ed25519 keys, re-read when it changes.
    jwks_file: str = ""
    audience: str = "zl-host"
    #: Issuers accepted (``iss``); empty accepts any issuer the keys vouch for.
    issuers: list[str] = attrs.Factory(list)
    #: Longest lifetime (exp - iat) a token may claim.
    max_ttl_s: float = attrs.field(default=3600.0, validator=gt(0))
    #: Clock difference tolerated between the token's issuer and this BFF.
    leeway_s: float = attrs.field(default=30.0, validator=ge(0))


@attrs.frozen(kw_only=True)
class SessionsSection:
    """Session caps and timing."""

    #: Sessions at once over every caller; one more is refused 503 ``overloaded``.
    max_sessions: int = attrs.field(default=1000, validator=gt(0))
    #: Sessions at once per user of a tenant; one more is refused 429 ``session.limit``.
    max_sessions_per_user: int = attrs.field(default=16, validator=gt(0))
    #: A session with no turn for this long is closed.
    idle_timeout_s: float = attrs.field(default=900.0, validator=gt(0))
    #: A session lives at most this long (and never past the token that opened it).
    max_session_s: float = attrs.field(default=8 * 3600.0, validator=gt(0))
    #: Events held between the host's stream and a turn's SSE response. When it is full the
    #: BFF stops reading the host's stream, whose HTTP/2 window then closes (back-pressure).
    turn_buffer_events: int = attrs.field(default=32, validator=gt(0))
    #: An SSE reader that takes nothing for this long, with events waiting, loses its turn
    #: (cancelled on the host).
    stall_timeout_s: float = attrs.field(default=60.0, validator=gt(0))
    #: A comment line on an SSE stream that has been quiet this long (keeps proxies open).
    sse_heartbeat_s: float = attrs.field(default=15.0, validator=gt(0))
    #: How long DELETE waits for the host to end the session before it resets the stream.
    close_timeout_s: float = attrs.field(default=2.0, validator=gt(0))
    #: At shutdown each session has this long to stop.
    stop_grace_s: float = attrs.field(default=2.0, validator=ge(0))


@attrs.frozen(kw_only=True)
class BffConfig:
    http: HttpSection = HttpSection()
    host: HostSection = HostSection()
    auth: AuthSection = AuthSection()
    sessions: SessionsSection = SessionsSection()


def check_config(config: BffConfig) -> None:
    """Refuse unusable settings before anything starts.

    Raises:
        ConfigError: naming the setting.
    """
    http = config.http
    if bool(http.tls_cert) != bool(http.tls_key):
        raise ConfigError("http: set both http.tls_cert and http.tls_key, or neither")
    if not (http.tls_cert or http.dev_certs_dir or http.insecure_dev_plaintext):
        raise ConfigError(
            "http: TLS is required; set http.tls_cert and http.tls_key, or http.dev_certs_dir "
            "for development certificates, or http.insecure_dev_plaintext = true "
            "(development only)"
        )
    host = config.host
    target_host, sep, port = host.target.rpartition(":")
    if not sep or not target_host or not port.isdigit() or not 0 < int(port) < 65_536:
        raise ConfigError(f"host.target: expected host:port, got {host.target!r}")
    if bool(host.client_cert) != bool(host.client_key):
        raise ConfigError("host: set both host.client_cert and host.client_key, or neither")
    if not host.insecure_dev_plaintext and not host.ca:
        raise ConfigError("host.ca: the CA bundle that signs the host's certificate is required")
    if not (config.auth.public_keys or config.auth.jwks_file):
        raise ConfigError(
            "auth: no keys to verify caller tokens with; set auth.public_keys (PEM files) "
            "or auth.jwks_file"
        )
    if config.sessions.max_sessions_per_user > config.sessions.max_sessions:
        raise ConfigError("sessions.max_sessions_per_user: larger than sessions.max_sessions")
