"""The client's pure logic: request envelopes, reading server answers, config checks."""

from __future__ import annotations

import pytest

from actors.errors import ToolError
from actors.mcp import (
    LEGACY_VERSION,
    MODERN_VERSION,
    PROTOCOL_VERSION_META_KEY,
    Era,
    ErrorObject,
    HandshakeFailed,
    Implementation,
    McpClientLimits,
    McpServerCommand,
)
from actors.mcp._client_wire import (
    call_error,
    printable,
    read_call_result,
    read_discover,
    read_initialize,
    read_tools_page,
    request_params,
)

ME = Implementation(name="me", version="1")


class TestEnvelopes:
    """Modern requests carry the version in _meta; legacy ones only the traceparent."""

    def test_modern(self) -> None:
        params = request_params(Era.MODERN, ME, {"name": "t"}, traceparent="tp")
        assert params is not None
        meta = params["_meta"]
        assert meta[PROTOCOL_VERSION_META_KEY] == MODERN_VERSION
        assert meta["io.modelcontextprotocol/clientCapabilities"] == {}
        assert meta["traceparent"] == "tp"
        assert params["name"] == "t"

    def test_legacy(self) -> None:
        assert request_params(Era.LEGACY, ME) is None
        assert request_params(Era.LEGACY, ME, {"a": 1}, traceparent="tp") == {
            "a": 1,
            "_meta": {"traceparent": "tp"},
        }


class TestHandshakeAnswers:
    """Discover and initialize answers are checked for a version we speak."""

    def test_discover(self) -> None:
        info = read_discover(
            {
                "supportedVersions": [MODERN_VERSION],
                "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "s", "version": "2"}},
            }
        )
        assert info == Implementation(name="s", version="2")
        with pytest.raises(HandshakeFailed):
            read_discover({"supportedVersions": ["2099-01-01"]})

    def test_initialize(self) -> None:
        assert read_initialize(
            {"protocolVersion": LEGACY_VERSION, "serverInfo": {"name": "s"}}
        ) == (
            LEGACY_VERSION,
            Implementation(name="s", version=""),
        )
        assert read_initialize({"protocolVersion": "2025-06-18"})[0] == "2025-06-18"
        with pytest.raises(HandshakeFailed):
            read_initialize({"protocolVersion": "2024-01-01"})


class TestToolsPage:
    """Bad descriptors are skipped; the cursor is read."""

    def test_page(self) -> None:
        tools, cursor = read_tools_page(
            {
                "tools": [
                    {
                        "name": "ok",
                        "inputSchema": {"type": "object"},
                        "outputSchema": {"type": "object"},
                    },
                    {"name": "no-schema"},
                    {"inputSchema": {}},
                    "junk",
                ],
                "nextCursor": "abc",
            }
        )
        assert [t.name for t in tools] == ["ok"]
        assert tools[0].output_schema == {"type": "object"}
        assert cursor == "abc"
        assert read_tools_page({"tools": [], "nextCursor": ""})[1] is None
        with pytest.raises(HandshakeFailed):
            read_tools_page({"tools": "nope"})


class TestCallResult:
    """Result shape errors are tool.failed; JSON-RPC errors map to catalog codes."""

    def test_ok(self) -> None:
        result = read_call_result("c", "t", {"content": [], "structuredContent": {"a": 1}}, 0.1)
        assert result.structured_content == {"a": 1}
        assert result.is_error is False

    @pytest.mark.parametrize(
        "raw",
        [{"content": "x"}, {"content": [1]}, {"structuredContent": []}, {"isError": "yes"}],
    )
    def test_malformed(self, raw: dict[str, object]) -> None:
        with pytest.raises(ToolError) as caught:
            read_call_result("c", "t", raw, 0.1)
        assert caught.value.code == "tool.failed"

    def test_rpc_errors(self) -> None:
        assert call_error("t", ErrorObject(code=-32602, message="bad")).code == "tool.invalid_args"
        assert call_error("t", ErrorObject(code=-32603, message="bad")).code == "tool.failed"


class TestConfigAndLogging:
    """Config validation and log-safe text."""

    def test_command(self) -> None:
        command = McpServerCommand(argv=["/usr/bin/srv", "a"], env={"X": "1"})
        assert command.name == "srv"
        environment = command.environment()
        assert environment is not None
        assert environment["X"] == "1"
        with pytest.raises(TypeError):
            McpServerCommand(argv="/usr/bin/srv")
        with pytest.raises(ValueError, match="argv"):
            McpServerCommand(argv=[])

    def test_limits(self) -> None:
        assert McpClientLimits().stop_budget_s == pytest.approx(3.0)
        with pytest.raises(ValueError, match="max_concurrent_calls"):
            McpClientLimits(max_concurrent_calls=0)

    def test_printable(self) -> None:
        assert printable(b"a\x1b[31mb\x00", 100) == "a\\x1b[31mb\\x00"
        assert printable(b"abcdef", 3) == "abc…"
