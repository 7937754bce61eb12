"""Proofs that one record is in the audit: the record, its Merkle path, the signed checkpoint.

``make_proof`` reads the file (checking the chain as it goes) and returns what a third
party needs to check one record without seeing any other: the record itself, its place in
the tree of its checkpoint's segment, the sibling hashes up to that tree's root, and the
checkpoint that signs the root. ``check_proof`` is that third party's check.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ._chain import BadRecord, Chain, parse_line
from ._digest import DIGEST_PREFIX, canonical_digest, canonical_json
from ._merkle import audit_path, root_from_path
from ._records import CHECKPOINT_KIND
from ._signing import PublicKeys, checkpoint_problem

PROOF_FORMAT = "zl.audit.proof.v1"


class ProofError(ValueError):
    """No proof can be made: the record is not there, not covered yet, or the file is bad."""


def _matches(record: Mapping[str, Any], wanted: str) -> bool:
    payload = record["payload"]
    if wanted.startswith("seq:"):
        return str(record["seq"]) == wanted[4:]
    return wanted in (payload.get("receipt_id"), payload.get("audit_id"))


def _raw(digest: str) -> bytes:
    return bytes.fromhex(digest.removeprefix(DIGEST_PREFIX))


def make_proof(lines: Iterable[bytes], record_id: str) -> dict[str, Any]:
    """The proof for the record named ``record_id`` (a receipt id, a turn's audit id, or
    ``seq:N``), against the first checkpoint after it.

    Raises:
        ProofError: no such record, no checkpoint after it yet, or the chain is broken.
    """
    chain = Chain()
    segment: list[bytes] = []
    target: dict[str, Any] | None = None
    index = 0
    for number, line in enumerate(lines, start=1):
        try:
            record = parse_line(line)
            chain.follow(record)
        except BadRecord as exc:
            raise ProofError(f"line {number}: {exc}") from None
        if record["kind"] == CHECKPOINT_KIND:
            if target is not None:
                return {
                    "format": PROOF_FORMAT,
                    "record": target,
                    "leaf_index": index,
                    "tree_size": len(segment),
                    "path": [DIGEST_PREFIX + h.hex() for h in audit_path(index, segment)],
                    "checkpoint": record,
                }
            segment = []
            continue
        if target is None and _matches(record, record_id):
            target, index = record, len(segment)
        segment.append(_raw(record["hash"]))
    if target is None:
        raise ProofError(f"no record {record_id!r} in the file")
    raise ProofError(
        f"record {target['seq']} is not covered by a checkpoint yet (the writer checkpoints "
        "every N records, every T seconds and when it closes): try again later"
    )


def check_proof(proof: Mapping[str, Any], keys: PublicKeys) -> str | None:
    """What is wrong with ``proof`` (from ``make_proof``), or None if it holds: the record's
    own hash, its path to the checkpoint's Merkle root, and the checkpoint's signature."""
    try:
        if proof.get("format") != PROOF_FORMAT:
            return f"not a {PROOF_FORMAT} proof"
        record, checkpoint = dict(proof["record"]), dict(proof["checkpoint"])
        for name, item in (("record", record), ("checkpoint", checkpoint)):
            body = {key: value for key, value in item.items() if key != "hash"}
            if canonical_digest(body) != item["hash"]:
                return f"the {name}'s hash does not match its content"
        payload = checkpoint["payload"]
        if checkpoint["kind"] != CHECKPOINT_KIND or "merkle_root" not in payload:
            return "the checkpoint is not a checkpoint with a Merkle root"
        first, size, index = payload["first_seq"], proof["tree_size"], proof["leaf_index"]
        if size != checkpoint["seq"] - first or index != record["seq"] - first:
            return "the record's place does not fit the checkpoint's segment"
        path = [_raw(h) for h in proof["path"]]
        root = root_from_path(index, size, _raw(record["hash"]), path)
        if root is None or DIGEST_PREFIX + root.hex() != payload["merkle_root"]:
            return "the path does not lead to the checkpoint's Merkle root"
        canonical_json(record)  # the record has a canonical form (it is a line of the file)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return f"malformed proof: {exc}"
    return checkpoint_problem(checkpoint, keys)
