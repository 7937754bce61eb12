"""An MCP stdio server with ``fs.read`` that misbehaves on request, for ``bench.chaos``.

``python -m bench._chaos_mcp`` speaks the 2025-11-25 era (``initialize``). The path asked
for picks the behaviour, so one server serves every scenario:

* ``crash``: the process exits in the middle of the call;
* ``hang``: never answers (until cancelled);
* ``garbage``: writes lines that are not JSON-RPC, then an answer without a result;
* ``slow``: answers after ``SLOW_S`` seconds (long enough to kill something mid-call);
* anything else: a well-formed result whose content is the path.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from typing import Any, Final

import trio

SLOW_S: Final = 30.0
FS_READ: Final = {
    "name": "fs.read",
    "description": "fs.read for chaos runs",
    "inputSchema": {"type": "object"},
    "_meta": {"dev.zerolatency/version": "1.0.0"},
}


def result_for(text: str) -> dict[str, Any]:
    data = text.encode()
    structured = {
        "content": text,
        "encoding": "utf-8",
        "bytesReturned": len(data),
        "fileSize": len(data),
        "truncated": False,
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    return {
        "content": [{"type": "text", "text": json.dumps(structured)}],
        "structuredContent": structured,
        "isError": False,
    }


class ChaosServer:
    def __init__(self) -> None:
        self.out = trio.lowlevel.FdStream(os.dup(1))
        self.lock = trio.Lock()

    async def write(self, data: bytes) -> None:
        async with self.lock:
            await self.out.send_all(data)

    async def send(self, message: dict[str, Any]) -> None:
        await self.write(json.dumps({"jsonrpc": "2.0", **message}).encode() + b"\n")

    async def call(self, request: dict[str, Any]) -> None:
        path = str(request["params"].get("arguments", {}).get("path", ""))
        if path == "crash":
            os._exit(3)
        if path == "hang":
            await trio.sleep_forever()
        if path == "garbage":
            await self.write(b"this is not json\n")
            await self.write(json.dumps({"jsonrpc": "2.0", "id": request["id"]}).encode() + b"\n")
            return
        if path == "slow":
            await trio.sleep(SLOW_S)
        await self.send({"id": request["id"], "result": result_for(f"contents of {path}")})

    async def serve(self) -> None:
        stdin = trio.lowlevel.FdStream(os.dup(0))
        buffer = b""
        async with trio.open_nursery() as nursery:
            while True:
                chunk = await stdin.receive_some(65536)
                if not chunk:
                    return
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    message = json.loads(line)
                    if "id" not in message:
                        continue  # notifications (cancelled, initialized) need no answer
                    method = message.get("method")
                    if method == "initialize":
                        result = {
                            "protocolVersion": "2025-11-25",
                            "capabilities": {"tools": {}},
                            "serverInfo": {"name": "chaos", "version": "0.0.1"},
                        }
                        await self.send({"id": message["id"], "result": result})
                    elif method == "tools/list":
                        await self.send({"id": message["id"], "result": {"tools": [FS_READ]}})
                    elif method == "tools/call":
                        nursery.start_soon(self.call, message)
                    else:
                        error = {"code": -32601, "message": str(method)}
                        await self.send({"id": message["id"], "error": error})


def main() -> None:
    try:
        trio.run(ChaosServer().serve)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
