"""The relay stamps a device's ``tool.result`` with its relay↔device round trip, and the
host link adds its own host↔relay leg and reports the sum.

Raw WebSocket peers (in this process, over real TLS sockets) stand in for the bridge and,
in the first test, for the host, so the tests decide when the device answers pings.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection

from actors.relay import (
    Caps,
    DeviceHello,
    DeviceHelloAck,
    Ping,
    Pong,
    Shard,
    Tool,
    ToolCall,
    ToolResult,
    decode_frame,
    encode_frame,
    shard_for,
)
from actors.tools import ToolInvocation
from supervisors.relay import ShardSection
from tests._policy import permissive_bundle

from ._support import DEADLINE_S, HEARTBEAT_S, MAX_BYTES, Env, dial, open_link, start_relay

TENANT = "acme"
DEVICE = "laptop-1"
#: What the device claims as its round trip; the relay must not pass it on.
FORGED_RTT_MS = 999_999.0


def home(env: Env) -> ShardSection:
    shard = shard_for(TENANT, [Shard(shard_id=s.shard_id, url=s.url) for s in env.shards])
    return next(s for s in env.shards if s.shard_id == shard.shard_id)


@pytest.fixture
async def relay(env: Env, nursery: trio.Nursery) -> ShardSection:
    shard = home(env)
    await start_relay(nursery, env.config(shard.shard_id))
    return shard


class Device:
    """A device that answers every call (claiming ``FORGED_RTT_MS``) and, once
    ``answer_pings`` is set, the relay's pings; ``ponged`` is set at its first pong."""

    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws = ws
        self.answer_pings = False
        self.ponged = trio.Event()

    async def serve(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                frame = decode_frame(await self.ws.get_message(), max_bytes=MAX_BYTES)
                match frame:
                    case Ping(nonce=nonce, sent_at_ms=sent_at_ms) if self.answer_pings:
                        pong = Pong(nonce=nonce, sent_at_ms=sent_at_ms)
                        await self.ws.send_message(encode_frame(pong))
                        self.ponged.set()
                    case ToolCall(call_id=call_id):
                        result = ToolResult(
                            call_id=call_id,
                            result={"content": [{"type": "text", "text": "done"}]},
                            device_rtt_ms=FORGED_RTT_MS,
                        )
                        await self.ws.send_message(encode_frame(result))


@asynccontextmanager
async def device(env: Env, relay: ShardSection) -> AsyncIterator[Device]:
    async with dial(env, relay.url, env.device_token(TENANT, DEVICE)) as ws:
        tools = (
            Tool(name="fs.read", version="1.0.0", description="", input_schema={"type": "object"}),
        )
        await ws.send_message(
            encode_frame(DeviceHello(bridge_version="0.0.1", device_id=DEVICE, tools=tools))
        )
        with trio.fail_after(DEADLINE_S):
            assert isinstance(
                decode_frame(await ws.get_message(), max_bytes=MAX_BYTES), DeviceHelloAck
            )
        peer = Device(ws)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(peer.serve)
            yield peer
            nursery.cancel_scope.cancel()


async def call_through(host: WebSocketConnection, call_id: str) -> ToolResult:
    """Send an fs.read as a host would; the relay's ``tool.result`` for it."""
    call = ToolCall(
        call_id=call_id,
        tenant=TENANT,
        device_id=DEVICE,
        tool="fs.read",
        version="1.0.0",
        args={"path": "hello.txt"},
        deadline_ms=5000,
        caps=Caps(timeout_ms=5000, max_bytes=4096),
    )
    await host.send_message(encode_frame(call))
    with trio.fail_after(DEADLINE_S):
        while True:
            frame = decode_frame(await host.get_message(), max_bytes=MAX_BYTES)
            if isinstance(frame, ToolResult) and frame.call_id == call_id:
                return frame


def fs_read(call_id: str) -> ToolInvocation:
    return ToolInvocation(
        call_id=call_id,
        tenant=TENANT,
        device_id=DEVICE,
        tool="fs.read",
        version="1.0.0",
        arguments={"path": "hello.txt"},
        timeout_s=5.0,
        max_bytes=4096,
        policy=permissive_bundle(TENANT),
    )


class TestDeviceRtt:
    """``device_rtt_ms`` is the relay's own measurement, and the link turns it into host↔device."""

    async def test_relay_stamps_results_once_the_device_ponged(
        self, env: Env, relay: ShardSection
    ) -> None:
        async with (
            device(env, relay) as dev,
            dial(env, relay.host_url, env.host_token(TENANT)) as host,
        ):
            before = await call_through(host, "c-before")
            assert before.ok
            # No pong yet: nothing measured, and the device's own figure is not passed on.
            assert before.device_rtt_ms is None
            dev.answer_pings = True
            with trio.fail_after(DEADLINE_S):
                await dev.ponged.wait()
            # The pong went first on the same socket, so the relay has taken it in by now.
            after = await call_through(host, "c-after")
            assert after.ok
            assert after.device_rtt_ms is not None
            assert 0 <= after.device_rtt_ms < FORGED_RTT_MS

    async def test_link_reports_host_to_device_rtt(self, env: Env, relay: ShardSection) -> None:
        seen: list[float] = []
        async with (
            open_link(env.link_settings(TENANT, shards=[relay]), seen.append) as link,
            device(env, relay) as dev,
        ):
            output = await link.invoke(fs_read("c-before"))
            assert not output.is_error
            assert seen == []  # the relay had no device round trip to give
            dev.answer_pings = True
            with trio.fail_after(DEADLINE_S):
                while await link.host_to_device_rtt_ms(tenant=TENANT, device_id=DEVICE) is None:
                    await trio.sleep(HEARTBEAT_S / 2)
            output = await link.invoke(fs_read("c-after"))
            assert not output.is_error
            assert len(seen) == 1
            assert 0 < seen[0] < FORGED_RTT_MS
