"""One ``turn.summary`` record per turn, in the audit before the turn's final event reaches
the client: after an answer, a tool call, a cancel and a guardrail error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import grpc
import trio

from supervisors.host import AuditSection, MockSection, ProviderSection, ToolsSection
from tests.host.conftest import (
    Conversation,
    cancel,
    host_config,
    in_thread,
    kind,
    say,
    start_host,
    start_request,
)


def _turns(audit: Path) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    return [r["payload"] for r in records if r["kind"] == "turn.summary"]


def _receipts(audit: Path) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    return [r["payload"] for r in records if r["kind"] == "tool.receipt"]


class TestTurnRecords:
    """The record is there the moment the client hears the turn end."""

    async def test_answer_tool_cancel_and_error(self, tmp_path: Path) -> None:
        root = tmp_path / "files"
        root.mkdir()
        (root / "notes.txt").write_text("noted\n")
        audit = tmp_path / "audit.jsonl"
        config = host_config(
            tmp_path,
            tls=False,
            tools=ToolsSection(mode="stdio", roots=[str(root)]),
            audit=AuditSection(path=str(audit)),
            provider=ProviderSection(
                mock=MockSection(first_token_delay_ms=5, tokens_per_s=200, answer_tokens=30)
            ),
        )
        seen: dict[str, list[dict[str, Any]]] = {}

        def talk(channel: grpc.Channel) -> list[Any]:
            with channel:
                chat = Conversation(channel)
                chat.send(start_request())
                session_id = chat.next_event().session_started.session_id
                chat.send(say("hello"))
                done = chat.until(lambda e: kind(e) == "assistant_done")[-1]
                seen["answer"] = _turns(audit)  # read as soon as assistant.done arrived
                chat.send(say("read notes.txt"))
                chat.until(lambda e: kind(e) == "assistant_done")
                seen["tool"] = _turns(audit)
                chat.send(say("a long one"))
                chat.until(lambda e: kind(e) == "assistant_delta")
                chat.send(cancel())
                cancelled = chat.until(lambda e: kind(e) == "assistant_done")[-1]
                seen["cancel"] = _turns(audit)
                chat.close()
                chat.rest()
                # A session whose budget runs out in the middle of its first answer.
                small = Conversation(channel)
                small.send(start_request(token_budget=10))
                small.next_event()
                small.send(say("spend the budget"))
                error = small.until(lambda e: kind(e) in ("error", "assistant_done"))[-1]
                seen["error"] = _turns(audit)
                small.close()
                small.rest()
                return [session_id, done, cancelled, error]

        async with trio.open_nursery() as nursery:
            host = await start_host(nursery, config)
            session_id, done, cancelled, error = await in_thread(talk, host.channel())
            host.shutdown.set()
        answer = seen["answer"][-1]
        assert len(seen["answer"]) == 1
        assert answer["session_id"] == session_id
        assert answer["turn_id"] == "t1"
        assert answer["tenant"] == "acme"
        assert answer["user"] == "u1"
        assert answer["model"] == "mock"
        assert answer["finish_reason"] == done.assistant_done.finish_reason == "stop"
        assert answer["usage"]["output_tokens"] == done.assistant_done.usage.output_tokens
        assert answer["receipt_ids"] == []
        assert answer["policy_id"] == "test-policy"
        assert answer["policy_revision"] == 1
        assert answer["audit_id"].startswith("turn_")
        tool = seen["tool"][-1]
        assert len(seen["tool"]) == 2
        (receipt,) = _receipts(audit)
        assert tool["receipt_ids"] == [receipt["receipt_id"]]
        assert tool["tool_calls"] == 1
        assert seen["cancel"][-1]["finish_reason"] == "cancelled"
        assert cancelled.assistant_done.finish_reason == "cancelled"
        assert seen["error"][-1]["finish_reason"] == "error"
        assert seen["error"][-1]["error_code"] == error.error.code == "budget.exhausted"
        assert len(_turns(audit)) == 4
        assert len({t["audit_id"] for t in _turns(audit)}) == 4
