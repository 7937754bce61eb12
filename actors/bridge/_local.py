"""Pure logic of the bridge: the catalog it announces and the caps it enforces itself.

The host caps every call; the bridge caps it again with its own, never looser, limits,
so a compromised or buggy relay cannot make the device read more or wait longer.
"""

from __future__ import annotations

import base64
import hashlib
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


#: The ``content`` of a result whose text mirror of ``structuredContent`` was left out to
#: fit the frame (MCP clients that read only ``content`` learn where the data is).
MIRROR_DROPPED_TEXT: Final = "(the result is in structuredContent; its text copy did not fit)"
#: Fields of a result shaped like fs.read's: the bytes, how they are encoded, how many.
_CUTTABLE_FIELDS: Final = frozenset({"content", "encoding", "bytesReturned", "truncated", "sha256"})


class ResultTooLarge(Exception):
    """A tool's result cannot be made to fit the frame (it has nothing that can be cut)."""


def fit_result(result: Mapping[str, Any], budget: int) -> dict[str, Any]:
    """The MCP ``CallToolResult`` made to fit in ``budget`` bytes of compact JSON.

    The relay's frame limit and the tools' byte caps are set apart, and escaping can make
    a text result several times its bytes, so a result may not fit its frame. Rather than
    fail the call, as stdio does not, it is made to fit, in this order:

    1. as it is, if it fits;
    2. without the text copy of ``structuredContent`` in ``content`` (the host reads
       ``structuredContent``), which halves it;
    3. for a result shaped like fs.read's (``content``, ``encoding``, ``bytesReturned``,
       ``truncated``, ``sha256``), with ``content`` cut to fit: on a character boundary for
       text, on a 3-byte boundary for base64; ``bytesReturned`` and ``sha256`` describe the
       bytes kept, and ``truncated`` is true (read on with ``offset``).

    Raises:
        ResultTooLarge: none of that fits (a result of another shape).
    """
    raw = dict(result)
    if result_size(raw) <= budget:
        return raw
    structured = raw.get("structuredContent")
    if not isinstance(structured, dict):
        raise ResultTooLarge(f"result of {result_size(raw)} bytes and nothing to cut")
    raw["content"] = [{"type": "text", "text": MIRROR_DROPPED_TEXT}]
    if result_size(raw) <= budget:
        return raw
    if not structured.keys() >= _CUTTABLE_FIELDS or not isinstance(structured["content"], str):
        raise ResultTooLarge(f"result of {result_size(raw)} bytes and nothing to cut")
    # The other fields at their longest, so that what is left for the content is a bound.
    widest = {"content": "", "bytesReturned": 10**15, "truncated": False, "sha256": "0" * 64}
    empty = {**structured, **widest}
    room = budget - result_size({**raw, "structuredContent": empty})
    cut = _cut_content(structured["content"], structured["encoding"], room)
    if cut is None:
        raise ResultTooLarge(f"no room for any content in {budget} bytes")
    content, data = cut
    raw["structuredContent"] = {
        **structured,
        "content": content,
        "bytesReturned": len(data),
        "truncated": True,
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    return raw


def _json_string_bytes(text: str) -> int:
    return len(json.dumps(text, ensure_ascii=False).encode("utf-8"))


def _cut_content(content: str, encoding: str, room: int) -> tuple[str, bytes] | None:
    """The longest prefix of ``content`` whose JSON string fits ``room`` bytes, and its bytes."""
    if room < 2:  # the two quotes
        return None
    if encoding == "base64":
        # Base64 is ASCII and never escaped: whole 4-character groups, 3 bytes each.
        data = base64.b64decode(content)[: (room - 2) // 4 * 3]
        return base64.b64encode(data).decode("ascii"), data
    data = content.encode("utf-8")
    # Escaping makes a byte cost 1 to 6 in JSON: search for the longest prefix that fits.
    low, high = 0, len(data)
    while low < high:
        middle = (low + high + 1) // 2
        text = data[:middle].decode("utf-8", errors="ignore")
        if _json_string_bytes(text) <= room:
            low = middle
        else:
            high = middle - 1
    text = data[:low].decode("utf-8", errors="ignore")
    return text, text.encode("utf-8")
