"""Starting and stopping the server process: ordered stop, no zombie, no leaked descriptor."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import attrs
import pytest
import trio

from actors.mcp import (
    CallTool,
    GetClientStatus,
    McpClientConfig,
    McpClientLimits,
    McpServerCommand,
    call_tool,
)
from zl_actors import SpawnError

from ._support import DEADLINE_S, LegacyServer, child_processes, open_client, open_fds

STOP = McpClientLimits(stdin_close_timeout_s=0.5, sigterm_timeout_s=0.5, sigkill_timeout_s=5.0)


class TestStop:
    """Stopping closes stdin, then SIGTERMs, then SIGKILLs; everything is reaped and closed."""

    @pytest.mark.parametrize(
        ("flags", "how"),
        [
            ((), "stdin-eof"),
            (("--ignore-eof",), "SIGTERM"),
            (("--ignore-eof", "--ignore-sigterm"), "SIGKILL"),
        ],
    )
    async def test_stop_path(
        self,
        legacy: LegacyServer,
        caplog: pytest.LogCaptureFixture,
        flags: tuple[str, ...],
        how: str,
    ) -> None:
        caplog.set_level(logging.INFO, logger="actors.mcp.client")
        fds_before = open_fds()
        config = McpClientConfig(command=legacy.command(*flags), limits=STOP)
        with trio.fail_after(DEADLINE_S):
            async with open_client(config) as ref:
                pid = (await ref.ask(GetClientStatus())).pid
                await call_tool(ref, CallTool(call_id="a", tool="echo", timeout_s=5))
                assert [p for p, _ in child_processes()] == [pid]
        assert f"(pid {pid}) stopped by {how}" in caplog.text
        assert legacy.events("eof"), "the server saw stdin close first"
        assert child_processes() == []  # reaped: not even a zombie
        assert open_fds() == fds_before

    async def test_stop_with_calls_in_flight(self, legacy: LegacyServer) -> None:
        fds_before = open_fds()
        with trio.fail_after(DEADLINE_S):
            async with (
                open_client(McpClientConfig(command=legacy.command())) as ref,
                trio.open_nursery() as nursery,
            ):
                for i in range(3):
                    request = CallTool(call_id=f"h{i}", tool="hang", timeout_s=60)
                    nursery.start_soon(ref.ask, request)
                await legacy.wait_for(lambda: len(legacy.received("tools/call")) == 3)
                nursery.cancel_scope.cancel()
        assert child_processes() == []
        assert open_fds() == fds_before


class TestStartFailures:
    """A server that cannot start, or does not answer in time, fails the start; nothing leaks."""

    async def test_missing_program(self, tmp_path: Path) -> None:
        command = McpServerCommand(argv=(str(tmp_path / "no-such-server"),))
        with pytest.raises(SpawnError):
            async with open_client(McpClientConfig(command=command), max_restarts=0):
                pass
        assert child_processes() == []

    async def test_startup_timeout(self, legacy: LegacyServer) -> None:
        fds_before = open_fds()
        config = McpClientConfig(
            command=legacy.command("--hang-startup"),
            limits=attrs.evolve(STOP, startup_timeout_s=0.5, probe_timeout_s=0.2),
        )
        with trio.fail_after(DEADLINE_S), pytest.raises(SpawnError) as caught:
            async with open_client(config, max_restarts=0):
                pass
        assert "did not start within 0.5 s" in str(caught.value)
        assert child_processes() == []
        assert open_fds() == fds_before

    async def test_server_that_exits_at_once(self, tmp_path: Path) -> None:
        true = shutil.which("true")
        assert true is not None
        with pytest.raises(SpawnError) as caught:
            async with open_client(
                McpClientConfig(command=McpServerCommand(argv=(true,))), max_restarts=0
            ):
                pass
        assert "ServerUnavailable" in str(caught.value)
        assert "mcp server true" in str(caught.value)
        assert child_processes() == []
