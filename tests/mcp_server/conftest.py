"""Shared fixtures for the fs.read MCP server tests: a root tree with things to refuse."""

from __future__ import annotations

import ctypes
import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from actors.mcp import LineSplitter

REPO = Path(__file__).resolve().parents[2]

SECRET = "TOP-SECRET outside the root\n"
INSIDE = "inside the root\n"


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[Path]:
    """``tmp_path/root`` (served) beside ``tmp_path/outside`` (never served).

    root/hello.txt, root/sub/inner.txt, root/big.bin (3000 bytes), root/fifo, root/sock,
    root/link_in -> hello.txt, root/link_out -> ../outside/secret.txt,
    root/abs_out -> /…/outside/secret.txt, root/dir_out -> ../outside.
    """
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET)
    (root / "hello.txt").write_text(INSIDE)
    (root / "sub" / "inner.txt").write_text("inner\n")
    (root / "big.bin").write_bytes(bytes(range(256)) * 11 + bytes(184))
    os.mkfifo(root / "fifo")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(root / "sock"))
    (root / "link_in").symlink_to("hello.txt")
    (root / "sub" / "link_up").symlink_to("../hello.txt")
    (root / "link_out").symlink_to("../outside/secret.txt")
    (root / "abs_out").symlink_to(outside / "secret.txt")
    (root / "dir_out").symlink_to("../outside")
    try:
        yield root
    finally:
        server.close()


SERVER_DEADLINE_S = 15.0
"""Generous bound on any one exchange with the server process (stops hangs, not a timing check)."""
MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
}


class ServerProcess:
    """The real server as a subprocess, driven line by line over its stdin/stdout."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.stderr = bytearray()
        self._splitter = LineSplitter()
        self._lines: list[bytes] = []

    async def send_raw(self, data: bytes) -> None:
        assert self.process.stdin is not None
        with trio.fail_after(SERVER_DEADLINE_S):
            await self.process.stdin.send_all(data)

    async def send(self, message: dict[str, Any]) -> None:
        await self.send_raw(json.dumps(message).encode() + b"\n")

    async def receive(self) -> dict[str, Any]:
        """The next line on stdout, which must be one JSON-RPC message."""
        assert self.process.stdout is not None
        with trio.fail_after(SERVER_DEADLINE_S):
            while not self._lines:
                data = await self.process.stdout.receive_some(65536)
                assert data, "server closed stdout"
                for item in self._splitter.feed(data):
                    assert isinstance(item, bytes)
                    self._lines.append(item)
        line = self._lines.pop(0)
        message: dict[str, Any] = json.loads(line)
        assert message["jsonrpc"] == "2.0"
        return message

    async def call(
        self, method: str, params: dict[str, Any] | None = None, id: int | str = 1
    ) -> dict[str, Any]:
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": id, "method": method}
        if params is not None:
            message["params"] = params
        await self.send(message)
        answer = await self.receive()
        assert answer["id"] == id
        return answer

    async def initialize(self) -> None:
        answer = await self.call(
            "initialize",
            {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"},
            },
            id="init",
        )
        assert answer["result"]["protocolVersion"] == "2025-11-25"
        await self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    async def close(self) -> int:
        """Close stdin (the stdio shutdown signal) and wait for the exit status."""
        assert self.process.stdin is not None
        await self.process.stdin.aclose()
        with trio.fail_after(SERVER_DEADLINE_S):
            return await self.process.wait()


_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE = 1
_CAP_DAC_READ_SEARCH = 2


def _drop_dac_capabilities() -> None:
    # Runs in the child before exec: a root process keeps only its bounding set across exec.
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        if libc.prctl(_PR_CAPBSET_DROP, capability, 0, 0, 0) != 0 and os.getuid() == 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def server_command(*roots: str) -> list[str]:
    return [sys.executable, "-m", "actors.mcp.fs_server", *roots]


@asynccontextmanager
async def open_server(*roots: str, drop_dac: bool = False) -> AsyncIterator[ServerProcess]:
    """Start ``python -m actors.mcp.fs_server ROOT...``; kill it on the way out.

    ``drop_dac`` removes CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the child's
    capability bounding set, so even when the tests run as root the server meets file
    modes the way an ordinary user does.
    """
    process = await trio.lowlevel.open_process(
        server_command(*roots),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=str(REPO),
        preexec_fn=_drop_dac_capabilities if drop_dac else None,
    )
    server = ServerProcess(process)

    async def drain_stderr() -> None:
        assert process.stderr is not None
        while data := await process.stderr.receive_some(65536):
            server.stderr += data

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(drain_stderr)
            try:
                yield server
            finally:
                if process.returncode is None:
                    process.kill()
                with trio.move_on_after(SERVER_DEADLINE_S):
                    await process.wait()
    finally:
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream is not None:
                await stream.aclose()


@pytest.fixture
def start_server() -> Any:
    """``open_server`` for test modules (they cannot import this conftest)."""
    return open_server
