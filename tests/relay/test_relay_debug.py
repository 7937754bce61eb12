"""The relay's debug page says which shard it is (several shards' pages look alike)."""

from __future__ import annotations

from pathlib import Path

import attrs
import httpx
import trio

from supervisors.edges.debug_http import DebugHttpConfig

from ._support import make_env, start_relay


class TestRelayDebugPage:
    """The title and the JSON answer's X-Zl-Process header name the shard."""

    async def test_names_the_shard(self, tmp_path: Path, nursery: trio.Nursery) -> None:
        env = make_env(tmp_path, n_shards=2)
        config = attrs.evolve(env.config("relay-2"), debug=DebugHttpConfig(port=0))
        addresses, scope = await start_relay(nursery, config)
        assert addresses.debug_url is not None
        async with httpx.AsyncClient(timeout=10) as client:
            page = await client.get(f"{addresses.debug_url}/debug/actors")
            tree = await client.get(f"{addresses.debug_url}/debug/actors?format=json")
        scope.cancel()
        assert "<title>actors of relay (relay shard relay-2)</title>" in page.text
        assert tree.headers["x-zl-process"] == "relay shard relay-2"
        assert tree.json()["name"] == "relay"
