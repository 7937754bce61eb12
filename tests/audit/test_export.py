"""The audit export survives a collector outage: the host keeps answering, the records wait
in the audit file, and once the collector (a real OTLP/HTTP receiver) is up every record
arrives, in order, byte for byte; a restarted host resumes from the cursor."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import trio

from actors.audit import load_export_cursor, verify_audit
from supervisors.host import AuditSection, HostConfig, ToolsSection
from tests._policy import bearer, caller_token, with_metadata
from tests.host.conftest import (
    Conversation,
    host_config,
    in_thread,
    say,
    start_host,
    start_request,
    turn_done,
)
from tests.observability._support import OtlpReceiver

TURNS = 6


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


async def _chat(target: str, turns: int) -> None:
    def talk() -> None:
        with with_metadata(grpc.insecure_channel(target), bearer(caller_token())) as channel:
            conversation = Conversation(channel)
            conversation.send(start_request())
            conversation.next_event()
            for n in range(turns):
                conversation.send(say(f"read notes.txt please ({n})"))
                conversation.until(turn_done)
            conversation.close()
            conversation.rest()

    await in_thread(talk)


def _config(tmp_path: Path, receiver: OtlpReceiver, root: Path) -> HostConfig:
    return host_config(
        tmp_path,
        tls=False,
        tools=ToolsSection(mode="stdio", roots=[str(root)]),
        audit=AuditSection(
            path=str(tmp_path / "audit.jsonl"),
            export_endpoint=receiver.url,
            export_interval_s=0.05,
            export_timeout_s=2.0,
        ),
    )


class TestExportThroughAnOutage:
    """Nothing is lost while the collector is down, and the host never waits for it."""

    async def test_down_then_up_then_restart(self, tmp_path: Path) -> None:
        root = tmp_path / "files"
        root.mkdir()
        (root / "notes.txt").write_text("exported\n")
        audit = tmp_path / "audit.jsonl"
        receiver = OtlpReceiver()  # its port refuses connections until it is up
        try:
            config = _config(tmp_path, receiver, root)
            async with trio.open_nursery() as nursery:
                host = await start_host(nursery, config)
                with trio.fail_after(60):
                    await _chat(host.target, TURNS)  # the collector is down: turns still end
                written = len(_lines(audit))
                receipts = sum('"kind":"tool.receipt"' in line for line in _lines(audit))
                assert receipts == TURNS
                assert load_export_cursor(audit.with_name("audit.jsonl.export")).seq == -1
                receiver.up()

                def caught_up(r: OtlpReceiver) -> bool:
                    return len({log["attributes"]["zl.audit.seq"] for log in r.logs}) >= written

                await trio.to_thread.run_sync(receiver.wait_for, caught_up)
                host.shutdown.set()
            first_run = len(_lines(audit))
            async with trio.open_nursery() as nursery:
                host = await start_host(nursery, config)
                with trio.fail_after(60):
                    await _chat(host.target, 2)
                total = len(_lines(audit))

                def all_in(r: OtlpReceiver) -> bool:
                    return {log["attributes"]["zl.audit.seq"] for log in r.logs} >= set(
                        range(total)
                    )

                await trio.to_thread.run_sync(receiver.wait_for, all_in)
                host.shutdown.set()
        finally:
            receiver.close()
        assert first_run > written
        lines = _lines(audit)
        by_seq = {}
        for log in receiver.logs:
            by_seq.setdefault(log["attributes"]["zl.audit.seq"], log)
        # Every record arrived exactly as written (the body is the line itself), in order.
        for seq, line in enumerate(lines[:total]):
            assert by_seq[seq]["body"] == line
            assert by_seq[seq]["attributes"]["zl.audit.kind"] == json.loads(line)["kind"]
        sent_seqs = [log["attributes"]["zl.audit.seq"] for log in receiver.logs]
        assert sent_seqs == sorted(sent_seqs)
        # At least once, not again and again: a restart resends at most its last batch.
        assert len(sent_seqs) - len(set(sent_seqs)) <= 1
        assert verify_audit(audit).ok
