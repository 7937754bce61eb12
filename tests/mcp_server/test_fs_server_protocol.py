"""The real server process over stdio: both eras, bad input, concurrency, cancellation, logs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import trio

MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
}
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
INSIDE = "inside the root\n"


def call_params(arguments: dict[str, Any], meta: dict[str, Any] | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {"name": "fs.read", "arguments": arguments}
    if meta is not None:
        params["_meta"] = meta
    return params


class TestLegacyEra:
    """2025-11-25: handshake, tools/list and tools/call; requests before initialize refused."""

    async def test_request_before_initialize(self, tree: Path, start_server: Any) -> None:
        async with start_server(str(tree)) as server:
            answer = await server.call("tools/list")
            assert answer["error"]["code"] == -32600
            assert "initialize" in answer["error"]["message"]
            assert (await server.call("ping", id=2))["result"] == {}
            await server.initialize()
            assert (await server.call("tools/list", id=3))["result"]["tools"][0][
                "name"
            ] == "fs.read"

    async def test_list_and_call(self, tree: Path, start_server: Any) -> None:
        async with start_server(str(tree)) as server:
            await server.initialize()
            tools = (await server.call("tools/list"))["result"]["tools"]
            assert [t["name"] for t in tools] == ["fs.read"]
            assert tools[0]["inputSchema"]["properties"]["path"]["type"] == "string"
            assert "sha256" in tools[0]["outputSchema"]["required"]
            result = (await server.call("tools/call", call_params({"path": "hello.txt"}), id=2))[
                "result"
            ]
            assert result["isError"] is False
            assert result["structuredContent"]["content"] == INSIDE
            assert json.loads(result["content"][0]["text"]) == result["structuredContent"]
            assert "resultType" not in result
            assert await server.close() == 0


class TestModernEra:
    """2026-07-28: no handshake, server/discover, _meta on every request, shaped results."""

    async def test_discover_list_call(self, tree: Path, start_server: Any) -> None:
        async with start_server(str(tree)) as server:
            found = (await server.call("server/discover", {"_meta": MODERN_META}))["result"]
            assert found["supportedVersions"] == ["2026-07-28", "2025-11-25"]
            assert found["capabilities"] == {"tools": {"listChanged": False}}
            assert found["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "zl-mcp-fs"
            assert found["resultType"] == "complete"
            listed = (await server.call("tools/list", {"_meta": MODERN_META}, id=2))["result"]
            assert listed["resultType"] == "complete"
            assert listed["ttlMs"] > 0
            assert listed["cacheScope"] in ("public", "private")
            called = await server.call(
                "tools/call", call_params({"path": "hello.txt"}, MODERN_META), id=3
            )
            assert called["result"]["resultType"] == "complete"
            assert called["result"]["structuredContent"]["content"] == INSIDE

    async def test_version_and_meta_errors(self, tree: Path, start_server: Any) -> None:
        async with start_server(str(tree)) as server:
            bad = dict(MODERN_META, **{"io.modelcontextprotocol/protocolVersion": "1900-01-01"})
            answer = await server.call("server/discover", {"_meta": bad})
            assert answer["error"]["code"] == -32022
            assert answer["error"]["data"]["supported"] == ["2026-07-28", "2025-11-25"]
            await server.call("tools/list", {"_meta": MODERN_META}, id=2)
            answer = await server.call("tools/list", {}, id=3)
            assert answer["error"]["code"] == -32602
            answer = await server.call(
                "initialize", {"protocolVersion": "2025-11-25", "capabilities": {}}, id=4
            )
            assert answer["error"]["code"] == -32022


class TestBadInput:
    """Bad lines get -32700/-32600, unknown tools -32602, tool failures isError; it goes on."""

    async def test_garbage_then_service(self, tree: Path, start_server: Any) -> None:
        async with start_server(str(tree)) as server:
            await server.send_raw(b"not json\n")
            assert (await server.receive())["error"]["code"] == -32700
            await server.send_raw(b"\xff\xfe\xfd\n")
            assert (await server.receive())["error"]["code"] == -32700
            await server.send_raw(b'[{"jsonrpc":"2.0","id":1,"method":"ping"}]\n')
            assert (await server.receive())["error"]["code"] == -32600
            await server.send_raw(b'{"jsonrpc":"2.0","id":9,"method":"tools/list","params":[]}\n')
            answer = await server.receive()
            assert (answer["id"], answer["error"]["code"]) == (9, -32600)
            await server.send_raw(b"x" * (1024 * 1024 + 10) + b"\n")
            assert "too large" in (await server.receive())["error"]["message"]
            answer = await server.call("tools/list", {"_meta": MODERN_META})
            assert answer["result"]["tools"][0]["name"] == "fs.read"

    async def test_unknown_tool_and_tool_errors(self, tree: Path, start_server: Any) -> None:
        async with start_server(str(tree)) as server:
            await server.initialize()
            answer = await server.call("tools/call", {"name": "fs.write", "arguments": {}})
            assert answer["error"] == {"code": -32602, "message": "Unknown tool: fs.write"}
            answer = await server.call("nope/nope", id=2)
            assert answer["error"]["code"] == -32601
            cases = {
                "../outside/secret.txt": "fs.invalid_path",
                "link_out": "fs.outside_roots",
                "fifo": "fs.not_a_file",
                "sock": "fs.not_a_file",
                "sub": "fs.not_a_file",
                "missing.txt": "fs.not_found",
            }
            for index, (path, code) in enumerate(cases.items()):
                result = (
                    await server.call("tools/call", call_params({"path": path}), id=10 + index)
                )["result"]
                assert result["isError"] is True
                assert result["content"][0]["text"].startswith(f"{code}: ")
                assert result["_meta"]["dev.zerolatency/error"]["code"] == code
            result = (await server.call("tools/call", call_params({"path": "a", "bad": 1}), id=30))[
                "result"
            ]
            assert result["_meta"]["dev.zerolatency/error"]["code"] == "tool.invalid_args"


class TestPermissions:
    """A file the server's user may not read is a typed fs.permission_denied result."""

    @pytest.fixture
    def locked(self, tmp_path: Path) -> Path:
        (tmp_path / "open.txt").write_text("ok\n")
        (tmp_path / "closed.txt").write_text("no\n")
        (tmp_path / "closed.txt").chmod(0)
        return tmp_path

    async def test_permission_denied(self, locked: Path, start_server: Any) -> None:
        # drop_dac: the server meets file modes as an ordinary user would, even under root.
        async with start_server(str(locked), drop_dac=True) as server:
            await server.initialize()
            result = (await server.call("tools/call", call_params({"path": "closed.txt"})))[
                "result"
            ]
            assert result["_meta"]["dev.zerolatency/error"]["code"] == "fs.permission_denied"
            assert "permission denied" in result["content"][0]["text"]
            result = (await server.call("tools/call", call_params({"path": "open.txt"}), id=2))[
                "result"
            ]
            assert result["structuredContent"]["content"] == "ok\n"


