"""The hash chain: how records are sealed into lines, and how lines are checked.

Every line of an audit file is one record, written as RFC 8785 canonical JSON::

    {"hash":…,"kind":…,"at":…,"payload":{…},"prev":…,"seq":N,"v":1}

``hash`` is the canonical digest of the record without ``hash``; ``prev`` is the ``hash`` of
the record before it (``GENESIS`` for the first) and ``seq`` counts from 0. Because a line
must be byte for byte the canonical form of what it holds, any change to any byte is either
unparseable, not canonical, or changes a hash; removing, reordering or inserting lines
breaks ``seq`` or ``prev``. Only cutting whole records off the end leaves a valid chain:
that is what checkpoints are for (an ``Anchor`` kept outside the file).

Checkpoint records (kind ``audit.checkpoint``) carry ``records`` (their own ``seq``),
``prev_checkpoint``, how many records of each kind came since the previous checkpoint,
``first_seq`` and ``merkle_root`` (RFC 6962, over the hashes of the records since the
previous checkpoint: ``zl audit prove`` shows one record's path to it). A writer with a
signing key adds ``key_id`` and an Ed25519 ``signature`` over the checkpoint (everything
but the signature and the hash), so the chain head, the count and the time are signed:
a forger who edits a record and re-computes every hash after it ("re-chains") cannot make
the next signature verify. A writer resumes from the state right after the last
checkpoint, reading the file back only as far as that.

Pure logic: no I/O, no Trio.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from actors.strict_json import StrictJsonError, loads

from ._digest import DIGEST_PREFIX, GENESIS, canonical_digest, canonical_json
from ._errors import NotCanonical
from ._merkle import merkle_root
from ._records import CHECKPOINT_KIND, valid_kind
from ._signing import SIGNATURE_FIELDS, CheckpointSigner, PublicKeys, checkpoint_problem

RECORD_VERSION = 1
_FIELDS = frozenset({"v", "seq", "kind", "at", "prev", "payload", "hash"})


class BadRecord(ValueError):
    """One line is not a valid record, or does not follow the one before it."""


@attrs.frozen(kw_only=True)
class Anchor:
    """A record known from outside the file: its ``seq`` and ``hash``."""

    seq: int = attrs.field(validator=attrs.validators.ge(0))
    hash: str

    def __str__(self) -> str:
        return f"{self.seq}:{self.hash}"

    @classmethod
    def parse(cls, text: str) -> Anchor:
        """Read ``SEQ:sha256:HEX`` (as ``str(anchor)`` writes it).

        Raises:
            ValueError: not in that form.
        """
        seq, sep, digest = text.partition(":")
        if not sep or not seq.isdigit() or not digest.startswith("sha256:"):
            raise ValueError(f"an anchor is SEQ:sha256:HEX, not {text!r}")
        return cls(seq=int(seq), hash=digest)


@attrs.frozen(kw_only=True)
class Sealed:
    """A record sealed into the chain: its place, its hash and the exact line to write."""

    seq: int
    hash: str
    kind: str
    line: bytes


class Chain:
    """The chain's state: the next ``seq``, the last ``hash``, what came since the checkpoint.

    ``seal`` makes the next record; ``follow`` checks that a record read back is the next
    one. The writer and the verifier share this class, so they cannot disagree.
    """

    __slots__ = ("last_checkpoint", "next_seq", "prev", "segment", "since_checkpoint")

    def __init__(
        self,
        *,
        next_seq: int = 0,
        prev: str = GENESIS,
        last_checkpoint: int | None = None,
        since_checkpoint: Mapping[str, int] | None = None,
        segment: list[bytes] | None = None,
    ) -> None:
        self.next_seq = next_seq
        self.prev = prev
        self.last_checkpoint = last_checkpoint
        self.since_checkpoint: Counter[str] = Counter(since_checkpoint or {})
        #: The digests of the records since the last checkpoint (its Merkle tree's leaves).
        self.segment: list[bytes] = list(segment or [])

    def copy(self) -> Chain:
        return Chain(
            next_seq=self.next_seq,
            prev=self.prev,
            last_checkpoint=self.last_checkpoint,
            since_checkpoint=self.since_checkpoint,
            segment=self.segment,
        )

    @classmethod
    def after_checkpoint(cls, record: Mapping[str, Any]) -> Chain:
        """The state just after ``record``, a parsed checkpoint (a writer resumes here).

        Raises:
            BadRecord: it is not a checkpoint.
        """
        if record["kind"] != CHECKPOINT_KIND:
            raise BadRecord(f"record {record['seq']} is not a checkpoint")
        return cls(next_seq=record["seq"] + 1, prev=record["hash"], last_checkpoint=record["seq"])

    @classmethod
    def before_checkpoint(cls, record: Mapping[str, Any]) -> Chain:
        """The state just before ``record``, a parsed checkpoint (see ``parse_line``).

        Raises:
            BadRecord: it is not a well-formed checkpoint.
        """
        if record["kind"] != CHECKPOINT_KIND:
            raise BadRecord(f"record {record['seq']} is not a checkpoint")
        payload = record["payload"]
        try:
            kinds = dict(payload["kinds"])
            last = payload["prev_checkpoint"]
        except (KeyError, TypeError, ValueError) as exc:
            raise BadRecord(f"checkpoint {record['seq']} has a malformed payload") from exc
        return cls(
            next_seq=record["seq"],
            prev=record["prev"],
            last_checkpoint=last,
            since_checkpoint=kinds,
        )

    @property
    def head(self) -> Anchor | None:
        """The last record so far, or None before the first."""
        return None if self.next_seq == 0 else Anchor(seq=self.next_seq - 1, hash=self.prev)

    def checkpoint_payload(self) -> dict[str, Any]:
        """What a checkpoint written now must carry (before its signature)."""
        return {
            "records": self.next_seq,
            "prev_checkpoint": self.last_checkpoint,
            "kinds": dict(sorted(self.since_checkpoint.items())),
            "first_seq": self.next_seq - len(self.segment),
            "merkle_root": DIGEST_PREFIX + merkle_root(self.segment).hex(),
        }

    def _expected(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        expected = self.checkpoint_payload()
        if "merkle_root" not in payload:  # written before checkpoints had a tree
            del expected["first_seq"], expected["merkle_root"]
        return expected

    def seal(
        self,
        kind: str,
        payload: Mapping[str, Any],
        at: str,
        *,
        signer: CheckpointSigner | None = None,
    ) -> Sealed:
        """Make the next record and advance the chain; ``signer`` signs a checkpoint.

        Raises:
            ValueError: ``kind`` is not a dotted lower-case name.
            NotCanonical: the payload has no canonical JSON form.
        """
        if not valid_kind(kind):
            raise ValueError(f"record kind {kind!r} is not a dotted lower-case name")
        body: dict[str, Any] = {
            "v": RECORD_VERSION,
            "seq": self.next_seq,
            "kind": kind,
            "at": at,
            "prev": self.prev,
            "payload": payload,
        }
        if signer is not None and kind == CHECKPOINT_KIND:
            body["payload"] = signer.signed(body)
        digest = canonical_digest(body)
        body["hash"] = digest
        line = canonical_json(body) + b"\n"
        self._advance(kind, body["seq"], digest)
        return Sealed(seq=body["seq"], hash=digest, kind=kind, line=line)

    def follow(self, record: Mapping[str, Any]) -> None:
        """Check that ``record`` (from ``parse_line``) is the next one, and advance.

        Raises:
            BadRecord: wrong ``seq`` or ``prev``, or a checkpoint that does not match.
        """
        seq = record["seq"]
        if seq != self.next_seq:
            raise BadRecord(f"expected seq {self.next_seq}, found {seq}")
        if record["prev"] != self.prev:
            raise BadRecord(f"record {seq}: prev does not match the hash of the record before")
        if record["kind"] == CHECKPOINT_KIND:
            payload = record["payload"]
            unsigned = {k: v for k, v in payload.items() if k not in SIGNATURE_FIELDS}
            if unsigned != self._expected(payload):
                raise BadRecord(f"checkpoint {seq} does not match the records before it")
        self._advance(record["kind"], seq, record["hash"])

    def _advance(self, kind: str, seq: int, digest: str) -> None:
        self.next_seq = seq + 1
        self.prev = digest
        if kind == CHECKPOINT_KIND:
            self.last_checkpoint = seq
            self.since_checkpoint.clear()
            self.segment.clear()
        else:
            self.since_checkpoint[kind] += 1
            self.segment.append(bytes.fromhex(digest.removeprefix(DIGEST_PREFIX)))


def parse_line(line: bytes) -> dict[str, Any]:
    """Parse one line and check it on its own: shape, canonical form, own hash.

    Args:
        line: the line's bytes, with its trailing ``\\n``.

    Returns:
        The record (with ``hash``).

    Raises:
        BadRecord: a torn line, not JSON, not canonical, a wrong field or a wrong hash.
    """
    if not line.endswith(b"\n"):
        raise BadRecord("the line is not terminated (a torn write?)")
    try:
        # Strictly (a tampered file is outside input too): nesting and numbers bounded, so
        # nothing below can fail on what the line holds.
        record = loads(line)
    except StrictJsonError as exc:
        raise BadRecord(f"not JSON: {exc}") from exc
    if not isinstance(record, dict) or set(record) != _FIELDS:
        raise BadRecord(f"not a record: fields must be {sorted(_FIELDS)}")
    _check_types(record)
    try:
        if canonical_json(record) + b"\n" != line:
            raise BadRecord(f"record {record['seq']} is not in canonical form")
        body = {key: value for key, value in record.items() if key != "hash"}
        if canonical_digest(body) != record["hash"]:
            raise BadRecord(f"record {record['seq']}: hash does not match its content")
    except NotCanonical as exc:
        raise BadRecord(f"record {record['seq']}: {exc}") from exc
    return record


def _check_types(record: dict[str, Any]) -> None:
    if record["v"] != RECORD_VERSION:
        raise BadRecord(f"unknown record version {record['v']!r}")
    seq = record["seq"]
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise BadRecord(f"bad seq {seq!r}")
    if not isinstance(record["kind"], str) or not valid_kind(record["kind"]):
        raise BadRecord(f"record {seq}: bad kind {record['kind']!r}")
    for key in ("at", "prev", "hash"):
        if not isinstance(record[key], str):
            raise BadRecord(f"record {seq}: {key} is not a string")
    if not isinstance(record["payload"], dict):
        raise BadRecord(f"record {seq}: payload is not an object")


@attrs.frozen(kw_only=True)
class Problem:
    """The first thing wrong with a file: where (1-based line, seq if known) and what."""

    line: int
    seq: int | None
    reason: str

    def __str__(self) -> str:
        where = f"line {self.line}" + ("" if self.seq is None else f" (seq {self.seq})")
        return f"{where}: {self.reason}"


@attrs.frozen(kw_only=True)
class VerifyReport:
    """What ``verify_lines`` found: records that checked out, kinds, head, first problem.

    With keys, ``signed_through`` is the seq of the last checkpoint whose signature
    verified, and ``unsigned_tail`` the records after it that no signature covers yet.
    """

    records: int
    kinds: Mapping[str, int]
    head: Anchor | None
    problem: Problem | None
    checkpoints: int = 0
    signed_through: int | None = None
    unsigned_tail: int = 0

    @property
    def ok(self) -> bool:
        return self.problem is None


def verify_lines(
    lines: Iterable[bytes],
    *,
    anchor: Anchor | None = None,
    check_record: Callable[[Mapping[str, Any]], str | None] | None = None,
    keys: PublicKeys | None = None,
) -> VerifyReport:
    """Check a whole audit file, line by line, and report the first problem.

    Args:
        lines: the file's lines, each with its ``\\n`` (the last may lack it: a torn write).
        anchor: a record known from outside (a published checkpoint); the file must hold
            it, which also catches records cut off the end after it.
        check_record: optional ``callable(record) -> str | None`` for payload checks
            (a schema); a returned string is the problem.
        keys: the writers' public keys by key id; every checkpoint must then be signed by
            one of them, and the report says how far the signatures reach.

    Returns:
        The report; ``report.ok`` is True when every line checked out.
    """
    chain = Chain()
    kinds: Counter[str] = Counter()
    number = 0
    anchor_seen = False
    checkpoints = 0
    signed_through: int | None = None

    def report(problem: Problem | None, records: int) -> VerifyReport:
        last = -1 if signed_through is None else signed_through
        tail = 0 if keys is None or head is None else head.seq - last
        return VerifyReport(
            records=records,
            kinds=kinds,
            head=head,
            problem=problem,
            checkpoints=checkpoints,
            signed_through=signed_through,
            unsigned_tail=tail,
        )

    def stop(line: int, seq: int | None, reason: str) -> VerifyReport:
        return report(Problem(line=line, seq=seq, reason=reason), sum(kinds.values()))

    head = chain.head
    for number, line in enumerate(lines, start=1):
        seq: int | None = None
        try:
            record = parse_line(line)
            seq = record["seq"]
            chain.follow(record)
            reason = None if check_record is None else check_record(record)
            if reason is None and keys is not None and record["kind"] == CHECKPOINT_KIND:
                reason = checkpoint_problem(record, keys)
        except BadRecord as exc:
            reason = str(exc)
            seq = seq if seq is not None else _seq_of(line)
        if reason is not None:
            return stop(number, seq, reason)
        head = chain.head
        kinds[record["kind"]] += 1
        if record["kind"] == CHECKPOINT_KIND:
            checkpoints += 1
            if keys is not None:
                signed_through = seq
        if anchor is not None and seq == anchor.seq:
            anchor_seen = True
            if record["hash"] != anchor.hash:
                return stop(number, seq, "hash differs from the anchor")
    if anchor is not None and not anchor_seen:
        reason = f"the file ends before the anchor's record {anchor.seq} (records cut off?)"
        return stop(number + 1, None, reason)
    return report(None, number)


def _seq_of(line: bytes) -> int | None:
    """The ``seq`` a bad line claims, if it can be read at all (to say where it is)."""
    try:
        seq = loads(line)["seq"]
    except (StrictJsonError, TypeError, KeyError):
        return None
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else None
