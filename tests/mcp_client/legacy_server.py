"""A small MCP server for the client tests: legacy era (2025-11-25) only, misbehaving on demand.

It answers ``server/discover`` with -32601, as real legacy servers do, and records every
message it receives (and what happened to each call) as JSON lines in ``--log FILE``, so
tests can see what actually arrived. Tools:

* ``echo``: returns its arguments as structuredContent.
* ``sleep`` (``seconds``): answers after sleeping; a ``notifications/cancelled`` ends it
  without an answer and logs ``{"event": "cancelled", "id": ...}``.
* ``hang``: never answers and ignores cancellation.
* ``crash``: the process exits with status 3 in the middle of the call.
* ``garbage``: writes non-JSON lines, a JSON non-message and an answer to an unknown id,
  then the real answer.
* ``bad_response``: answers with a malformed response that carries the call's id.
* ``is_error``: a tool-level failure (``isError: true``).
* ``rpc_error``: a JSON-RPC error answer (-32603).

Run: ``python legacy_server.py [--log FILE] [--ignore-eof] [--ignore-sigterm]
[--extra-tools N --page-size K] [--hang-startup] [--stderr-lines N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from typing import Any

import trio

TOOLS = ["echo", "sleep", "hang", "crash", "garbage", "bad_response", "is_error", "rpc_error"]
SCHEMA = {"type": "object"}


class Server:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.log_file = open(args.log, "a", buffering=1) if args.log else None  # noqa: SIM115
        self.stdout = trio.lowlevel.FdStream(os.dup(1))
        self.lock = trio.Lock()
        self.scopes: dict[Any, trio.CancelScope] = {}
        names = TOOLS + [f"extra{i}" for i in range(args.extra_tools)]
        self.tools = [
            {"name": n, "description": f"test tool {n}", "inputSchema": SCHEMA} for n in names
        ]

    def log(self, entry: dict[str, Any]) -> None:
        if self.log_file is not None:
            self.log_file.write(json.dumps(entry) + "\n")

    async def write_raw(self, data: bytes) -> None:
        async with self.lock:
            await self.stdout.send_all(data)

    async def send(self, message: dict[str, Any]) -> None:
        message["jsonrpc"] = "2.0"
        await self.write_raw(json.dumps(message).encode() + b"\n")

    async def answer(self, request_id: Any, result: dict[str, Any]) -> None:
        await self.send({"id": request_id, "result": result})

    async def error(self, request_id: Any, code: int, text: str) -> None:
        await self.send({"id": request_id, "error": {"code": code, "message": text}})

    async def on_message(self, message: dict[str, Any], nursery: trio.Nursery) -> None:
        self.log({"event": "received", "message": message})
        method = message.get("method")
        request_id = message.get("id")
        params = message.get("params") or {}
        if "id" not in message:
            if method == "notifications/cancelled":
                scope = self.scopes.get(params.get("requestId"))
                if scope is not None:
                    scope.cancel()
            return
        if method == "initialize":
            await self.answer(
                request_id,
                {
                    "protocolVersion": "2025-11-25",
                    "capabilities": {"tools": {}},
                    "serverInfo": {"name": "legacy-test-server", "version": "0.1"},
                },
            )
        elif method == "tools/list":
            await self.list_tools(request_id, params)
        elif method == "tools/call":
            scope = trio.CancelScope()
            self.scopes[request_id] = scope
            nursery.start_soon(self.call, request_id, params, scope)
        elif method == "ping":
            await self.answer(request_id, {})
        else:
            await self.error(request_id, -32601, "Method not found")

    async def list_tools(self, request_id: Any, params: dict[str, Any]) -> None:
        size = self.args.page_size or len(self.tools)
        start = int(params.get("cursor") or 0)
        result: dict[str, Any] = {"tools": self.tools[start : start + size]}
        if start + size < len(self.tools):
            result["nextCursor"] = str(start + size)
        await self.answer(request_id, result)

    async def call(self, request_id: Any, params: dict[str, Any], scope: trio.CancelScope) -> None:
        name = params.get("name")
        arguments = params.get("arguments") or {}
        with scope:
            await self.run_tool(request_id, name, arguments, params.get("_meta"))
        if scope.cancelled_caught:
            self.log({"event": "cancelled", "id": request_id})
        self.scopes.pop(request_id, None)

    async def run_tool(self, request_id: Any, name: Any, arguments: Any, meta: Any) -> None:
        text = {"type": "text", "text": "ok"}
        if name == "echo":
            structured = {"arguments": arguments, "meta": meta}
            await self.answer(
                request_id, {"content": [text], "structuredContent": structured, "isError": False}
            )
        elif name == "sleep":
            await trio.sleep(float(arguments.get("seconds", 1)))
            await self.answer(request_id, {"content": [text], "isError": False})
        elif name == "hang":
            with trio.CancelScope(shield=True):
                await trio.sleep_forever()
        elif name == "crash":
            self.log({"event": "crashing", "id": request_id})
            os._exit(3)
        elif name == "garbage":
            await self.write_raw(b"this is not json\n\x00\xff\xfe binary junk\n[1,2,3]\n")
            await self.send({"id": 999_999, "result": {}})
            await self.answer(request_id, {"content": [text], "isError": False})
        elif name == "bad_response":
            await self.write_raw(
                json.dumps({"jsonrpc": "2.0", "id": request_id, "result": "not an object"}).encode()
                + b"\n"
            )
        elif name == "is_error":
            await self.answer(
                request_id, {"content": [{"type": "text", "text": "it failed"}], "isError": True}
            )
        elif name == "rpc_error":
            await self.error(request_id, -32603, "internal trouble")
        elif isinstance(name, str) and name.startswith("extra"):
            await self.answer(request_id, {"content": [text], "isError": False})
        else:
            await self.error(request_id, -32602, f"Unknown tool: {name}")

    async def serve(self) -> None:
        for i in range(self.args.stderr_lines):
            print(f"stderr line {i}", file=sys.stderr, flush=True)
        if self.args.hang_startup:
            await trio.sleep_forever()
        stdin = trio.lowlevel.FdStream(os.dup(0))
        buffer = b""
        async with trio.open_nursery() as nursery:
            while True:
                data = await stdin.receive_some(65536)
                if not data:
                    break
                buffer += data
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        await self.on_message(json.loads(line), nursery)
            self.log({"event": "eof"})
            if self.args.ignore_eof:
                await trio.sleep_forever()
            nursery.cancel_scope.cancel()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--log")
    parser.add_argument("--ignore-eof", action="store_true")
    parser.add_argument("--ignore-sigterm", action="store_true")
    parser.add_argument("--hang-startup", action="store_true")
    parser.add_argument("--extra-tools", type=int, default=0)
    parser.add_argument("--page-size", type=int, default=0)
    parser.add_argument("--stderr-lines", type=int, default=0)
    args = parser.parse_args()
    if args.ignore_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    trio.run(Server(args).serve)


if __name__ == "__main__":
    main()