class TestConcurrency:
    """Many calls in flight at once all get their own, correct answer."""

    async def test_fifty_interleaved_calls(self, tree: Path, start_server: Any) -> None:
        data = (tree / "big.bin").read_bytes()
        async with start_server(str(tree)) as server:
            await server.initialize()
            for i in range(50):
                args = {"path": "big.bin", "offset": i * 50, "maxBytes": 100, "encoding": "base64"}
                await server.send(
                    {"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": call_params(args)}
                )
            answers = {}
            for _ in range(50):
                answer = await server.receive()
                answers[answer["id"]] = answer["result"]["structuredContent"]
            assert sorted(answers) == list(range(50))
            for i, result in answers.items():
                assert result["sha256"] == hashlib.sha256(data[i * 50 : i * 50 + 100]).hexdigest()


class TestCancellation:
    """notifications/cancelled stops the call: no result is ever sent for it."""

    async def test_cancelled_call_sends_nothing(self, tree: Path, start_server: Any) -> None:
        async with start_server(str(tree)) as server:
            await server.initialize()
            call = {
                "jsonrpc": "2.0",
                "id": "doomed",
                "method": "tools/call",
                "params": call_params({"path": "big.bin", "encoding": "base64"}),
            }
            cancel = {
                "jsonrpc": "2.0",
                "method": "notifications/cancelled",
                "params": {"requestId": "doomed", "reason": "test"},
            }
            # One write: the cancel is read right after the call is registered, before it runs.
            await server.send_raw((json.dumps(call) + "\n" + json.dumps(cancel) + "\n").encode())
            answer = await server.call("ping", id="after")
            assert answer["result"] == {}
            # A later call still works; the cancelled id never answered (ids checked in call()).
            result = (
                await server.call("tools/call", call_params({"path": "hello.txt"}), id="next")
            )["result"]
            assert result["structuredContent"]["content"] == INSIDE
            assert await server.close() == 0
            assert b"cancel id='doomed'" in server.stderr
            assert b"outcome=cancelled" in server.stderr

    async def test_cancel_for_unknown_id_is_ignored(self, tree: Path, start_server: Any) -> None:
        async with start_server(str(tree)) as server:
            await server.initialize()
            await server.send(
                {
                    "jsonrpc": "2.0",
                    "method": "notifications/cancelled",
                    "params": {"requestId": 404},
                }
            )
            await server.send(
                {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": "junk"}
            )
            assert (await server.call("ping"))["result"] == {}


class TestLogging:
    """traceparent from _meta reaches the log on stderr; stdout holds only protocol lines."""

    async def test_traceparent_logged_on_stderr(self, tree: Path, start_server: Any) -> None:
        async with start_server(str(tree)) as server:
            meta = dict(MODERN_META, traceparent=TRACEPARENT)
            await server.call("tools/call", call_params({"path": "hello.txt"}, meta))
            assert await server.close() == 0
            assert TRACEPARENT.encode() in server.stderr
            assert b"outcome=ok" in server.stderr

    async def test_stdin_eof_exits_cleanly(self, tree: Path, start_server: Any) -> None:
        async with start_server(str(tree)) as server:
            assert await server.close() == 0

    async def test_bad_root_is_a_clear_error(self, tree: Path, start_server: Any) -> None:
        async with start_server(str(tree / "hello.txt")) as server:
            with trio.fail_after(15):
                assert await server.process.wait() == 2
        assert b"root is not a directory" in server.stderr
