"""The production path end to end: a StreamChat turn whose model calls fs.read, going
host → relay → bridge → MCP server over real TLS sockets and real subprocesses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import trio

from actors.audit import verify_audit
from supervisors.host import AuditSection
from tests.host.conftest import Conversation, in_thread, kind, say, start_host
from tests.relay._support import Bridge, make_env, start_relay

from ._support import (
    DEVICE,
    NOTES,
    TENANT,
    device_root,
    relay_host_config,
    start_for,
    turn_finished,
)


class TestStreamChatThroughTheRelay:
    """A model-driven fs.read reaches the user's machine through the relay and comes back."""

    async def test_tool_turn_via_relay_and_bridge(self, tmp_path: Path) -> None:
        env = make_env(tmp_path)
        root = device_root(tmp_path)
        audit = tmp_path / "audit.jsonl"
        config = relay_host_config(
            env, tmp_path, audit=AuditSection(path=str(audit), fsync_every_records=1)
        )
        bridge: Bridge | None = None
        async with trio.open_nursery() as nursery:
            scopes = [(await start_relay(nursery, env.config(s.shard_id)))[1] for s in env.shards]
            # The bridge dials any shard; a wrong one redirects it to its tenant's shard.
            bridge = Bridge(env, env.shards[0].url, TENANT, DEVICE, root=root)
            try:
                host = await start_host(nursery, config)
                with host.channel() as channel:
                    talk = Conversation(channel)
                    talk.send(start_for(DEVICE))
                    await in_thread(talk.next_event)
                    events: list[Any] = []
                    with trio.fail_after(30):
                        # Until the bridge has announced itself, the device offers no tools.
                        while not any(kind(e) == "tool_call_started" for e in events):
                            talk.send(say("read notes.txt"))
                            events = await in_thread(talk.until, turn_finished)
                            if not any(kind(e) == "tool_call_started" for e in events):
                                await trio.sleep(0.2)
                    talk.close()
                    await in_thread(talk.rest)
                host.shutdown.set()
            finally:
                bridge.stop()
                for scope in scopes:
                    scope.cancel()
        started = next(e.tool_call_started for e in events if kind(e) == "tool_call_started")
        assert started.tool == "fs.read"
        assert started.device_id == DEVICE
        delta = next(e.tool_call_delta for e in events if kind(e) == "tool_call_delta")
        assert delta.status == "ok", delta
        assert json.loads(delta.result_json)["content"] == NOTES
        answer = "".join(e.assistant_delta.text for e in events if kind(e) == "assistant_delta")
        assert "written on the device" in answer
        receipts = [
            json.loads(line)["payload"]
            for line in audit.read_text().splitlines()
            if json.loads(line)["kind"] == "tool.receipt"
        ]
        assert len(receipts) == 1
        assert receipts[0]["device_id"] == DEVICE
        assert receipts[0]["outcome"] == "ok"
        assert verify_audit(audit).ok
