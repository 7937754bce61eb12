"""``zl-bridge``'s terminal status: a real bridge subprocess against a real relay shard."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import trio

from actors.relay import Shard, shard_for
from actors.tools import ToolInvocation
from supervisors.relay import ShardSection
from tests._policy import permissive_bundle
from tests.relay._support import (
    DEADLINE_S,
    LEGACY_SERVER,
    Bridge,
    Env,
    make_env,
    open_link,
    start_relay,
)

TENANT = "acme"


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return make_env(tmp_path)


def home(env: Env) -> ShardSection:
    shard = shard_for(TENANT, [Shard(shard_id=s.shard_id, url=s.url) for s in env.shards])
    return next(s for s in env.shards if s.shard_id == shard.shard_id)


def sleep_call(seconds: float) -> ToolInvocation:
    return ToolInvocation(
        call_id="c-status",
        tenant=TENANT,
        device_id="laptop",
        tool="sleep",
        version="1.0.0",
        arguments={"seconds": seconds},
        timeout_s=seconds,
        max_bytes=65536,
        policy=permissive_bundle(TENANT),
    )


async def wait_for_line(path: Path, needle: str, *, count: int = 1) -> None:
    """Wait until ``needle`` is on at least ``count`` status lines."""
    with trio.fail_after(DEADLINE_S):
        while True:
            lines = path.read_text().splitlines() if path.exists() else []
            if sum(needle in line for line in lines) >= count:
                return
            await trio.sleep(0.05)


class TestStatusLine:
    """The bridge prints a line for each state: connected, calls in flight, reconnecting."""

    async def test_states(self, env: Env, nursery: trio.Nursery, tmp_path: Path) -> None:
        shard = home(env)
        _, relay = await start_relay(nursery, env.config(shard.shard_id))
        status = tmp_path / "status.txt"
        bridge = Bridge(
            env,
            shard.url,
            TENANT,
            "laptop",
            sys.executable,
            str(LEGACY_SERVER),
            status_out=status,
        )
        try:
            await wait_for_line(status, f"zl-bridge [laptop] connected to {shard.url}")
            async with open_link(env.link_settings(TENANT)) as link, trio.open_nursery() as calls:
                calls.start_soon(link.invoke, sleep_call(30))
                await wait_for_line(status, "calls in flight 1")
                calls.cancel_scope.cancel()
            await wait_for_line(status, "calls in flight 0 · done 1")
            relay.cancel()
            await wait_for_line(status, "zl-bridge [laptop] reconnecting (attempt")
            await start_relay(nursery, env.config(shard.shard_id))
            await wait_for_line(status, "connected to", count=2)
        finally:
            bridge.stop()
        nursery.cancel_scope.cancel()
