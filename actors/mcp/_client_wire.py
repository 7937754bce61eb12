"""Pure logic of the MCP client: request bodies per era, and reading what the server answers.

No I/O here, so it is tested without processes. Errors raised are :class:`HandshakeFailed`
(a server we cannot talk to) and ``actors.errors.ToolError`` (one call went wrong); see the
tree in ``_client.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from actors.errors import ToolError

from ._eras import (
    CLIENT_CAPABILITIES_META_KEY,
    CLIENT_INFO_META_KEY,
    LEGACY_VERSION,
    MODERN_VERSION,
    PROTOCOL_VERSION_META_KEY,
    SERVER_INFO_META_KEY,
    TRACEPARENT_META_KEY,
    Era,
    Implementation,
)
from ._jsonrpc import INVALID_PARAMS, ErrorObject, McpError
from .messages import ToolInfo, ToolResult

ACCEPTED_LEGACY_VERSIONS: tuple[str, ...] = (LEGACY_VERSION, "2025-06-18", "2025-03-26")
"""Versions an ``initialize`` answer may name for us to go on: their ``tools/list`` and
``tools/call`` shapes are the ones this client reads (older ones lack ``outputSchema``
and ``structuredContent``, which then come back as ``None``)."""


class HandshakeFailed(McpError):
    """The server's answer to discovery or ``initialize`` leaves no era both sides speak."""


def modern_meta(client_info: Implementation, traceparent: str | None = None) -> dict[str, Any]:
    """The ``_meta`` every 2026-07-28 request carries (plus the trace context, if any)."""
    meta: dict[str, Any] = {
        PROTOCOL_VERSION_META_KEY: MODERN_VERSION,
        CLIENT_CAPABILITIES_META_KEY: {},
        CLIENT_INFO_META_KEY: client_info.to_json(),
    }
    if traceparent is not None:
        meta[TRACEPARENT_META_KEY] = traceparent
    return meta


def request_params(
    era: Era,
    client_info: Implementation,
    params: Mapping[str, Any] | None = None,
    *,
    traceparent: str | None = None,
    meta: Mapping[str, str] | None = None,
) -> dict[str, Any] | None:
    """``params`` with the era's envelope: modern ``_meta`` fields, the traceparent and
    ``meta`` (tenant, audit id) in both."""
    out = dict(params or {})
    if era is Era.MODERN:
        out["_meta"] = {**(meta or {}), **modern_meta(client_info, traceparent)}
    elif traceparent is not None or meta:
        out["_meta"] = dict(meta or {})
        if traceparent is not None:
            out["_meta"][TRACEPARENT_META_KEY] = traceparent
    return out or None


def initialize_params(client_info: Implementation) -> dict[str, Any]:
    """``initialize`` params: we offer 2025-11-25 and declare no client capabilities."""
    return {
        "protocolVersion": LEGACY_VERSION,
        "capabilities": {},
        "clientInfo": client_info.to_json(),
    }


def _implementation(value: Any) -> Implementation | None:
    if isinstance(value, dict) and isinstance(value.get("name"), str):
        version = value.get("version")
        return Implementation(name=value["name"], version=str(version or ""))
    return None


def read_discover(result: Mapping[str, Any]) -> Implementation | None:
    """Check a ``server/discover`` result names our modern version; return the serverInfo.

    Raises:
        HandshakeFailed: ``supportedVersions`` is missing or lacks 2026-07-28.
    """
    versions = result.get("supportedVersions")
    if not isinstance(versions, list) or MODERN_VERSION not in versions:
        raise HandshakeFailed(f"server/discover does not offer {MODERN_VERSION}: {versions!r}")
    meta = result.get("_meta")
    return _implementation(meta.get(SERVER_INFO_META_KEY)) if isinstance(meta, dict) else None


def read_initialize(result: Mapping[str, Any]) -> tuple[str, Implementation | None]:
    """The negotiated version and serverInfo of an ``initialize`` result.

    Raises:
        HandshakeFailed: the server chose a version this client does not read.
    """
    version = result.get("protocolVersion")
    if not isinstance(version, str) or version not in ACCEPTED_LEGACY_VERSIONS:
        raise HandshakeFailed(
            f"server answered initialize with protocol {version!r}; "
            f"this client speaks {', '.join((MODERN_VERSION, *ACCEPTED_LEGACY_VERSIONS))}"
        )
    return version, _implementation(result.get("serverInfo"))


def read_tools_page(result: Mapping[str, Any]) -> tuple[list[ToolInfo], str | None]:
    """The tools of one ``tools/list`` page and its ``nextCursor``.

    A descriptor without a string name or an object ``inputSchema`` is skipped: it could
    never be called correctly, and one bad entry must not hide the others.

    Raises:
        HandshakeFailed: ``tools`` is not a list.
    """
    raw_tools = result.get("tools")
    if not isinstance(raw_tools, list):
        raise HandshakeFailed("tools/list result has no tools list")
    tools: list[ToolInfo] = []
    for raw in raw_tools:
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            continue
        input_schema = raw.get("inputSchema")
        if not isinstance(input_schema, dict):
            continue
        output_schema = raw.get("outputSchema")
        description = raw.get("description")
        tools.append(
            ToolInfo(
                name=raw["name"],
                description=description if isinstance(description, str) else None,
                input_schema=input_schema,
                output_schema=output_schema if isinstance(output_schema, dict) else None,
                raw=raw,
            )
        )
    cursor = result.get("nextCursor")
    return tools, cursor if isinstance(cursor, str) and cursor else None


def read_call_result(
    call_id: str, tool: str, result: Mapping[str, Any], elapsed_s: float
) -> ToolResult:
    """A ``tools/call`` result as a :class:`ToolResult` (shape only; no schema check).

    Raises:
        ToolError: ``tool.failed`` when ``content`` is not a list of objects, or
            ``structuredContent`` / ``isError`` have the wrong JSON type.
    """
    content = result.get("content", [])
    if not isinstance(content, list) or not all(isinstance(block, dict) for block in content):
        raise ToolError("tool.failed", f"{tool}: the server's result has a malformed content list")
    structured = result.get("structuredContent")
    if structured is not None and not isinstance(structured, dict):
        raise ToolError("tool.failed", f"{tool}: structuredContent is not an object")
    is_error = result.get("isError", False)
    if not isinstance(is_error, bool):
        raise ToolError("tool.failed", f"{tool}: isError is not a boolean")
    return ToolResult(
        call_id=call_id,
        tool=tool,
        structured_content=structured,
        content=tuple(content),
        is_error=is_error,
        raw=result,
        elapsed_s=elapsed_s,
    )


def call_error(tool: str, error: ErrorObject) -> ToolError:
    """The typed error for a JSON-RPC error answer to ``tools/call``.

    ``-32602`` (invalid params, also what servers answer for an unknown tool) is
    ``tool.invalid_args``; anything else is ``tool.failed``.
    """
    text = f"{tool}: the server refused the call ({error.code}: {error.message})"
    if error.code == INVALID_PARAMS:
        return ToolError("tool.invalid_args", text)
    return ToolError("tool.failed", text)


def printable(data: bytes, limit: int) -> str:
    """``data`` as one log-safe line: decoded leniently, control characters escaped, cut."""
    text = data[:limit].decode("utf-8", "replace")
    safe = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)
    return safe + ("…" if len(data) > limit else "")
