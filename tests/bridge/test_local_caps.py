"""The bridge's pure logic: the announced catalog and its own caps (``actors.bridge._local``)."""

from __future__ import annotations

from typing import Any

import pytest

from actors.bridge import LocalCaps, announced_tools, capped_arguments, effective_caps
from actors.bridge._local import UNVERSIONED, VERSION_META_KEY, result_size
from actors.mcp import Era, ToolCatalog
from actors.mcp.messages import ToolInfo
from actors.relay import Caps, ToolCall

FS_READ_INPUT = {
    "type": "object",
    "properties": {"path": {"type": "string"}, "maxBytes": {"type": "integer"}},
}


def info(name: str, **raw: Any) -> ToolInfo:
    return ToolInfo(
        name=name,
        description=raw.get("description"),
        input_schema=raw.get("inputSchema", {"type": "object"}),
        output_schema=raw.get("outputSchema"),
        raw={"name": name, **raw},
    )


def catalog(*tools: ToolInfo) -> ToolCatalog:
    return ToolCatalog(tools=tools, era=Era.LEGACY, protocol_version="2025-11-25", server_info=None)


def call(*, timeout_ms: int = 5000, deadline_ms: int = 5000, max_bytes: int = 65536) -> ToolCall:
    return ToolCall(
        call_id="c-1",
        tenant="acme",
        device_id="laptop",
        tool="fs.read",
        version="1.0.0",
        args={"path": "a.txt"},
        deadline_ms=deadline_ms,
        caps=Caps(timeout_ms=timeout_ms, max_bytes=max_bytes),
    )


class TestAnnouncedTools:
    """``device.hello`` lists each MCP tool with its version and schemas."""

    def test_version_from_meta(self) -> None:
        (tool,) = announced_tools(
            catalog(info("fs.read", _meta={VERSION_META_KEY: "1.2.3"}, inputSchema=FS_READ_INPUT))
        )
        assert (tool.name, tool.version) == ("fs.read", "1.2.3")
        assert tool.input_schema == FS_READ_INPUT
        assert tool.output_schema is None

    def test_unversioned_tool(self) -> None:
        (tool,) = announced_tools(catalog(info("echo", _meta={VERSION_META_KEY: 7})))
        assert tool.version == UNVERSIONED

    def test_long_description_is_cut(self) -> None:
        (tool,) = announced_tools(catalog(info("echo", description="x" * 10_000)))
        assert tool.description == "x" * 4096


class TestEffectiveCaps:
    """The tightest of the call's caps, its deadline and the bridge's own caps wins."""

    def test_call_caps_below_local(self) -> None:
        caps = effective_caps(call(timeout_ms=2000, max_bytes=100), LocalCaps())
        assert (caps.timeout_s, caps.max_bytes) == (2.0, 100)

    def test_deadline_below_timeout(self) -> None:
        caps = effective_caps(call(timeout_ms=5000, deadline_ms=1500), LocalCaps())
        assert caps.timeout_s == 1.5

    def test_local_caps_win_over_a_looser_call(self) -> None:
        local = LocalCaps(max_timeout_s=1.0, max_bytes=10)
        caps = effective_caps(call(timeout_ms=600_000, max_bytes=10**9), local)
        assert (caps.timeout_s, caps.max_bytes) == (1.0, 10)

    @pytest.mark.parametrize("bad", [{"max_timeout_s": 0}, {"max_bytes": -1}])
    def test_local_caps_must_be_positive(self, bad: dict[str, Any]) -> None:
        with pytest.raises(ValueError, match="must be > 0"):
            LocalCaps(**bad)


class TestCappedArguments:
    """A ``maxBytes`` argument never exceeds the effective cap."""

    def test_larger_max_bytes_is_lowered(self) -> None:
        args = capped_arguments({"path": "a", "maxBytes": 10_000}, FS_READ_INPUT, 100)
        assert args == {"path": "a", "maxBytes": 100}

    def test_smaller_max_bytes_is_kept(self) -> None:
        assert capped_arguments({"maxBytes": 5}, FS_READ_INPUT, 100)["maxBytes"] == 5

    @pytest.mark.parametrize("given", [{}, {"maxBytes": "lots"}, {"maxBytes": None}])
    def test_missing_or_odd_max_bytes_is_set(self, given: dict[str, Any]) -> None:
        assert capped_arguments(given, FS_READ_INPUT, 100)["maxBytes"] == 100

    def test_tool_without_max_bytes_is_untouched(self) -> None:
        args = {"text": "hi"}
        assert capped_arguments(args, {"type": "object"}, 100) == args
        assert capped_arguments(args, None, 100) == args

    def test_input_is_not_modified(self) -> None:
        args = {"maxBytes": 10_000}
        capped_arguments(args, FS_READ_INPUT, 100)
        assert args == {"maxBytes": 10_000}


class TestResultSize:
    """Result size is counted as the compact UTF-8 JSON that travels."""

    def test_counts_utf8_bytes(self) -> None:
        assert result_size({"t": "é"}) == len('{"t":"é"}'.encode())
