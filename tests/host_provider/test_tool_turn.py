"""A full turn with the OpenAI-compatible adapter: the model streams a tool call in
fragments, the host runs fs.read over stdio, and the model finishes with the result."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import trio

from actors.provider.fake_upstream import Script, ScriptedToolCall, open_fake_upstream
from supervisors.host import AuditSection, HostAddresses, ToolsSection, run_host
from supervisors.host._provider import open_host_provider
from tests._policy import bearer, caller_token, with_metadata
from tests.host.conftest import Conversation, host_config, in_thread, kind, say, start_request

from .conftest import provider_section


class TestToolCallThroughTheAdapter:
    """Fragments assembled, fs.read run with a receipt, the answer quotes the file."""

    async def test_fragmented_tool_call(self, tmp_path: Path) -> None:
        root = tmp_path / "root"
        root.mkdir()
        (root / "notes.txt").write_text("the adapter carried this back\n")
        audit = tmp_path / "audit.jsonl"
        script = Script(
            text="",
            tool_call=ScriptedToolCall(arguments='{"path": "notes.txt"}', fragments=5),
        )
        async with open_fake_upstream(script) as upstream:
            config = host_config(
                tmp_path,
                tls=False,
                tools=ToolsSection(mode="stdio", roots=[str(root)]),
                audit=AuditSection(path=str(audit)),
            )
            async with (
                open_host_provider(provider_section(upstream.url)) as stack,
                trio.open_nursery() as nursery,
            ):
                shutdown = trio.Event()
                addresses: HostAddresses = await nursery.start(
                    lambda task_status: run_host(
                        config, shutdown=shutdown, provider=stack.provider, task_status=task_status
                    )
                )

                with with_metadata(
                    grpc.insecure_channel(f"127.0.0.1:{addresses.grpc_port}"),
                    bearer(caller_token()),
                ) as channel:
                    talk = Conversation(channel)
                    talk.send(start_request())
                    await in_thread(talk.next_event)
                    talk.send(say("what is in my notes?"))
                    events = await in_thread(
                        lambda: talk.until(lambda e: kind(e) in ("assistant_done", "error"))
                    )
                    talk.close()
                    await in_thread(talk.rest)
                shutdown.set()
            requests = list(upstream.requests)
        kinds = [kind(e) for e in events]
        assert kinds[0] == "tool_call_started", kinds
        started = events[0].tool_call_started
        assert started.tool == "fs.read"
        assert json.loads(started.args_json)["path"] == "notes.txt"
        delta = events[1].tool_call_delta
        assert delta.status == "ok"
        assert json.loads(delta.result_json)["content"] == "the adapter carried this back\n"
        answer = "".join(e.assistant_delta.text for e in events if kind(e) == "assistant_delta")
        assert "the adapter carried this back" in answer
        assert kinds[-1] == "assistant_done"
        assert events[-1].assistant_done.usage.output_tokens > 0
        # The second request carried the tool result back as a `tool` message.
        second = requests[-1].body
        tool_messages = [m for m in second["messages"] if m["role"] == "tool"]
        assert len(tool_messages) == 1
        assert json.loads(tool_messages[0]["content"])["content"] == (
            "the adapter carried this back\n"
        )
        receipts = [
            json.loads(line)["payload"]
            for line in audit.read_text().splitlines()
            if json.loads(line)["kind"] == "tool.receipt"
        ]
        assert [r["outcome"] for r in receipts] == ["ok"]
