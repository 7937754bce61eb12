"""Fixtures for the relay tests: three TLS relay shards on loopback, keys, a file root."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trio

from ._support import Bridge, Env, make_env, start_relay


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return make_env(tmp_path)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    root.mkdir()
    (root / "hello.txt").write_text("hello from the device\n")
    return root


@pytest.fixture
async def relays(env: Env, nursery: trio.Nursery) -> AsyncIterator[dict[str, trio.CancelScope]]:
    scopes = {}
    for shard in env.shards:
        _, scope = await start_relay(nursery, env.config(shard.shard_id))
        scopes[shard.shard_id] = scope
    yield scopes
    for scope in scopes.values():
        scope.cancel()


@pytest.fixture
def bridges() -> Iterator[list[Bridge]]:
    started: list[Bridge] = []
    yield started
    for bridge in started:
        bridge.stop()
