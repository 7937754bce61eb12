"""Errors of the debug HTTP endpoint.

::

    DebugHttpError               (Exception)
     ├── DebugHttpConfigError    the endpoint refuses to start with this configuration
     │                           (e.g. a non-loopback address without a token); raised
     │                           before any socket is bound, and names the setting
     └── DebugHttpBindError      the listening socket could not be opened (names host:port)

Nothing a client sends raises out of ``serve_debug_http``: bad requests get a 4xx answer
and the connection is closed; only the two errors above leave it, both at start-up.
"""

from __future__ import annotations


class DebugHttpError(Exception):
    """Base of every error the debug HTTP endpoint raises."""


class DebugHttpConfigError(DebugHttpError):
    """The configuration is one the endpoint refuses to serve with."""


class DebugHttpBindError(DebugHttpError):
    """The endpoint could not listen on the configured address."""

    def __init__(self, host: str, port: int, reason: str) -> None:
        super().__init__(f"debug HTTP endpoint cannot listen on {host}:{port}: {reason}")
        self.host = host
        self.port = port
