"""Pure logic of the bridge: the catalog it announces and the caps it enforces itself.

The host caps every call; the bridge caps it again with its own, never looser, limits,
so a compromised or buggy relay cannot make the device read more or wait longer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

import attrs
from attrs.validators import gt

from actors.mcp import ToolCatalog
from actors.relay import Tool, ToolCall

#: Where our MCP servers put a tool's version in its ``tools/list`` entry.
VERSION_META_KEY: Final = "dev.zerolatency/version"
UNVERSIONED: Final = "0.0.0"
DEFAULT_MAX_TIMEOUT_S: Final = 60.0
DEFAULT_MAX_BYTES: Final = 1024 * 1024


@attrs.frozen(kw_only=True)
class LocalCaps:
    """The bridge's own ceiling on every call."""

    max_timeout_s: float = attrs.field(default=DEFAULT_MAX_TIMEOUT_S, validator=gt(0))
    max_bytes: int = attrs.field(default=DEFAULT_MAX_BYTES, validator=gt(0))


@attrs.frozen(kw_only=True)
class EffectiveCaps:
    timeout_s: float
    max_bytes: int


def announced_tools(catalog: ToolCatalog) -> tuple[Tool, ...]:
    """The ``device.hello`` catalog: each MCP tool with its version (``0.0.0`` if it has none)."""
    tools = []
    for info in catalog.tools:
        meta = info.raw.get("_meta")
        version = meta.get(VERSION_META_KEY) if isinstance(meta, Mapping) else None
        tools.append(
            Tool(
                name=info.name,
                version=version if isinstance(version, str) else UNVERSIONED,
                description=(info.description or "")[:4096],
                input_schema=dict(info.input_schema),
                output_schema=dict(info.output_schema) if info.output_schema else None,
            )
        )
    return tuple(tools)


def effective_caps(call: ToolCall, local: LocalCaps) -> EffectiveCaps:
    """The tightest of the call's caps, its deadline and the bridge's own caps."""
    timeout_ms = min(call.caps.timeout_ms, call.deadline_ms)
    return EffectiveCaps(
        timeout_s=min(timeout_ms / 1000, local.max_timeout_s),
        max_bytes=min(call.caps.max_bytes, local.max_bytes),
    )


def capped_arguments(
    arguments: Mapping[str, Any], input_schema: Mapping[str, Any] | None, max_bytes: int
) -> dict[str, Any]:
    """``arguments`` with the ``maxBytes`` argument (if the tool has one) cut to ``max_bytes``."""
    capped = dict(arguments)
    properties = (input_schema or {}).get("properties")
    if isinstance(properties, Mapping) and "maxBytes" in properties:
        asked = capped.get("maxBytes")
        capped["maxBytes"] = min(asked, max_bytes) if isinstance(asked, int) else max_bytes
    return capped


def result_size(result: Mapping[str, Any]) -> int:
    """Bytes of the result as it will travel (compact JSON, UTF-8)."""
    return len(json.dumps(result, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
