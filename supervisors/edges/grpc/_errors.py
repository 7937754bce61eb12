"""Errors and status codes of the gRPC edge.

::

    GrpcEdgeError                 (Exception)
     ├── BindError                the listening socket could not be opened (names host:port)
     ├── ConfigError              a GrpcServerConfig or ssl_context the edge cannot serve with
     ├── RpcError                 raise from a handler to end the call with a gRPC status
     │    ├── MessageTooLarge     an inbound message was over max_message_bytes
     │    │                       (status RESOURCE_EXHAUSTED if the handler lets it escape)
     │    └── BadMessage          an inbound message did not parse (status INVALID_ARGUMENT)
     └── StreamClosed             the stream cannot carry messages in that direction any more
          ├── EndOfStream         receive(): the client half-closed and every message was read
          └── StreamReset         the client reset the stream, the connection dropped, or the
                                  call ended (deadline, shutdown); the handler is being cancelled

Handlers see ``MessageTooLarge`` and ``BadMessage`` from ``receive()`` and may catch them to
answer with an application error event and carry on; the stream stays usable.
"""

from __future__ import annotations

import enum


class StatusCode(enum.IntEnum):
    """The gRPC status codes (``grpc-status`` trailer values)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


class GrpcEdgeError(Exception):
    """Base of every error the gRPC edge raises."""


class BindError(GrpcEdgeError):
    """The server could not listen on the configured address."""

    def __init__(self, host: str, port: int, reason: str) -> None:
        super().__init__(f"gRPC server cannot listen on {host}:{port}: {reason}")
        self.host = host
        self.port = port


class ConfigError(GrpcEdgeError):
    """The server was asked to run in a way it refuses (e.g. plaintext without the dev flag)."""


class RpcError(GrpcEdgeError):
    """Ends the call with ``status`` and ``message`` in the trailers.

    Args:
        status: the gRPC status code to send.
        message: the ``grpc-message`` text, for a person.
    """

    def __init__(self, status: StatusCode, message: str) -> None:
        super().__init__(f"{status.name}: {message}")
        self.status = status
        self.message = message


class MessageTooLarge(RpcError):
    """An inbound message announced more bytes than ``max_message_bytes``; it was discarded."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            StatusCode.RESOURCE_EXHAUSTED,
            f"received message of {size} bytes, larger than the maximum {limit}",
        )
        self.size = size
        self.limit = limit


class BadMessage(RpcError):
    """An inbound message could not be decoded (or used a compression the server lacks)."""

    def __init__(self, message: str) -> None:
        super().__init__(StatusCode.INVALID_ARGUMENT, message)


class StreamClosed(GrpcEdgeError):
    """The stream no longer carries messages in the requested direction."""


class EndOfStream(StreamClosed):
    """The client half-closed its side and every message it sent has been received."""


class StreamReset(StreamClosed):
    """The stream is gone: reset by the client, its connection lost, or the call has ended."""
