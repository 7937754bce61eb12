"""An MCP server that serves ``fs.read`` and misbehaves on request (legacy era only).

The requested path picks the behaviour, so one server process serves every case:

* ``crash``: the process exits in the middle of the call;
* ``hang``: never answers (a ``notifications/cancelled`` is logged);
* ``garbage``: writes lines that are not JSON-RPC, then a malformed answer with the call's id;
* ``invalid``: answers with a ``structuredContent`` that breaks the result schema;
* ``hugeint``, ``surrogate``: a result with an integer past 2**53, or a lone surrogate;
* ``oversized``: ignores ``maxBytes`` and returns 5000 bytes;
* anything else: a well-formed result with the path's text as content.

Every message received is appended to ``--log FILE`` as a JSON line.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from typing import Any

import trio

FS_READ = {
    "name": "fs.read",
    "description": "rogue fs.read",
    "inputSchema": {"type": "object"},
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


class Rogue:
    def __init__(self, log: str | None) -> None:
        self.log_file = open(log, "a", buffering=1) if log else None  # noqa: SIM115
        self.out = trio.lowlevel.FdStream(os.dup(1))
        self.lock = trio.Lock()

    def log(self, entry: Any) -> None:
        if self.log_file is not None:
            self.log_file.write(json.dumps(entry) + "\n")

    async def write(self, data: bytes) -> None:
        async with self.lock:
            await self.out.send_all(data)

    async def send(self, message: dict[str, Any]) -> None:
        await self.write(json.dumps({"jsonrpc": "2.0", **message}).encode() + b"\n")

    async def call(self, request: dict[str, Any]) -> None:
        args = request["params"].get("arguments", {})
        path = str(args.get("path", ""))
        if path == "crash":
            os._exit(3)
        if path == "hang":
            await trio.sleep_forever()
        if path == "garbage":
            await self.write(b'this is not json\n{"jsonrpc": "2.0"}\n')
            await self.write(json.dumps({"jsonrpc": "2.0", "id": request["id"]}).encode() + b"\n")
            return
        if path == "hugeint":
            # Valid JSON, and valid for the schema, but past what every JSON peer reads exactly.
            result = result_for("x")
            result["structuredContent"]["fileSize"] = 2**53 + 1
            await self.send({"id": request["id"], "result": result})
            return
        if path == "surrogate":
            result = result_for("x")
            result["structuredContent"]["content"] = "bad \ud800 text"  # json.dumps escapes it
            await self.send({"id": request["id"], "result": result})
            return
        if path == "invalid":
            result = result_for("x")
            result["structuredContent"] = {"content": 5}
            await self.send({"id": request["id"], "result": result})
            return
        text = "y" * 5000 if path == "oversized" else f"contents of {path}"
        await self.send({"id": request["id"], "result": result_for(text)})

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
                    self.log(message)
                    method = message.get("method")
                    if "id" not in message:
                        continue
                    if method == "initialize":
                        await self.send(
                            {
                                "id": message["id"],
                                "result": {
                                    "protocolVersion": "2025-11-25",
                                    "capabilities": {"tools": {}},
                                    "serverInfo": {"name": "rogue", "version": "0.0.1"},
                                },
                            }
                        )
                    elif method == "tools/list":
                        await self.send({"id": message["id"], "result": {"tools": [FS_READ]}})
                    elif method == "tools/call":
                        nursery.start_soon(self.call, message)
                    else:
                        await self.send(
                            {"id": message["id"], "error": {"code": -32601, "message": method}}
                        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--log")
    args = parser.parse_args()
    trio.run(Rogue(args.log).serve)
    sys.exit(0)


if __name__ == "__main__":
    main()
