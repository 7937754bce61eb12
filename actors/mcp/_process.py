"""A server subprocess with piped stdio, and its bounded stop: stdin EOF, SIGTERM, SIGKILL.

The child starts in its own session (process group), for two reasons: a Ctrl-C in our
terminal reaches only us, so the server is stopped in order instead of dying mid-call;
and SIGTERM/SIGKILL go to the whole group, so helpers the server spawned (``npx``
wrappers, shells) do not outlive it.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess

import trio

from ._client_config import McpClientLimits, McpServerCommand

logger = logging.getLogger("actors.mcp.client")


async def open_server_process(command: McpServerCommand) -> trio.Process:
    """Start ``command`` with stdin, stdout and stderr piped.

    Returns:
        The running process; the caller must end it with :func:`stop_server_process`.

    Raises:
        OSError: the program could not be started (not found, not executable, bad cwd).
    """
    return await trio.lowlevel.open_process(
        list(command.argv),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=command.environment(),
        cwd=command.cwd,
        start_new_session=True,
    )


def _signal_group(process: trio.Process, signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        # Not reaped yet (we reap only in wait), so the id is still ours: the group is gone
        # but the leader may be a zombie; signal it directly, which is harmless.
        process.send_signal(signum)


async def _wait(process: trio.Process, timeout_s: float) -> bool:
    with trio.move_on_after(timeout_s):
        await process.wait()
    return process.returncode is not None


async def stop_server_process(process: trio.Process, limits: McpClientLimits, *, name: str) -> str:
    """End ``process`` and reap it: close stdin and wait, then SIGTERM and wait, then SIGKILL.

    Each wait is bounded by ``limits`` (``stdin_close_timeout_s``, ``sigterm_timeout_s``,
    ``sigkill_timeout_s``); the pipes are closed on the way out, so no descriptor leaks.
    Call it from a ``finally`` under a shielded ``move_on_after(limits.stop_budget_s)``.

    Returns:
        How it ended, for the log: ``"exited"``, ``"stdin-eof"``, ``"SIGTERM"``,
        ``"SIGKILL"`` or ``"unreaped"`` (it survived SIGKILL's wait: a process stuck in
        the kernel).
    """
    how = "exited"
    try:
        if process.returncode is None and process.poll() is None:
            how = "stdin-eof"
            if process.stdin is not None:
                await process.stdin.aclose()
            if not await _wait(process, limits.stdin_close_timeout_s):
                how = "SIGTERM"
                _signal_group(process, signal.SIGTERM)
                if not await _wait(process, limits.sigterm_timeout_s):
                    how = "SIGKILL"
                    _signal_group(process, signal.SIGKILL)
                    if not await _wait(process, limits.sigkill_timeout_s):
                        how = "unreaped"
    finally:
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream is not None:
                # FdStream.aclose closes the descriptor before its checkpoint, so a
                # cancellation here still releases it.
                await stream.aclose()
    logger.info(
        "mcp server %s (pid %d) stopped by %s, exit status %s",
        name,
        process.pid,
        how,
        process.returncode,
    )
    return how
