"""fs.read end to end over stdio: a StreamChat turn whose model reads a file, and every
way a tool call can fail, each with exactly one receipt in the audit."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from actors.audit import verify_audit
from supervisors.host import AuditSection, ToolsSection
from tests.host.conftest import (
    STEP_S,
    Conversation,
    RunningHost,
    cancel,
    host_config,
    in_thread,
    kind,
    say,
    start_host,
    start_request,
)

ROGUE = Path(__file__).with_name("rogue_fs_server.py")


def receipts(path: Path) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in path.read_text().splitlines()]
    return [r["payload"] for r in records if r["kind"] == "tool.receipt"]


async def wait_receipts(path: Path, count: int) -> list[dict[str, Any]]:
    with trio.fail_after(STEP_S):
        while True:
            found = receipts(path) if path.exists() else []
            if len(found) >= count:
                return found
            await trio.sleep(0.02)


def turn(talk: Conversation, text: str) -> list[Any]:
    talk.send(say(text))
    return talk.until(lambda e: kind(e) in ("assistant_done", "error") and e.turn_id != "")


async def run_turns(th: ToolHost, *messages: str) -> list[list[Any]]:
    """One session on the tool host: one turn per message, then close and stop the host."""
    with th.host.channel() as channel:
        talk = Conversation(channel)
        talk.send(start_request())
        await in_thread(talk.next_event)
        turns = [await in_thread(turn, talk, message) for message in messages]
        talk.close()
        await in_thread(talk.rest)
    th.host.shutdown.set()
    return turns


class ToolHost:
    def __init__(self, host: RunningHost, audit: Path, tmp: Path) -> None:
        self.host, self.audit, self.tmp = host, audit, tmp


async def start_tool_host(nursery: trio.Nursery, tmp_path: Path, **tools: Any) -> ToolHost:
    audit = tmp_path / "audit.jsonl"
    config = host_config(
        tmp_path,
        tls=False,
        tools=ToolsSection(mode="stdio", **tools),
        audit=AuditSection(path=str(audit), fsync_every_records=1),
    )
    return ToolHost(await start_host(nursery, config), audit, tmp_path)


class TestReadAFile:
    """The model reads a file through fs.read and answers with it; the receipt is written."""

    async def test_tool_turn(self, tmp_path: Path) -> None:
        root = tmp_path / "root"
        root.mkdir()
        (root / "notes.txt").write_text("Zero Latency keeps receipts.\n")
        async with trio.open_nursery() as nursery:
            th = await start_tool_host(nursery, tmp_path, roots=[str(root)])
            (events,) = await run_turns(th, "please read notes.txt")
        kinds = [kind(e) for e in events]
        assert kinds[0] == "tool_call_started"
        started = events[0].tool_call_started
        assert (started.tool, started.version) == ("fs.read", "1.0.0")
        assert json.loads(started.args_json)["path"] == "notes.txt"
        delta = events[1].tool_call_delta
        assert kinds[1] == "tool_call_delta"
        assert delta.status == "ok"
        result = json.loads(delta.result_json)
        assert result["content"] == "Zero Latency keeps receipts.\n"
        assert result["truncated"] is False
        answer = "".join(e.assistant_delta.text for e in events if kind(e) == "assistant_delta")
        assert "Zero Latency keeps receipts." in answer
        assert kinds[-1] == "assistant_done"
        (receipt,) = receipts(th.audit)
        assert receipt["outcome"] == "ok"
        assert receipt["tool"] == "fs.read"
        assert receipt["tool_version"] == "1.0.0"
        assert receipt["args_digest"].startswith("sha256:")
        assert receipt["result_digest"].startswith("sha256:")
        assert receipt["caps"] == {"timeoutMs": 5000, "maxBytes": 1048576}
        assert receipt["turn_id"] == "t1"
        assert verify_audit(th.audit).ok


class TestFailures:
    """Bad arguments, refusals, bad results, crashes, hangs, garbage: typed errors and receipts."""

    @pytest.mark.parametrize(
        ("message", "status", "code"),
        [
            ('tool fs.read {"path": 5}', "error", "tool.invalid_args"),
            ('tool fs.read {"path": "a", "color": "red"}', "error", "tool.invalid_args"),
            ("read invalid", "error", "tool.invalid_result"),
            ("read garbage", "error", "tool.failed"),
            ("read hang", "timeout", "tool.timeout"),
            ("read crash", "error", "tool.unavailable"),
        ],
    )
    async def test_failure(self, tmp_path: Path, message: str, status: str, code: str) -> None:
        log = tmp_path / "rogue.log"
        async with trio.open_nursery() as nursery:
            th = await start_tool_host(
                nursery,
                tmp_path,
                command=[sys.executable, str(ROGUE), "--log", str(log)],
                timeout_ms=1000,
            )
            # The next call works (after a restart, if the server crashed).
            events, again = await run_turns(th, message, "read hello.txt")
        deltas = [e.tool_call_delta for e in events if kind(e) == "tool_call_delta"]
        assert len(deltas) == 1
        assert deltas[0].status == status
        assert deltas[0].error.code == code
        assert kind(events[-1]) == "assistant_done", "the model answers after a failed call"
        ok = [e.tool_call_delta for e in again if kind(e) == "tool_call_delta"]
        assert ok[0].status == "ok"
        first, second = receipts(th.audit)
        assert first["outcome"] == status
        assert first["error_code"] == code
        assert second["outcome"] == "ok"
        if code == "tool.timeout":
            cancels = [
                json.loads(line)
                for line in log.read_text().splitlines()
                if "notifications/cancelled" in line
            ]
            assert cancels, "the MCP server was told to stop the call"

    async def test_refused_by_the_server(self, tmp_path: Path) -> None:
        root = tmp_path / "root"
        root.mkdir()
        async with trio.open_nursery() as nursery:
            th = await start_tool_host(nursery, tmp_path, roots=[str(root)])
            (events,) = await run_turns(th, "read ../../etc/passwd")
        (delta,) = [e.tool_call_delta for e in events if kind(e) == "tool_call_delta"]
        assert delta.status == "error"
        assert delta.error.code.startswith("fs.")
        (receipt,) = receipts(th.audit)
        assert receipt["error_code"] == delta.error.code

    async def test_host_enforces_max_bytes(self, tmp_path: Path) -> None:
        async with trio.open_nursery() as nursery:
            th = await start_tool_host(
                nursery, tmp_path, command=[sys.executable, str(ROGUE)], max_bytes=100
            )
            (events,) = await run_turns(th, "read oversized")
        (delta,) = [e.tool_call_delta for e in events if kind(e) == "tool_call_delta"]
        result = json.loads(delta.result_json)
        assert result["bytesReturned"] == 100
        assert result["truncated"] is True
        assert len(result["content"]) == 100
        (receipt,) = receipts(th.audit)
        assert receipt["truncated"] is True
        assert receipt["caps"]["maxBytes"] == 100


class TestCancellation:
    """Cancelling a turn during a tool call cancels the call down the line; the receipt says so."""

    async def test_cancel_during_call(self, tmp_path: Path) -> None:
        log = tmp_path / "rogue.log"
        async with trio.open_nursery() as nursery:
            th = await start_tool_host(
                nursery,
                tmp_path,
                command=[sys.executable, str(ROGUE), "--log", str(log)],
                timeout_ms=5000,
            )
            with th.host.channel() as channel:
                talk = Conversation(channel)
                talk.send(start_request())
                await in_thread(talk.next_event)
                talk.send(say("read hang"))
                await in_thread(lambda: talk.until(lambda e: kind(e) == "tool_call_started"))
                talk.send(cancel())
                events = await in_thread(lambda: talk.until(lambda e: kind(e) == "assistant_done"))
                talk.close()
                await in_thread(talk.rest)
            (receipt,) = await wait_receipts(th.audit, 1)
            th.host.shutdown.set()
        assert [kind(e) for e in events] == ["tool_call_delta", "assistant_done"]
        assert events[0].tool_call_delta.status == "cancelled"
        assert events[-1].assistant_done.finish_reason == "cancelled"
        assert receipt["outcome"] == "cancelled"
        assert receipt["error_code"] == "tool.cancelled"
        with trio.fail_after(STEP_S):
            while "notifications/cancelled" not in log.read_text():
                await trio.sleep(0.02)
