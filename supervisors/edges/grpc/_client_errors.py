"""Errors of the gRPC client.

::

    GrpcClientError            (Exception)
     ├── ConnectError          the server cannot be reached, or the TLS handshake or the
     │                         HTTP/2 preface failed (names the target); retry is safe
     └── CallError             a call ended with a status other than OK: the server's, or
                               CANCELLED (we reset it), UNAVAILABLE (connection lost, stream
                               refused), DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED (too large)
"""

from __future__ import annotations

from ._errors import StatusCode


class GrpcClientError(Exception):
    """Base of every error the gRPC client raises."""


class ConnectError(GrpcClientError):
    """No connection to the server could be made."""

    def __init__(self, target: str, reason: str) -> None:
        super().__init__(f"cannot connect to {target}: {reason}")
        self.target = target
        self.reason = reason


class CallError(GrpcClientError):
    """A call ended with ``status`` (never OK) and the server's or our ``message``."""

    def __init__(self, status: StatusCode, message: str) -> None:
        super().__init__(f"{status.name}: {message}")
        self.status = status
        self.message = message
