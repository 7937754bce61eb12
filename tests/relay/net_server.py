"""A synthetic network tool behind a bridge: ``net.fetch`` connects to its URL's host:port.

Nothing that ships reaches the network; this MCP server (stdio, newline-delimited JSON-RPC,
the 2025-11-25 handshake) exists so that tests can show the device's egress allow-list at
work: the call is refused before any connection is made, or it really connects.
"""

from __future__ import annotations

import json
import sys
import urllib.parse
from typing import Any

import trio

TOOL = {
    "name": "net.fetch",
    "description": "GET a URL and return its status line (test tool)",
    "inputSchema": {
        "type": "object",
        "properties": {"url": {"type": "string"}},
        "required": ["url"],
    },
    "_meta": {"dev.zerolatency/version": "1.0.0"},
}


async def fetch(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    stream = await trio.open_tcp_stream(parts.hostname or "", parts.port or 80)
    async with stream:
        await stream.send_all(b"GET / HTTP/1.0\r\nHost: test\r\n\r\n")
        data = await stream.receive_some(1024)
    return data.split(b"\r\n", 1)[0].decode("latin-1")


async def answer(out: trio.abc.SendStream, message: dict[str, Any]) -> None:
    await out.send_all(json.dumps({"jsonrpc": "2.0", **message}).encode() + b"\n")


async def main() -> None:
    stdin = trio.lowlevel.FdStream(sys.stdin.fileno())
    stdout = trio.lowlevel.FdStream(sys.stdout.fileno())
    buffer = b""
    while True:
        chunk = await stdin.receive_some(65536)
        if not chunk:
            return
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            message = json.loads(line)
            method, request_id = message.get("method"), message.get("id")
            if request_id is None:
                continue
            if method == "initialize":
                result: dict[str, Any] = {
                    "protocolVersion": "2025-11-25",
                    "capabilities": {"tools": {}},
                    "serverInfo": {"name": "net-test-server", "version": "0.1"},
                }
            elif method == "tools/list":
                result = {"tools": [TOOL]}
            elif method == "tools/call":
                url = message["params"]["arguments"]["url"]
                status = await fetch(url)
                result = {
                    "content": [{"type": "text", "text": status}],
                    "structuredContent": {"status": status},
                    "isError": False,
                }
            else:
                await answer(stdout, {"id": request_id, "error": {"code": -32601, "message": "no"}})
                continue
            await answer(stdout, {"id": request_id, "result": result})


if __name__ == "__main__":
    trio.run(main)
