"""Interop: the official ``mcp`` Python SDK client (run under trio) lists and calls our fs.read."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import pytest
import trio
from mcp import Client
from mcp.client.stdio import StdioServerParameters

REPO = Path(__file__).resolve().parents[2]
INSIDE = "inside the root\n"
SDK_DEADLINE_S = 30.0


def server_params(root: Path) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "actors.mcp.fs_server", str(root)],
        cwd=str(REPO),
        env={
            "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
        },
    )


class TestSdkClient:
    """The SDK negotiates each era with our server and accepts its structuredContent."""

    @pytest.mark.parametrize(
        ("mode", "version"),
        [("legacy", "2025-11-25"), ("auto", "2026-07-28"), ("2026-07-28", "2026-07-28")],
    )
    async def test_list_and_call(self, tree: Path, mode: str, version: str) -> None:
        with trio.fail_after(SDK_DEADLINE_S):
            async with Client(server_params(tree), mode=mode) as client:
                assert client.protocol_version == version
                listed = await client.list_tools()
                (tool,) = listed.tools
                assert tool.name == "fs.read"
                assert tool.output_schema is not None
                assert "path" in tool.input_schema["properties"]
                # The SDK validates structuredContent against outputSchema before returning it.
                result = await client.call_tool("fs.read", {"path": "hello.txt"})
                assert result.is_error is False
                assert result.structured_content is not None
                assert result.structured_content["content"] == INSIDE
                assert (
                    result.structured_content["sha256"]
                    == hashlib.sha256(INSIDE.encode()).hexdigest()
                )
                refused = await client.call_tool("fs.read", {"path": "link_out"})
                assert refused.is_error is True
                text = refused.content[0]
                assert getattr(text, "text", "").startswith("fs.outside_roots: ")
