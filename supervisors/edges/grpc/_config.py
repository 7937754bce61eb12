"""Configuration of the gRPC edge, and the capacities it is built around."""

from __future__ import annotations

import attrs

#: Bytes read from the socket per receive call.
RECEIVE_CHUNK_BYTES = 65_536
#: HTTP/2 frame size we accept (the protocol's default and minimum).
MAX_INBOUND_FRAME_BYTES = 16_384
#: Largest header block we accept (pseudo-headers plus metadata).
MAX_HEADER_LIST_BYTES = 16_384
#: Connections waiting in the kernel's accept queue.
LISTEN_BACKLOG = 128
#: Pause after the process runs out of file descriptors, before accepting again.
ACCEPT_BACKOFF_S = 0.1


@attrs.frozen(kw_only=True)
class GrpcServerConfig:
    """How the gRPC edge listens and what it accepts.

    Memory per stream is bounded by about ``2 * stream_window_bytes + 2 * max_message_bytes``
    (see the flow-control notes in ``_connection.py``); per connection by that times
    ``max_concurrent_streams`` plus ``outbound_buffer_bytes``.
    """

    #: Address to bind. Loopback by default; "0.0.0.0" or "::" only on purpose.
    host: str = "127.0.0.1"
    #: Port to bind; 0 picks a free one (reported by ``serve_grpc``'s task_status).
    port: int = attrs.field(
        default=0,
        validator=attrs.validators.and_(attrs.validators.ge(0), attrs.validators.le(65_535)),
    )
    #: Serve without TLS. Only for development and tests; the server says so in the log.
    allow_plaintext: bool = False
    #: Largest inbound message (gRPC's customary default is 4 MiB).
    max_message_bytes: int = attrs.field(default=4 * 1024 * 1024, validator=attrs.validators.gt(0))
    #: HTTP/2 per-stream receive window: unread inbound bytes a client may have in flight.
    stream_window_bytes: int = attrs.field(default=65_535, validator=attrs.validators.gt(0))
    #: HTTP/2 connection receive window (topped up as data arrives; streams bound memory).
    connection_window_bytes: int = attrs.field(
        default=16 * 1024 * 1024, validator=attrs.validators.gt(0)
    )
    #: Streams one connection may have open at once (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS).
    max_concurrent_streams: int = attrs.field(default=2_048, validator=attrs.validators.gt(0))
    #: Encoded bytes waiting for the socket before ``send()`` waits (slow-reader back-pressure).
    outbound_buffer_bytes: int = attrs.field(default=256 * 1024, validator=attrs.validators.gt(0))
    #: Deadline for the TLS handshake and the client's HTTP/2 preface.
    handshake_timeout_s: float = attrs.field(default=10.0, validator=attrs.validators.gt(0))
    #: Deadline for one socket write; a peer that does not read for this long is dropped.
    write_timeout_s: float = attrs.field(default=30.0, validator=attrs.validators.gt(0))
    #: Longest a ``send()`` waits for the client to open its flow-control window.
    send_stall_timeout_s: float = attrs.field(default=60.0, validator=attrs.validators.gt(0))
    #: Default grace for graceful shutdown: streams may finish within it, then are cancelled.
    shutdown_grace_s: float = attrs.field(default=10.0, validator=attrs.validators.gt(0))
    #: With calls open and nothing sent for this long, send an HTTP/2 PING: it keeps the
    #: connection alive through proxies and load balancers while a call waits (a long first
    #: token), and finds a client that vanished without a FIN.
    keepalive_s: float = attrs.field(default=20.0, validator=attrs.validators.gt(0))
    #: A PING not acknowledged within this long means the client is gone.
    keepalive_ack_timeout_s: float = attrs.field(default=20.0, validator=attrs.validators.gt(0))
    #: Serve grpc.reflection.v1alpha and v1 for every registered service.
    reflection: bool = True
    #: Connections served at once (TLS handshakes included); one more is closed at once.
    max_connections: int = attrs.field(default=1_024, validator=attrs.validators.gt(0))
    #: A connection with no call open for this long is closed (GOAWAY, then close).
    idle_timeout_s: float = attrs.field(default=120.0, validator=attrs.validators.gt(0))
    #: The window over which a connection's resets and control frames are counted.
    abuse_window_s: float = attrs.field(default=10.0, validator=attrs.validators.gt(0))
    #: Streams the client may reset before they are answered within the window; one more
    #: closes the connection with ENHANCE_YOUR_CALM (the "rapid reset" attack,
    #: CVE-2023-44487, opens and resets streams faster than handlers can end). Cancelling
    #: calls that are under way does not count.
    max_resets_per_window: int = attrs.field(default=400, validator=attrs.validators.gt(0))
    #: SETTINGS, PING and PRIORITY frames the client may send within the window; one more
    #: closes it with ENHANCE_YOUR_CALM (each asks for work or an acknowledgement).
    max_control_frames_per_window: int = attrs.field(default=400, validator=attrs.validators.gt(0))
    #: Bytes of acknowledgements a client that does not read may leave waiting; past it
    #: the connection is closed with ENHANCE_YOUR_CALM.
    max_unread_control_bytes: int = attrs.field(
        default=1024 * 1024, validator=attrs.validators.gt(0)
    )
