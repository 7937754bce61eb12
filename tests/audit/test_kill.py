"""``kill -9`` in the middle of a burst of writes: the file verifies up to its last complete
record, holds every record that was acknowledged, and a new writer carries on from it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from actors.audit import AuditFile, CheckpointSigner, FsyncPolicy, load_public_keys, verify_audit
from actors.relay import generate_signing_key, save_private_key, save_public_key

REPO = Path(__file__).resolve().parents[2]
#: Acknowledged records to see before the kill.
ACKED_BEFORE_KILL = 2000


class TestKillNine:
    """A writer killed mid-burst leaves a valid chain; nothing acknowledged is missing."""

    def test_kill_during_a_burst(self, tmp_path: Path) -> None:
        key = generate_signing_key()
        private, public = tmp_path / "audit.key", tmp_path / "audit.pub"
        save_private_key(key, private)
        save_public_key(key.public_key(), public)
        path = tmp_path / "audit.jsonl"
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.audit.burst_writer", str(path), str(private)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        acked = []
        try:
            assert process.stdout is not None
            for line in process.stdout:
                acked.append(int(line.split()[1]))
                if len(acked) >= ACKED_BEFORE_KILL:
                    process.send_signal(signal.SIGKILL)  # mid-burst: 16 writers still asking
                    break
            rest, err = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        assert process.returncode == -signal.SIGKILL, err.decode()[-2000:]
        acked += [
            int(line.split()[1]) for line in rest.decode().splitlines() if line.startswith("acked")
        ]
        keys = load_public_keys([public])
        report = verify_audit(path, keys=keys)
        data = path.read_bytes()
        complete = data[: data.rfind(b"\n") + 1].count(b"\n")
        if report.problem is not None:
            # Only a last line cut short by the kill may be wrong; everything before verifies.
            assert not data.endswith(b"\n")
            assert "not terminated" in report.problem.reason
            assert report.problem.line == complete + 1
        assert report.records == complete
        seqs = {json.loads(line)["seq"] for line in data.splitlines()[:complete]}
        assert set(acked) <= seqs, "an acknowledged record is missing"
        assert report.checkpoints >= 1
        assert report.signed_through is not None
        # Reopened, the chain goes on: the torn tail (if any) is cut and recorded, and the
        # closing checkpoint signs the records the killed writer left unsigned.
        audit = AuditFile.open(
            path, fsync=FsyncPolicy(), writer="after-kill", signer=CheckpointSigner(key)
        )
        audit.close()
        after = verify_audit(path, keys=keys)
        assert after.ok, after.problem
        assert after.unsigned_tail == 0
        assert after.records >= complete + 2
