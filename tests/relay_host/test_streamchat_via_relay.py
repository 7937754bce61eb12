"""The production path end to end: a StreamChat turn whose model calls fs.read, going
host → relay → bridge → MCP server over real TLS sockets and real subprocesses."""

from __future__ import annotations

import json
from pathlib import Path

import trio

from actors.audit import verify_audit
from supervisors.host import AuditSection, ToolsSection
from tests.host.conftest import Conversation, host_config, in_thread, kind, say, start_host
from tests.relay._support import Bridge, make_env, start_relay

TENANT = "acme"
DEVICE = "laptop-7"


def start_for(device: str) -> object:
    from contracts.generated import agent_pb2

    return agent_pb2.ChatRequest(
        start_session=agent_pb2.StartSession(tenant=TENANT, user="u1", device_id=device)
    )


def turn_finished(event: object) -> bool:
    return kind(event) == "assistant_done"  # type: ignore[arg-type]


class TestStreamChatThroughTheRelay:
    """A model-driven fs.read reaches the user's machine through the relay and comes back."""

    async def test_tool_turn_via_relay_and_bridge(self, tmp_path: Path) -> None:
        env = make_env(tmp_path)
        root = tmp_path / "device-files"
        root.mkdir()
        (root / "notes.txt").write_text("written on the device\n")
        token_file = tmp_path / "host.jwt"
        token_file.write_text(env.host_token(TENANT))
        audit = tmp_path / "audit.jsonl"
        config = host_config(
            tmp_path,
            tls=True,
            tools=ToolsSection(
                mode="relay",
                relay_shards=[f"{s.shard_id}={s.host_url}" for s in env.shards],
                relay_token_file=str(token_file),
                relay_ca=str(env.ca),
                relay_heartbeat_s=0.5,
            ),
            audit=AuditSection(path=str(audit), fsync_every_records=1),
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
                    talk.send(start_for(DEVICE))  # type: ignore[arg-type]
                    await in_thread(talk.next_event)
                    events: list[object] = []
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
        assert json.loads(delta.result_json)["content"] == "written on the device\n"
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
