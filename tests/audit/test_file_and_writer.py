"""The audit file and its writer actor: durability, resume, crashes, back-pressure, schema."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import trio

from actors.audit import (
    AUDIT_MAILBOX_CAPACITY,
    CHECKPOINT_KIND,
    OPENED_KIND,
    RECEIPT_KIND,
    Appended,
    AppendReceipt,
    AppendRecord,
    AppendTurn,
    AuditConfig,
    AuditCorrupt,
    AuditFile,
    AuditFileError,
    AuditWriter,
    Checkpoint,
    FsyncPolicy,
    Outcome,
    Sync,
    record_problem,
    verify_audit,
)
from zl_actors import ActorRef, ActorSpec, ActorSystem, open_actor_system

from ._support import receipt, turn

ASK_S = 5.0


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


async def _spawn(system: ActorSystem, config: AuditConfig) -> ActorRef[Any]:
    return await system.spawn(ActorSpec(name="audit", factory=lambda: AuditWriter(config)))


class TestAuditFile:
    """Opening, resuming, torn tails, locking and the fsync policy."""

    def test_new_file_starts_with_opened_and_verifies(self, tmp_path: Path) -> None:
        path = tmp_path / "audit.jsonl"
        audit = AuditFile.open(path, fsync=FsyncPolicy(), writer="test")
        audit.append([(RECEIPT_KIND, receipt(1).to_payload(), "2026-01-01T00:00:00Z")])
        audit.close()
        kinds = [r["kind"] for r in _records(path)]
        assert kinds == [OPENED_KIND, RECEIPT_KIND, CHECKPOINT_KIND]
        assert verify_audit(path).ok
        assert oct(path.stat().st_mode & 0o777) == "0o600"

    def test_reopen_resumes_the_chain(self, tmp_path: Path) -> None:
        path = tmp_path / "audit.jsonl"
        for round_ in range(3):
            audit = AuditFile.open(path, fsync=FsyncPolicy(), writer=f"w{round_}")
            for n in range(4):
                audit.append([(RECEIPT_KIND, receipt(n).to_payload(), "2026-01-01T00:00:00Z")])
            audit.close(checkpoint=round_ != 1)  # round 1 ends like a crash: no checkpoint
        report = verify_audit(path)
        assert report.ok, report.problem
        assert report.kinds[RECEIPT_KIND] == 12
        assert report.kinds[OPENED_KIND] == 3
        opened = [r for r in _records(path) if r["kind"] == OPENED_KIND]
        assert [o["payload"]["resumed_after_seq"] for o in opened] == [None, 5, 10]

    def test_resume_reads_back_past_the_window(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr("actors.audit._file.RESUME_WINDOW_BYTES", 512)
        path = tmp_path / "audit.jsonl"
        audit = AuditFile.open(path, fsync=FsyncPolicy(every_records=None), writer="a")
        audit.checkpoint()
        for n in range(20):
            audit.append([(RECEIPT_KIND, receipt(n).to_payload(), "2026-01-01T00:00:00Z")])
        audit.close(checkpoint=False)
        audit = AuditFile.open(path, fsync=FsyncPolicy(), writer="b")
        audit.close()
        assert verify_audit(path).ok

    def test_torn_tail_is_cut_and_recorded(self, tmp_path: Path) -> None:
        path = tmp_path / "audit.jsonl"
        AuditFile.open(path, fsync=FsyncPolicy(), writer="a").close()
        torn = b'{"hash":"sha256:12'
        with path.open("ab") as file:
            file.write(torn)
        assert not verify_audit(path).ok
        AuditFile.open(path, fsync=FsyncPolicy(), writer="b").close()
        assert verify_audit(path).ok
        opened = [r for r in _records(path) if r["kind"] == OPENED_KIND][-1]["payload"]
        assert opened["torn_tail_bytes"] == len(torn)
        assert opened["torn_tail_digest"].startswith("sha256:")

    def test_corrupt_last_record_refuses_to_resume(self, tmp_path: Path) -> None:
        path = tmp_path / "audit.jsonl"
        audit = AuditFile.open(path, fsync=FsyncPolicy(), writer="a")
        audit.append([("x.last", {"n": 1}, "2026-01-01T00:00:00Z")])
        audit.close(checkpoint=False)
        path.write_bytes(path.read_bytes().replace(b'"n":1', b'"n":2'))
        with pytest.raises(AuditCorrupt, match="hash"):
            AuditFile.open(path, fsync=FsyncPolicy(), writer="c")

    def test_second_writer_is_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "audit.jsonl"
        first = AuditFile.open(path, fsync=FsyncPolicy(), writer="a")
        try:
            with pytest.raises(AuditFileError, match="another writer"):
                AuditFile.open(path, fsync=FsyncPolicy(), writer="b")
        finally:
            first.close()
        AuditFile.open(path, fsync=FsyncPolicy(), writer="b").close()

    def test_fsync_policy_by_count(self, tmp_path: Path) -> None:
        audit = AuditFile.open(tmp_path / "a", fsync=FsyncPolicy(every_records=3), writer="a")
        base = audit.fsyncs
        for n in range(7):
            audit.append([(RECEIPT_KIND, receipt(n).to_payload(), "2026-01-01T00:00:00Z")])
        assert audit.fsyncs - base == 2
        audit.close(checkpoint=False)
        assert audit.fsyncs - base == 3  # close syncs the rest

    def test_bad_payload_leaves_the_chain_unchanged(self, tmp_path: Path) -> None:
        path = tmp_path / "a"
        audit = AuditFile.open(path, fsync=FsyncPolicy(), writer="a")
        good = (RECEIPT_KIND, receipt(1).to_payload(), "2026-01-01T00:00:00Z")
        with pytest.raises(ValueError, match="canonical"):
            audit.append([good, ("x.y", {"n": float("nan")}, "2026-01-01T00:00:00Z")])
        audit.append([good])
        audit.close()
        assert verify_audit(path).kinds[RECEIPT_KIND] == 1


class TestAuditWriter:
    """The actor: answers after writing, refuses bad records, survives crashes."""

    async def test_appends_are_answered_in_order_and_verify(self, tmp_path: Path) -> None:
        path = tmp_path / "audit.jsonl"
        written: list[Appended] = []
        config = AuditConfig(path=path, checkpoint_every=4, on_written=written.append)
        async with open_actor_system("t") as system:
            ref = await _spawn(system, config)
            answers = [
                await ref.ask(AppendReceipt(receipt=receipt(n)), timeout=ASK_S) for n in range(6)
            ]
            answers.append(await ref.ask(AppendTurn(summary=turn(1)), timeout=ASK_S))
            answers.append(
                await ref.ask(
                    AppendRecord(kind="policy.loaded", payload={"id": "p1"}), timeout=ASK_S
                )
            )
            # Answered means written: the record is in the file now, before the writer stops.
            on_disk = _records(path)
            assert on_disk[answers[-1].seq]["hash"] == answers[-1].hash
            checkpoint = await ref.ask(Checkpoint(), timeout=ASK_S)
            await ref.ask(Sync(), timeout=ASK_S)
        assert [a.seq for a in answers] == sorted(a.seq for a in answers)
        report = verify_audit(path)
        assert report.ok, report.problem
        assert report.kinds == {
            OPENED_KIND: 1,
            RECEIPT_KIND: 6,
            "turn.summary": 1,
            "policy.loaded": 1,
            CHECKPOINT_KIND: 3,
        }
        assert checkpoint.kind == CHECKPOINT_KIND
        assert {a.kind for a in written} == {
            RECEIPT_KIND,
            "turn.summary",
            "policy.loaded",
            CHECKPOINT_KIND,
        }

    async def test_every_record_validates_against_the_schema(self, tmp_path: Path) -> None:
        path = tmp_path / "audit.jsonl"
        async with open_actor_system("t") as system:
            ref = await _spawn(system, AuditConfig(path=path, checkpoint_every=3))
            for n, outcome in enumerate(Outcome):
                await ref.ask(AppendReceipt(receipt=receipt(n, outcome=outcome)), timeout=ASK_S)
                await ref.ask(AppendTurn(summary=turn(n)), timeout=ASK_S)
        records = _records(path)
        assert len(records) > 10
        for record in records:
            assert record_problem(record) is None, record

    async def test_bad_record_is_refused_and_the_writer_carries_on(self, tmp_path: Path) -> None:
        path = tmp_path / "audit.jsonl"
        async with open_actor_system("t") as system:
            ref = await _spawn(system, AuditConfig(path=path))
            with pytest.raises(ValueError, match="kind"):
                await ref.ask(AppendRecord(kind="NoDots", payload={}), timeout=ASK_S)
            with pytest.raises(ValueError, match="kind"):
                await ref.ask(AppendRecord(kind=CHECKPOINT_KIND, payload={}), timeout=ASK_S)
            with pytest.raises(ValueError, match="canonical"):
                await ref.ask(AppendRecord(kind="x.y", payload={"n": 2**60}), timeout=ASK_S)
            appended = await ref.ask(AppendReceipt(receipt=receipt(1)), timeout=ASK_S)
            assert appended.seq == 1
            node = next(n for n in system.snapshot().walk() if n.path.endswith("/t/audit"))
            assert node.restarts == 0
            assert node.last_failure is None
        assert verify_audit(path).ok

    async def test_redaction_hook_sees_every_payload(self, tmp_path: Path) -> None:
        path = tmp_path / "audit.jsonl"
        seen: list[str] = []

        def redact(kind: str, payload: Mapping[str, Any]) -> Mapping[str, Any]:
            seen.append(kind)
            return {**payload, "session_id": "[redacted]"} if kind == "turn.summary" else payload

        async with open_actor_system("t") as system:
            ref = await _spawn(system, AuditConfig(path=path, redact=redact))
            await ref.ask(AppendReceipt(receipt=receipt(1)), timeout=ASK_S)
            await ref.ask(AppendTurn(summary=turn(1)), timeout=ASK_S)
        assert seen == [RECEIPT_KIND, "turn.summary"]
        turns = [r for r in _records(path) if r["kind"] == "turn.summary"]
        assert turns[0]["payload"]["session_id"] == "[redacted]"
        # Receipts never hold args or results, only digests.
        receipt_payload = next(r for r in _records(path) if r["kind"] == RECEIPT_KIND)["payload"]
        assert "notes/1.txt" not in json.dumps(receipt_payload)

    async def test_crash_between_appends_resumes_the_chain(self, tmp_path: Path) -> None:
        path = tmp_path / "audit.jsonl"
        async with open_actor_system("t", faults=True) as system:
            ref = await _spawn(system, AuditConfig(path=path))
            n = 0
            for _ in range(3):
                for _ in range(4):
                    await ref.ask(AppendReceipt(receipt=receipt(n)), timeout=ASK_S)
                    n += 1
                system.faults.crash("/t/audit")
                # The ref stays valid across the restart; asks wait for the new incarnation.
            await ref.ask(AppendReceipt(receipt=receipt(n)), timeout=ASK_S)
        report = verify_audit(path)
        assert report.ok, report.problem
        assert report.kinds[RECEIPT_KIND] == 13
        assert report.kinds[OPENED_KIND] == 4

    async def test_graceful_stop_writes_what_is_queued(self, tmp_path: Path) -> None:
        path = tmp_path / "audit.jsonl"
        async with open_actor_system("t") as system:
            ref = await _spawn(system, AuditConfig(path=path))
            for n in range(50):
                await ref.send(AppendRecord(kind="x.queued", payload={"n": n}))
        report = verify_audit(path)
        assert report.ok
        assert report.kinds["x.queued"] == 50
        assert _records(path)[-1]["kind"] == CHECKPOINT_KIND

    async def test_full_mailbox_makes_senders_wait(self, tmp_path: Path) -> None:
        path = tmp_path / "audit.jsonl"
        async with open_actor_system("t", faults=True) as system:
            ref = await _spawn(system, AuditConfig(path=path))
            system.faults.slow("/t/audit", 0.05)
            sent = 0

            async def flood() -> None:
                nonlocal sent
                for n in range(AUDIT_MAILBOX_CAPACITY + 20):
                    await ref.send(AppendRecord(kind="x.flood", payload={"n": n}))
                    sent += 1

            async with trio.open_nursery() as nursery:
                nursery.start_soon(flood)
                with trio.fail_after(5):
                    while sent < AUDIT_MAILBOX_CAPACITY:
                        await trio.sleep(0.01)
                await trio.sleep(0.1)
                # The writer is slow: the flood is held at the mailbox's capacity, not queued.
                assert sent <= AUDIT_MAILBOX_CAPACITY + 3
                system.faults.clear("/t/audit")
        assert verify_audit(path).kinds["x.flood"] == AUDIT_MAILBOX_CAPACITY + 20

    async def test_time_based_fsync_and_checkpoint(self, tmp_path: Path) -> None:
        path = tmp_path / "audit.jsonl"
        fsync = FsyncPolicy(every_records=None, every_s=0.05)
        config = AuditConfig(path=path, fsync=fsync, checkpoint_every_s=0.05)
        async with open_actor_system("t") as system:
            ref = await _spawn(system, config)
            await ref.ask(AppendReceipt(receipt=receipt(1)), timeout=ASK_S)
            with trio.fail_after(5):
                while _records(path)[-1]["kind"] != CHECKPOINT_KIND:
                    await trio.sleep(0.02)
        assert verify_audit(path).ok

    async def test_writer_fails_to_start_on_a_corrupt_file(self, tmp_path: Path) -> None:
        path = tmp_path / "audit.jsonl"
        path.write_bytes(b'{"not":"a record"}\n')
        async with open_actor_system("t") as system:
            with pytest.raises(Exception) as caught:  # noqa: PT011 (the runtime wraps it)
                await _spawn(system, AuditConfig(path=path))
            assert "AuditCorrupt" in repr(caught.value) or isinstance(caught.value, AuditCorrupt)


WRITER_SCRIPT = textwrap.dedent(
    """
    import sys, itertools
    from actors.audit import AuditFile, FsyncPolicy, RECEIPT_KIND
    audit = AuditFile.open(sys.argv[1], fsync=FsyncPolicy(every_records=None), writer="child")
    payload = {"blob": "x" * 4000}
    print("ready", flush=True)
    for n in itertools.count():
        audit.append([("x.load", {**payload, "n": n}, "2026-01-01T00:00:00Z")])
    """
)


class TestProcessCrash:
    """A writer process killed with SIGKILL mid-stream leaves a file that resumes and verifies."""

    async def test_sigkill_then_resume(self, tmp_path: Path) -> None:
        path = tmp_path / "audit.jsonl"
        root = str(Path(__file__).parents[2])
        for round_ in range(2):
            with trio.fail_after(20):
                child = await trio.lowlevel.open_process(
                    [sys.executable, "-c", WRITER_SCRIPT, str(path)],
                    stdout=subprocess.PIPE,
                    cwd=root,
                )
                assert child.stdout is not None
                try:
                    seen = b""
                    while b"\n" not in seen:
                        chunk = await child.stdout.receive_some()
                        assert chunk, "the writer exited before it was ready"
                        seen += chunk
                    assert seen == b"ready\n"
                    await trio.sleep(0.2 + 0.1 * round_)
                finally:
                    child.send_signal(signal.SIGKILL)
                    await child.wait()
                    await child.stdout.aclose()
            audit = AuditFile.open(path, fsync=FsyncPolicy(), writer=f"after-{round_}")
            audit.close()
        report = verify_audit(path, check_schema=False)
        assert report.ok, report.problem
        assert report.kinds[OPENED_KIND] == 4
        assert report.kinds["x.load"] > 10
