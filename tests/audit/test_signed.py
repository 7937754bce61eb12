"""Signed checkpoints: ``zl audit verify --key`` catches every kind of tampering, including a
forger who re-computes the hash chain; ``zl audit prove`` gives a third party one record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.audit import (
    CHECKPOINT_KIND,
    AuditFile,
    Chain,
    CheckpointSigner,
    FsyncPolicy,
    audit_main,
    check_proof,
    load_public_keys,
    make_proof,
    verify_audit,
)
from actors.audit._merkle import audit_path, merkle_root, root_from_path
from actors.audit._signing import SIGNATURE_FIELDS
from actors.relay import generate_signing_key, save_public_key

from ._support import TIMING, receipt, turn

RECORDS = 23
CHECKPOINT_EVERY = 5


class Keys:
    def __init__(self, tmp: Path) -> None:
        self.key = generate_signing_key()
        self.signer = CheckpointSigner(self.key)
        self.public = tmp / "audit.pub"
        save_public_key(self.key.public_key(), self.public)


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    return Keys(tmp_path)


def write(path: Path, keys: Keys, *, close: bool = True, records: int = RECORDS) -> list[str]:
    """A signed audit file: receipts and turns, a checkpoint every few records; the receipt ids."""
    audit = AuditFile.open(
        path, fsync=FsyncPolicy(every_records=None), writer="test", signer=keys.signer
    )
    ids = []
    for n in range(records):
        if n % 3 == 2:
            audit.append([("turn.summary", turn(n).to_payload(), TIMING.started_at)])
        else:
            item = receipt(n)
            ids.append(item.receipt_id)
            audit.append([("tool.receipt", item.to_payload(), TIMING.started_at)])
        if sum(audit.chain.since_checkpoint.values()) >= CHECKPOINT_EVERY:
            audit.checkpoint()
    if close:
        audit.close()
    else:
        audit.close(checkpoint=False)
    return ids


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def rechain(items: list[dict[str, Any]]) -> bytes:
    """Write ``items`` back with every hash, count and Merkle root re-computed, as a forger
    who has the file but not the key would (old signatures are kept: they cannot be made)."""
    chain = Chain()
    out = b""
    for item in items:
        payload = item["payload"]
        if item["kind"] == CHECKPOINT_KIND:
            signature = {k: v for k, v in payload.items() if k in SIGNATURE_FIELDS}
            payload = {**chain.checkpoint_payload(), **signature}
        out += chain.seal(item["kind"], payload, item["at"]).line
    return out


def verify(path: Path, keys: Keys, *extra: str) -> int:
    return audit_main(["verify", str(path), "--key", str(keys.public), *extra])


class TestSignedCheckpoints:
    """Every N records (and at close) a checkpoint is signed; the verifier checks each."""

    def test_a_clean_file_verifies_with_the_key(
        self, tmp_path: Path, keys: Keys, capsys: pytest.CaptureFixture[str]
    ) -> None:
        path = tmp_path / "audit.jsonl"
        write(path, keys)
        assert verify(path, keys) == 0
        out = capsys.readouterr().out
        assert out.startswith("OK ")
        assert "every record is covered by a signature" in out
        checkpoints = [r for r in records(path) if r["kind"] == CHECKPOINT_KIND]
        assert len(checkpoints) >= RECORDS // CHECKPOINT_EVERY
        for checkpoint in checkpoints:
            payload = checkpoint["payload"]
            assert payload["key_id"] == keys.signer.key_id
            assert payload["records"] == checkpoint["seq"]
            assert payload["merkle_root"].startswith("sha256:")
        report = verify_audit(path, keys=load_public_keys([keys.public]))
        assert report.ok
        assert report.unsigned_tail == 0
        assert report.signed_through == checkpoints[-1]["seq"]

    def test_edited_record(self, tmp_path: Path, keys: Keys) -> None:
        path = tmp_path / "audit.jsonl"
        write(path, keys)
        data = path.read_bytes().replace(b'"outcome":"ok"', b'"outcome":"no"', 1)
        path.write_bytes(data)
        assert verify(path, keys) == 1

    def test_edited_record_rechained(
        self, tmp_path: Path, keys: Keys, capsys: pytest.CaptureFixture[str]
    ) -> None:
        path = tmp_path / "audit.jsonl"
        write(path, keys)
        items = records(path)
        target = next(i for i, r in enumerate(items) if r["kind"] == "tool.receipt")
        items[target]["payload"]["outcome"] = "error"
        items[target]["payload"]["error_code"] = "tool.failed"
        path.write_bytes(rechain(items))
        # The hash chain alone is fooled: every hash matches the (forged) content.
        assert verify_audit(path).ok
        assert verify(path, keys) == 1
        assert "signature does not verify" in capsys.readouterr().out

    @pytest.mark.parametrize("change", ["delete", "reorder", "insert"])
    def test_deleted_reordered_inserted(self, tmp_path: Path, keys: Keys, change: str) -> None:
        path = tmp_path / "audit.jsonl"
        write(path, keys)
        lines = path.read_bytes().splitlines(keepends=True)
        if change == "delete":
            del lines[3]
        elif change == "reorder":
            lines[3], lines[4] = lines[4], lines[3]
        else:
            lines.insert(3, lines[2])
        path.write_bytes(b"".join(lines))
        assert verify(path, keys) == 1
        # ... and re-chained, the signatures still give it away.
        items = [json.loads(line) for line in lines]
        path.write_bytes(rechain(items))
        assert verify(path, keys) == 1

    def test_truncated_record(
        self, tmp_path: Path, keys: Keys, capsys: pytest.CaptureFixture[str]
    ) -> None:
        path = tmp_path / "audit.jsonl"
        write(path, keys)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) - 40])
        assert verify(path, keys) == 1
        assert "not terminated" in capsys.readouterr().out

    def test_truncated_file(
        self, tmp_path: Path, keys: Keys, capsys: pytest.CaptureFixture[str]
    ) -> None:
        path = tmp_path / "audit.jsonl"
        write(path, keys)
        lines = path.read_bytes().splitlines(keepends=True)
        last = json.loads(lines[-1])
        anchor = f"{last['seq']}:{last['hash']}"
        # Cut in the middle of a segment: the records left at the end are not signed.
        path.write_bytes(b"".join(lines[:-3]))
        assert verify(path, keys) == 1
        assert "not covered by any signature" in capsys.readouterr().out
        # Cut at a checkpoint: the file is shorter but whole; a published anchor catches it.
        cut = max(
            i for i, line in enumerate(lines[:-1]) if json.loads(line)["kind"] == CHECKPOINT_KIND
        )
        path.write_bytes(b"".join(lines[: cut + 1]))
        assert verify(path, keys) == 0
        assert verify(path, keys, "--anchor", anchor) == 1

    def test_rechained_forgery_after_the_last_checkpoint(
        self, tmp_path: Path, keys: Keys, capsys: pytest.CaptureFixture[str]
    ) -> None:
        path = tmp_path / "audit.jsonl"
        write(path, keys)
        items = records(path)
        # Records forged after the last (closing) checkpoint, perfectly chained.
        forged = [dict(items[1]), dict(items[2])]
        path.write_bytes(rechain(items + forged))
        assert verify_audit(path).ok  # the chain is intact
        assert verify(path, keys) == 1
        assert "2 records after the last signed checkpoint" in capsys.readouterr().out

    def test_a_checkpoint_signed_by_another_key(
        self, tmp_path: Path, keys: Keys, capsys: pytest.CaptureFixture[str]
    ) -> None:
        path = tmp_path / "audit.jsonl"
        (tmp_path / "other").mkdir()
        write(path, Keys(tmp_path / "other"))
        assert verify(path, keys) == 1
        assert "unknown key" in capsys.readouterr().out

    def test_unsigned_checkpoints_fail_with_a_key(
        self, tmp_path: Path, keys: Keys, capsys: pytest.CaptureFixture[str]
    ) -> None:
        path = tmp_path / "audit.jsonl"
        audit = AuditFile.open(path, fsync=FsyncPolicy(), writer="test")
        audit.append([("tool.receipt", receipt(1).to_payload(), TIMING.started_at)])
        audit.close()
        assert audit_main(["verify", str(path)]) == 0
        assert verify(path, keys) == 1
        assert "is not signed" in capsys.readouterr().out

    def test_a_live_file_has_an_unsigned_tail(self, tmp_path: Path, keys: Keys) -> None:
        path = tmp_path / "audit.jsonl"
        write(path, keys, close=False)
        assert verify(path, keys) == 1
        assert verify(path, keys, "--allow-unsigned-tail") == 0


class TestProve:
    """``zl audit prove`` hands a third party one record, its path and a signed checkpoint."""

    def test_prove_and_check(
        self, tmp_path: Path, keys: Keys, capsys: pytest.CaptureFixture[str]
    ) -> None:
        path = tmp_path / "audit.jsonl"
        ids = write(path, keys)
        for receipt_id in (ids[0], ids[len(ids) // 2], ids[-1]):
            assert audit_main(["prove", str(path), receipt_id]) == 0
            proof = json.loads(capsys.readouterr().out)
            assert proof["record"]["payload"]["receipt_id"] == receipt_id
            # The proof names no other record's content.
            others = [i for i in ids if i != receipt_id]
            assert not any(other in json.dumps(proof) for other in others)
            proof_file = tmp_path / "proof.json"
            proof_file.write_text(json.dumps(proof))
            assert audit_main(["check-proof", str(proof_file), "--key", str(keys.public)]) == 0
            assert capsys.readouterr().out.startswith("OK")

    def test_a_tampered_proof_fails(self, tmp_path: Path, keys: Keys) -> None:
        path = tmp_path / "audit.jsonl"
        ids = write(path, keys)
        proof = make_proof(path.read_bytes().splitlines(keepends=True), ids[1])
        public = load_public_keys([keys.public])
        assert check_proof(proof, public) is None
        edited = json.loads(json.dumps(proof))
        edited["record"]["payload"]["outcome"] = "error"
        assert "hash does not match" in (check_proof(edited, public) or "")
        moved = json.loads(json.dumps(proof))
        moved["leaf_index"] = (moved["leaf_index"] + 1) % moved["tree_size"]
        assert check_proof(moved, public) is not None
        (tmp_path / "other").mkdir()
        other = Keys(tmp_path / "other")
        assert "unknown key" in (check_proof(proof, load_public_keys([other.public])) or "")

    def test_a_record_not_yet_covered(
        self, tmp_path: Path, keys: Keys, capsys: pytest.CaptureFixture[str]
    ) -> None:
        path = tmp_path / "audit.jsonl"
        ids = write(path, keys, close=False)
        assert audit_main(["prove", str(path), ids[-1]]) == 1
        assert "not covered by a checkpoint yet" in capsys.readouterr().err
        assert audit_main(["prove", str(path), "rcpt_nope"]) == 1


class TestMerkle:
    """RFC 6962 trees: every leaf's path leads to the root, and nothing else's does."""

    @given(st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=40), st.data())
    def test_paths(self, leaves: list[bytes], data: st.DataObject) -> None:
        index = data.draw(st.integers(0, len(leaves) - 1))
        root = merkle_root(leaves)
        path = audit_path(index, leaves)
        assert root_from_path(index, len(leaves), leaves[index], path) == root
        forged = bytes(32) if leaves[index] != bytes(32) else b"\1" * 32
        assert root_from_path(index, len(leaves), forged, path) != root
