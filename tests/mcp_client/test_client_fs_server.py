"""The client against our own fs.read server (a real subprocess), in both protocol eras."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import trio

from actors.errors import ToolError
from actors.mcp import (
    MODERN_VERSION,
    CallTool,
    Era,
    GetClientStatus,
    ListTools,
    McpClientConfig,
    call_tool,
)

from ._support import DEADLINE_S, fs_server_command, open_client

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class TestModernEra:
    """Negotiation picks 2026-07-28 with our server; list and call work."""

    async def test_discovery_and_catalog(self, fs_root: Path) -> None:
        async with open_client(McpClientConfig(command=fs_server_command(fs_root))) as ref:
            catalog = await ref.ask(ListTools())
            status = await ref.ask(GetClientStatus())
        assert catalog.era is Era.MODERN
        assert catalog.protocol_version == MODERN_VERSION
        assert catalog.server_info is not None
        assert catalog.server_info.name == "zl-mcp-fs"
        tool = catalog.get("fs.read")
        assert tool is not None
        assert tool.input_schema["type"] == "object"
        assert tool.output_schema is not None
        assert "sha256" in tool.output_schema["properties"]
        assert status.era is Era.MODERN

    async def test_call_returns_structured_content_and_passes_traceparent(
        self, fs_root: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.INFO, logger="actors.mcp.client")
        async with open_client(McpClientConfig(command=fs_server_command(fs_root))) as ref:
            request = CallTool(
                call_id="c1",
                tool="fs.read",
                arguments={"path": "hello.txt"},
                timeout_s=5.0,
                traceparent=TRACEPARENT,
            )
            result = await call_tool(ref, request)
            # The server logs each call (with the traceparent it received) on stderr,
            # which the client relays to its own log.
            with trio.fail_after(DEADLINE_S):
                while TRACEPARENT not in caplog.text:
                    await trio.sleep(0.02)
        assert result.call_id == "c1"
        assert result.is_error is False
        assert result.structured_content is not None
        assert result.structured_content["content"] == "hello from the root\n"
        assert result.content[0]["type"] == "text"
        assert "[zl-mcp-fs stderr]" in caplog.text

    async def test_tool_failure_is_a_result_not_an_error(self, fs_root: Path) -> None:
        async with open_client(McpClientConfig(command=fs_server_command(fs_root))) as ref:
            result = await call_tool(
                ref, CallTool(call_id="c1", tool="fs.read", arguments={"path": "../x"}, timeout_s=5)
            )
        assert result.is_error is True
        assert "fs.invalid_path" in result.content[0]["text"]

    async def test_unknown_tool_is_refused_before_the_server(self, fs_root: Path) -> None:
        async with open_client(McpClientConfig(command=fs_server_command(fs_root))) as ref:
            with pytest.raises(ToolError) as caught:
                await call_tool(ref, CallTool(call_id="c1", tool="fs.write", timeout_s=5))
        assert caught.value.code == "tool.not_found"

    async def test_fifty_concurrent_reads(self, fs_root: Path) -> None:
        results = []
        async with open_client(McpClientConfig(command=fs_server_command(fs_root))) as ref:

            async def one(i: int) -> None:
                request = CallTool(
                    call_id=f"c{i}", tool="fs.read", arguments={"path": "four_k.bin"}, timeout_s=10
                )
                results.append(await call_tool(ref, request))

            with trio.fail_after(DEADLINE_S):
                async with trio.open_nursery() as nursery:
                    for i in range(50):
                        nursery.start_soon(one, i)
            status = await ref.ask(GetClientStatus())
        assert len(results) == 50
        assert {r.call_id for r in results} == {f"c{i}" for i in range(50)}
        assert all(
            r.structured_content and r.structured_content["bytesReturned"] == 4096 for r in results
        )
        assert status.calls_started == 50
        assert status.calls_in_flight == 0


class TestLegacyEra:
    """Forced to 2025-11-25, the same server answers through initialize."""

    async def test_initialize_list_and_call(self, fs_root: Path) -> None:
        config = McpClientConfig(command=fs_server_command(fs_root), era=Era.LEGACY)
        async with open_client(config) as ref:
            catalog = await ref.ask(ListTools())
            result = await call_tool(
                ref,
                CallTool(
                    call_id="c1", tool="fs.read", arguments={"path": "hello.txt"}, timeout_s=5
                ),
            )
        assert catalog.era is Era.LEGACY
        assert catalog.protocol_version == "2025-11-25"
        assert catalog.names == ("fs.read",)
        assert result.structured_content is not None
        assert result.structured_content["content"] == "hello from the root\n"
