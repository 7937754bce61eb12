"""With its tenant's relay shard down, the host says which shard is unreachable: the client
gets a typed ``tool.unavailable`` naming it (not a silent answer without tools), the log
says so, and the actor tree names the shard of each connection."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import trio

from actors.relay import Shard, shard_for
from tests.host.conftest import Conversation, in_thread, kind, say, start_host
from tests.relay._support import make_env, start_relay

from ._support import DEVICE, TENANT, relay_host_config, start_for


def nodes(tree: dict[str, Any]) -> list[dict[str, Any]]:
    found = [tree]
    for child in tree["children"]:
        found.extend(nodes(child))
    return found


class TestShardDown:
    """A typed error naming the shard, a log line, and the shard in the tree."""

    async def test_typed_error_names_the_shard(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.INFO, logger="zl.tools.relay")
        env = make_env(tmp_path)
        home = shard_for(TENANT, [Shard(shard_id=s.shard_id, url=s.url) for s in env.shards])
        config = relay_host_config(env, tmp_path)
        async with trio.open_nursery() as nursery:
            # Every shard but the tenant's own runs.
            for shard in env.shards:
                if shard.shard_id != home.shard_id:
                    await start_relay(nursery, env.config(shard.shard_id))
            host = await start_host(nursery, config)
            with host.channel() as channel:
                talk = Conversation(channel)
                talk.send(start_for(DEVICE))
                await in_thread(talk.next_event)
                with trio.fail_after(20):
                    talk.send(say("read notes.txt"))
                    events = await in_thread(
                        lambda: talk.until(lambda e: kind(e) in ("assistant_done", "error"))
                    )
                tree = await host.tree()
                talk.close()
                await in_thread(talk.rest)
            host.shutdown.set()
            nursery.cancel_scope.cancel()
        assert [kind(e) for e in events] == ["error"]
        error = events[0].error
        assert error.code == "tool.unavailable"
        assert error.retryable
        assert f"relay shard {home.shard_id}" in error.message
        assert "unreachable" in error.message
        connections = [n["name"] for n in nodes(tree) if n["name"].startswith("relay_shard_")]
        assert connections == [f"relay_shard_0:{home.shard_id}"]
        assert any(
            f"relay shard {home.shard_id}" in r.getMessage() and "cannot connect" in r.getMessage()
            for r in caplog.records
        )
