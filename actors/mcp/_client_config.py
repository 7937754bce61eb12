"""Configuration of the MCP stdio client: which server command to run, and its limits.

Frozen attrs classes, so a config read once (TOML + ``ZL_*`` by the process's supervisor
module) is shared by every restart of the client without being changed under it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import attrs
from attrs.validators import ge, gt

from ._eras import Era, Implementation

DEFAULT_MAX_CONCURRENT_CALLS = 64
"""Calls in flight on one server process; one more is refused with ``overloaded``."""
DEFAULT_STARTUP_TIMEOUT_S = 10.0
"""Spawn, era negotiation and the first ``tools/list`` together."""
DEFAULT_PROBE_TIMEOUT_S = 3.0
"""How long a ``server/discover`` probe may go unanswered before the client tries
``initialize`` (a legacy server may ignore unknown requests)."""
DEFAULT_CALL_TIMEOUT_S = 30.0
DEFAULT_REQUEST_TIMEOUT_S = 10.0
"""Deadline of the client's own requests after start-up (a catalog refresh)."""
DEFAULT_WRITE_TIMEOUT_S = 5.0
"""A line stdin cannot take within this long means the server stopped reading: restart it."""
DEFAULT_STDIN_CLOSE_TIMEOUT_S = 0.5
DEFAULT_SIGTERM_TIMEOUT_S = 0.5
DEFAULT_SIGKILL_TIMEOUT_S = 2.0
DEFAULT_MAX_LINE_BYTES = 8 * 1024 * 1024
"""Longest stdout line kept. A tool result is one line; base64 of a 4 MiB read fits."""
DEFAULT_MAX_STDERR_LINE_BYTES = 4096
DEFAULT_STDERR_TAIL_LINES = 20
"""Last stderr lines kept to explain a crash in the error that reports it."""
DEFAULT_MAX_TOOLS = 1000
DEFAULT_MAX_TOOL_PAGES = 100
"""``tools/list`` pages followed; a server whose ``nextCursor`` never ends is cut off here."""

CLIENT_NAME = "zl-mcp-client"
CLIENT_VERSION = "1.0.0"
DEFAULT_CLIENT_INFO = Implementation(name=CLIENT_NAME, version=CLIENT_VERSION)


def _argv(value: Sequence[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        raise TypeError("argv must be a sequence of strings, not one string")
    return tuple(value)


def _env(value: Mapping[str, str] | None) -> tuple[tuple[str, str], ...] | None:
    return None if value is None else tuple(sorted(value.items()))


def _non_empty(_: object, attribute: attrs.Attribute[tuple[str, ...]], value: object) -> None:
    if not value:
        raise ValueError(f"{attribute.name} must name a program")


@attrs.frozen(kw_only=True)
class McpServerCommand:
    """The server program and how to start it.

    Args:
        argv: program and arguments (no shell).
        env: variables set over the inherited environment (``None``: inherit as is).
        cwd: working directory (``None``: ours).
        name: what logs call the server; defaults to the program's base name.
    """

    argv: tuple[str, ...] = attrs.field(converter=_argv, validator=_non_empty)
    env: tuple[tuple[str, str], ...] | None = attrs.field(default=None, converter=_env)
    cwd: str | None = None
    name: str = attrs.field(
        default=attrs.Factory(
            lambda self: os.path.basename(self.argv[0]) if self.argv else "", takes_self=True
        )
    )

    def environment(self) -> dict[str, str] | None:
        """The child's environment, or ``None`` to inherit ours unchanged."""
        if self.env is None:
            return None
        merged = dict(os.environ)
        merged.update(self.env)
        return merged


@attrs.frozen(kw_only=True)
class McpClientLimits:
    """Bounds of one client (see the ``DEFAULT_*`` constants for what each means)."""

    max_concurrent_calls: int = attrs.field(default=DEFAULT_MAX_CONCURRENT_CALLS, validator=gt(0))
    startup_timeout_s: float = attrs.field(default=DEFAULT_STARTUP_TIMEOUT_S, validator=gt(0))
    probe_timeout_s: float = attrs.field(default=DEFAULT_PROBE_TIMEOUT_S, validator=gt(0))
    default_call_timeout_s: float = attrs.field(default=DEFAULT_CALL_TIMEOUT_S, validator=gt(0))
    request_timeout_s: float = attrs.field(default=DEFAULT_REQUEST_TIMEOUT_S, validator=gt(0))
    write_timeout_s: float = attrs.field(default=DEFAULT_WRITE_TIMEOUT_S, validator=gt(0))
    stdin_close_timeout_s: float = attrs.field(
        default=DEFAULT_STDIN_CLOSE_TIMEOUT_S, validator=ge(0)
    )
    sigterm_timeout_s: float = attrs.field(default=DEFAULT_SIGTERM_TIMEOUT_S, validator=ge(0))
    sigkill_timeout_s: float = attrs.field(default=DEFAULT_SIGKILL_TIMEOUT_S, validator=gt(0))
    max_line_bytes: int = attrs.field(default=DEFAULT_MAX_LINE_BYTES, validator=gt(0))
    max_stderr_line_bytes: int = attrs.field(default=DEFAULT_MAX_STDERR_LINE_BYTES, validator=gt(0))
    stderr_tail_lines: int = attrs.field(default=DEFAULT_STDERR_TAIL_LINES, validator=gt(0))
    max_tools: int = attrs.field(default=DEFAULT_MAX_TOOLS, validator=gt(0))
    max_tool_pages: int = attrs.field(default=DEFAULT_MAX_TOOL_PAGES, validator=gt(0))

    @property
    def stop_budget_s(self) -> float:
        """The longest a stop can take: stdin close, SIGTERM and SIGKILL waits in turn."""
        return self.stdin_close_timeout_s + self.sigterm_timeout_s + self.sigkill_timeout_s


@attrs.frozen(kw_only=True)
class McpClientConfig:
    """Everything an ``McpStdioClient`` needs.

    Args:
        command: the server to run.
        limits: the client's bounds.
        era: ``None`` negotiates (probe ``server/discover``, fall back to ``initialize``);
            ``Era.LEGACY`` or ``Era.MODERN`` uses that era only.
        client_info: how the client introduces itself to the server.
    """

    command: McpServerCommand
    limits: McpClientLimits = McpClientLimits()
    era: Era | None = None
    client_info: Implementation = DEFAULT_CLIENT_INFO
