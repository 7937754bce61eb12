"""Helpers for the MCP client tests: real server subprocesses under a real actor system."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from actors.mcp import McpClientConfig, McpClientLimits, McpServerCommand, mcp_client_spec
from actors.mcp.messages import McpClientMessage
from zl_actors import ActorRef, Backoff, RestartIntensity, SupervisorSpec, open_actor_system

REPO = Path(__file__).resolve().parents[2]
LEGACY_SERVER = Path(__file__).with_name("legacy_server.py")
DEADLINE_S = 20.0
"""Generous bound on any one step (stops hangs; not a timing check)."""
FAST_STOP = McpClientLimits(stdin_close_timeout_s=0.5, sigterm_timeout_s=0.5, sigkill_timeout_s=2.0)


def fs_server_command(*roots: Path) -> McpServerCommand:
    return McpServerCommand(
        argv=(sys.executable, "-m", "actors.mcp.fs_server", *map(str, roots)),
        cwd=str(REPO),
        name="zl-mcp-fs",
    )


class LegacyServer:
    """Command line and received-message log of ``legacy_server.py``."""

    def __init__(self, log: Path) -> None:
        self.log = log

    def command(self, *flags: str) -> McpServerCommand:
        return McpServerCommand(
            argv=(sys.executable, str(LEGACY_SERVER), "--log", str(self.log), *flags),
            name="legacy",
        )

    def entries(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line]

    def received(self, method: str) -> list[dict[str, Any]]:
        return [
            e["message"]
            for e in self.entries()
            if e["event"] == "received" and e["message"].get("method") == method
        ]

    def events(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.entries() if e["event"] == event]

    async def wait_for(self, predicate: Callable[[], Any]) -> Any:
        """Poll the log until ``predicate()`` is truthy (bounded by DEADLINE_S)."""
        with trio.fail_after(DEADLINE_S):
            while not (value := predicate()):
                await trio.sleep(0.02)
        return value


@asynccontextmanager
async def open_client(
    config: McpClientConfig, *, max_restarts: int = 5
) -> AsyncIterator[ActorRef[McpClientMessage]]:
    """A system with ``/tools/mcp`` (permanent, fast backoff) running ``config``."""
    async with open_actor_system("test", stop_grace_s=5.0) as system:
        tools = await system.spawn(
            SupervisorSpec(
                name="tools",
                intensity=RestartIntensity(max_restarts=max_restarts, within_s=30.0),
                backoff=Backoff(initial_s=0.05, max_s=0.2),
            )
        )
        with trio.fail_after(DEADLINE_S):
            ref = await tools.start_child(mcp_client_spec("mcp", config))
        yield ref


def child_processes() -> list[tuple[int, str]]:
    """(pid, state) of every process whose parent is this one, zombies included."""
    found = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces: split after it.
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == me:
            found.append((int(entry), fields[0]))
    return found


def open_fds() -> set[int]:
    return {int(fd) for fd in os.listdir("/proc/self/fd")}
