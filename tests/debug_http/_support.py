"""A small live actor tree and a running debug endpoint, shared by the debug HTTP tests."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs
import trio

from supervisors.edges.debug_http import DebugHttpBinding, DebugHttpConfig, serve_debug_http
from zl_actors import Actor, ActorContext, ActorSpec, ActorSystem, SupervisorSpec, open_actor_system

#: A name an attacker would like to see rendered as markup (names cannot contain '/').
HOSTILE_NAME = "<img src=x onerror=alert(1)>&amp;"
GATE_CAPACITY = 8
QUEUED = 3  # messages left waiting in the gate's mailbox
TOKEN = "s3cret-debug-token-0123456789"


@attrs.frozen(kw_only=True)
class Hold:
    """Makes the gate's handler wait until ``until`` is set."""

    until: trio.Event


class Gate(Actor[Hold]):
    """Blocks on its first message, so later ones stay in the mailbox (a visible depth)."""

    mailbox_capacity = GATE_CAPACITY

    async def handle(self, message: Hold, ctx: ActorContext[Hold]) -> None:
        await message.until.wait()


class Idle(Actor[Hold]):
    mailbox_capacity = 4

    async def handle(self, message: Hold, ctx: ActorContext[Hold]) -> None:
        return None


@attrs.frozen(kw_only=True)
class Live:
    """What ``running_endpoint`` yields."""

    system: ActorSystem
    binding: DebugHttpBinding
    release: trio.Event

    @property
    def url(self) -> str:
        return self.binding.url


async def wait_for(predicate_path: str, system: ActorSystem, *, restarts: int) -> None:
    """Wait until the node at the path runs again after ``restarts`` restarts."""
    while True:
        node = system.snapshot().find(predicate_path)
        if node is not None and node.restarts >= restarts and node.state == "running":
            return
        await trio.sleep(0.01)


@asynccontextmanager
async def running_endpoint(
    config: DebugHttpConfig | None = None, *, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[Live]:
    """``/host`` with ``sessions`` (a gate with queued messages, a hostile-named actor) and a
    ``provider`` actor, served on 127.0.0.1 port 0. Everything stops when the block ends."""
    release = trio.Event()
    async with open_actor_system("host", faults=True, stop_grace_s=1.0) as system:
        sessions = await system.spawn(SupervisorSpec(name="sessions"))
        gate = await sessions.start_child(ActorSpec(name="gate", factory=Gate))
        await sessions.start_child(ActorSpec(name=HOSTILE_NAME, factory=Idle))
        await system.spawn(ActorSpec(name="provider", factory=Idle))
        for _ in range(1 + QUEUED):
            gate.send_nowait(Hold(until=release))
        async with trio.open_nursery() as nursery:
            binding: DebugHttpBinding = await nursery.start(
                _serve, system, config or DebugHttpConfig(), ssl_context
            )
            try:
                yield Live(system=system, binding=binding, release=release)
            finally:
                release.set()
                nursery.cancel_scope.cancel()


async def _serve(
    system: ActorSystem,
    config: DebugHttpConfig,
    ssl_context: ssl.SSLContext | None,
    *,
    task_status: trio.TaskStatus[DebugHttpBinding] = trio.TASK_STATUS_IGNORED,
) -> None:
    await serve_debug_http(system, config=config, ssl_context=ssl_context, task_status=task_status)


async def raw_exchange(port: int, request: bytes, *, limit_s: float = 5.0) -> bytes:
    """Send ``request`` on a fresh TCP connection and read until the server closes."""
    with trio.fail_after(limit_s):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(request)
            received = bytearray()
            while chunk := await stream.receive_some(65_536):
                received += chunk
            return bytes(received)
