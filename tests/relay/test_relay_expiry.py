"""Tokens hold for as long as a connection lasts; a bridge stops on errors that cannot heal.

The relay closes a connection when its token expires (4401, after the same clock leeway its
token check allows); the bridge re-reads its token file before it reconnects, and stops with
one clear line and exit status 2 when the relay refuses a token the file still holds, or
when its relay URL is wrong.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import trio
from trio_websocket import ConnectionClosed

from actors.relay import (
    BINARY_SUBPROTOCOL,
    SUBPROTOCOL,
    DeviceHello,
    DeviceHelloAck,
    ErrorFrame,
    Ping,
    Pong,
    codec_for,
    encode_frame,
    mint_device_token,
    mint_host_token,
)
from actors.relay._tokens import CLOCK_LEEWAY_S
from actors.relay._wire import CLOSE_UNAUTHENTICATED

from ._support import DEADLINE_S, HEARTBEAT_S, MAX_BYTES, Bridge, Env, dial
from .test_relay_e2e import TENANT, owner

#: Tokens that expire this long after the test starts (the relay's leeway included).
EXPIRES_IN_S = 3.0


def expiring(env: Env, device_id: str) -> str:
    # Issued in the past so that, with the leeway, it is good for EXPIRES_IN_S more seconds.
    issued = time.time() - CLOCK_LEEWAY_S + EXPIRES_IN_S - 1
    return mint_device_token(env.key, tenant=TENANT, device_id=device_id, ttl=1, now=issued)


async def read_until_closed(ws: Any) -> tuple[int | None, list[object]]:
    """Every frame until the relay closes (answering its pings), and the close code."""
    codec = codec_for(ws.subprotocol)
    frames: list[object] = []
    with trio.fail_after(DEADLINE_S):
        while True:
            try:
                data = await ws.get_message()
            except ConnectionClosed as exc:
                return (None if exc.reason is None else exc.reason.code), frames
            for frame in codec.decode(data, max_bytes=MAX_BYTES):
                frames.append(frame)
                if isinstance(frame, Ping):
                    pong = Pong(nonce=frame.nonce, sent_at_ms=frame.sent_at_ms)
                    for message in codec.encode([pong]):
                        await ws.send_message(message)


def refused(frames: list[object]) -> bool:
    return any(isinstance(f, ErrorFrame) and f.code == "relay.unauthenticated" for f in frames)


def wait_exit(bridge: Bridge, timeout_s: float = DEADLINE_S) -> int:
    try:
        return bridge.process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        bridge.kill()
        raise AssertionError("the bridge kept running") from None


def last_line(path: Path) -> str:
    return path.read_text().strip().splitlines()[-1]


class TestRelayClosesOnExpiry:
    """A connection whose token expires is closed then, not at the next connect."""

    @pytest.mark.parametrize(
        "subprotocol", [SUBPROTOCOL, BINARY_SUBPROTOCOL], ids=["json", "binary"]
    )
    async def test_device_connection(
        self, env: Env, relays: object, caplog: pytest.LogCaptureFixture, subprotocol: str
    ) -> None:
        caplog.set_level(logging.INFO, logger="zl.relay.device")
        token = expiring(env, "laptop-1")
        async with dial(env, owner(env).url, token, subprotocols=(subprotocol,)) as ws:
            assert ws.subprotocol == subprotocol
            hello = DeviceHello(bridge_version="0.0.1", device_id="laptop-1", tools=())
            (message,) = codec_for(subprotocol).encode([hello])
            await ws.send_message(message)
            connected_at = trio.current_time()
            code, frames = await read_until_closed(ws)
        assert isinstance(frames[0], DeviceHelloAck)
        assert code == CLOSE_UNAUTHENTICATED
        assert refused(frames)
        assert trio.current_time() - connected_at > EXPIRES_IN_S / 3
        # The relay logs connects and drops, with the reason.
        lines = [r.getMessage() for r in caplog.records if r.name == "zl.relay.device"]
        assert f"device {TENANT}/laptop-1 connected (bridge 0.0.1, 0 tools)" in lines
        assert any(
            line.startswith(f"device {TENANT}/laptop-1 disconnected: relay.unauthenticated")
            for line in lines
        )

    async def test_host_connection(self, env: Env, relays: object) -> None:
        issued = time.time() - CLOCK_LEEWAY_S + EXPIRES_IN_S - 1
        token = mint_host_token(env.key, tenants=[TENANT], host_id="h-1", ttl=1, now=issued)
        async with dial(env, owner(env).host_url, token) as ws, trio.open_nursery() as nursery:

            async def keep_alive() -> None:
                # Hosts ping the relay; a silent one would be dropped as idle first.
                with contextlib.suppress(ConnectionClosed):
                    while True:
                        await ws.send_message(encode_frame(Ping(nonce="n", sent_at_ms=0.0)))
                        await trio.sleep(HEARTBEAT_S)

            nursery.start_soon(keep_alive)
            code, frames = await read_until_closed(ws)
            nursery.cancel_scope.cancel()
        assert code == CLOSE_UNAUTHENTICATED
        assert refused(frames)


class TestBridgeTokenFile:
    """The bridge uses a renewed token file; it stops when the refused token is still there."""

    async def test_renewed_token_is_used(
        self, env: Env, relays: object, bridges: list[Bridge], root: Path, tmp_path: Path
    ) -> None:
        status = tmp_path / "status.txt"
        bridge = Bridge(
            env,
            owner(env).url,
            TENANT,
            "laptop-1",
            root=root,
            status_out=status,
            token=expiring(env, "laptop-1"),
        )
        bridges.append(bridge)
        with trio.fail_after(DEADLINE_S):
            while "connected to" not in (status.read_text() if status.exists() else ""):
                await trio.sleep(0.05)
        bridge.token_file.write_text(env.device_token(TENANT, "laptop-1"))
        with trio.fail_after(DEADLINE_S):
            while "using the new one" not in bridge.log.read_text():
                await trio.sleep(0.1)
        await trio.sleep(EXPIRES_IN_S)  # past the old token's expiry: still up
        assert bridge.process.poll() is None
        assert (
            status.read_text().strip().splitlines()[-1].startswith("zl-bridge [laptop-1] connected")
        )

    async def test_expired_token_not_replaced_stops_the_bridge(
        self, env: Env, relays: object, bridges: list[Bridge], root: Path
    ) -> None:
        bridge = Bridge(
            env, owner(env).url, TENANT, "laptop-1", root=root, token=expiring(env, "laptop-1")
        )
        bridges.append(bridge)
        assert await trio.to_thread.run_sync(wait_exit, bridge) == 2
        line = last_line(bridge.log)
        assert line.startswith("zl-bridge: the relay refused the device token")
        assert str(bridge.token_file) in line

    async def test_token_for_another_device(
        self, env: Env, relays: object, bridges: list[Bridge], root: Path
    ) -> None:
        bridge = Bridge(
            env,
            owner(env).url,
            TENANT,
            "laptop-1",
            root=root,
            token=env.device_token(TENANT, "someone-elses-laptop"),
        )
        bridges.append(bridge)
        assert await trio.to_thread.run_sync(wait_exit, bridge) == 2
        line = last_line(bridge.log)
        assert "relay.forbidden" in line
        assert "--device-id" in line

    async def test_wrong_endpoint_path(
        self, env: Env, relays: object, bridges: list[Bridge], root: Path
    ) -> None:
        wrong = owner(env).url.replace("/v1/device", "/v1/devices")
        bridge = Bridge(env, wrong, TENANT, "laptop-1", root=root)
        bridges.append(bridge)
        assert await trio.to_thread.run_sync(wait_exit, bridge) == 2
        line = last_line(bridge.log)
        assert "HTTP 404" in line
        assert "--relay" in line
