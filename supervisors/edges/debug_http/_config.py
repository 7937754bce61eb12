"""Configuration of the debug HTTP endpoint, and the capacities it is built around."""

from __future__ import annotations

import ipaddress

import attrs

#: The token and plaintext settings as the processes' config spells them (TOML key, and the
#: ``ZL_*`` variable); error messages use them so an operator knows what to set.
TOKEN_SETTING = "debug.token"
TOKEN_ENV = "ZL_DEBUG__TOKEN"
PLAINTEXT_SETTING = "debug.allow_plaintext"
#: Shortest token accepted: a bearer token is the only thing guarding a non-loopback endpoint,
#: so it must not be guessable (16 characters of a random string is at least ~80 bits).
MIN_TOKEN_LENGTH = 16
#: Bytes read from the socket per receive call.
RECEIVE_CHUNK_BYTES = 16_384
#: Largest request body accepted (GET requests have none; this only lets a well-meaning
#: client's small body be drained so the connection can be kept alive).
MAX_BODY_BYTES = 4_096
#: Connections waiting in the kernel's accept queue.
LISTEN_BACKLOG = 64
#: Connections over ``max_connections`` that are answered 503 at the same time; past this
#: they are closed without an answer (an answer costs a task and a buffer each).
MAX_REJECTING_CONNECTIONS = 16
#: Deadline for the whole 503 exchange with a connection over the cap.
REJECT_DEADLINE_S = 2.0
#: After a response that ends the connection, how long (and how many bytes) the server keeps
#: reading before closing, so that unread client bytes do not turn the close into a reset
#: that destroys the response in flight.
CLOSE_LINGER_S = 1.0
CLOSE_LINGER_BYTES = 65_536
#: Pause after the process runs out of file descriptors, before accepting again.
ACCEPT_BACKOFF_S = 0.1
#: Bounds of the HTML page's ``?refresh=SECONDS``.
MIN_REFRESH_S = 1
MAX_REFRESH_S = 3_600


def _valid_token(
    _instance: object, _attribute: attrs.Attribute[str | None], value: str | None
) -> None:
    if value is None:
        return
    if len(value) < MIN_TOKEN_LENGTH:
        raise ValueError(f"{TOKEN_SETTING} must be at least {MIN_TOKEN_LENGTH} characters")
    if not value.isascii() or not value.isprintable() or any(c.isspace() for c in value):
        raise ValueError(f"{TOKEN_SETTING} must be printable ASCII without spaces")


def is_loopback_host(host: str) -> bool:
    """Whether binding ``host`` keeps the endpoint on this machine.

    Only literal loopback addresses and ``localhost`` count; any other name is treated as
    reachable from the network (a name resolved later could point anywhere).
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@attrs.frozen(kw_only=True)
class DebugHttpConfig:
    """Where the debug endpoint listens, who may read it, and how long it waits.

    Memory is bounded by ``max_connections`` times (``max_header_bytes`` plus one response);
    every wait on a client has a deadline below.
    """

    #: Address to bind. Loopback by default; any other address requires ``token``.
    host: str = "127.0.0.1"
    #: Port to bind; 0 picks a free one (reported through ``serve_debug_http``'s task_status).
    port: int = attrs.field(
        default=0,
        validator=attrs.validators.and_(attrs.validators.ge(0), attrs.validators.le(65_535)),
    )
    #: Bearer token clients must present (``Authorization: Bearer <token>``). Required when
    #: ``host`` is not loopback; optional on loopback (then every request must carry it).
    token: str | None = attrs.field(default=None, validator=_valid_token, repr=False)
    #: Serve plaintext on a non-loopback address (development only; the server logs a
    #: warning). Loopback is always allowed without TLS.
    allow_plaintext: bool = False
    #: Deadline for one whole request (request line, headers and any body), from the moment
    #: the connection is accepted or the first byte of a kept-alive request arrives. A client
    #: that trickles its headers (slow loris) is cut off when it passes.
    request_read_timeout_s: float = attrs.field(default=10.0, validator=attrs.validators.gt(0))
    #: Deadline for sending one response; a client that does not read is dropped.
    write_timeout_s: float = attrs.field(default=10.0, validator=attrs.validators.gt(0))
    #: How long a kept-alive connection may sit idle between requests.
    keepalive_idle_timeout_s: float = attrs.field(default=30.0, validator=attrs.validators.gt(0))
    #: Deadline for the TLS handshake (when an ssl_context is given).
    handshake_timeout_s: float = attrs.field(default=10.0, validator=attrs.validators.gt(0))
    #: Largest unfinished request line plus headers kept; over it the answer is 431. (A
    #: block that completes within the receive that crosses the limit is accepted, so the
    #: buffer never exceeds this plus ``RECEIVE_CHUNK_BYTES``.)
    max_header_bytes: int = attrs.field(default=16_384, validator=attrs.validators.ge(1_024))
    #: Connections served at once; one more is answered 503 and closed.
    max_connections: int = attrs.field(default=32, validator=attrs.validators.gt(0))
    #: Which process this is, on the page's title (e.g. "relay shard relay-2"); the
    #: process sets it, so several shards' pages can be told apart.
    label: str = ""
