"""Canonical digests, the receipt model and the hash chain, without Trio or files."""

from __future__ import annotations

import json
import math
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.audit import (
    GENESIS,
    RECEIPT_KIND,
    Anchor,
    Caps,
    Chain,
    NotCanonical,
    Outcome,
    ToolReceipt,
    canonical_digest,
    canonical_json,
    record_problem,
    verify_lines,
)
from actors.audit._chain import parse_line

from ._support import TIMING, receipt, sample_lines


class TestCanonicalDigest:
    """RFC 8785 digests: independent of key order and spelling, refuse what JSON cannot say."""

    def test_key_order_and_number_spelling_do_not_matter(self) -> None:
        a = json.loads('{"b": [1.0, 2], "a": {"y": 1e2, "x": "é"}}')
        b = json.loads('{"a": {"x": "\\u00e9", "y": 100}, "b": [1, 2.0]}')
        assert canonical_digest(a) == canonical_digest(b)
        assert canonical_json(a) == '{"a":{"x":"é","y":100},"b":[1,2]}'.encode()

    def test_known_vector(self) -> None:
        # sha256 of the 2 bytes "{}".
        expected = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        assert canonical_digest({}) == expected

    @pytest.mark.parametrize("value", [math.nan, math.inf, 2**60, {1: "x"}, object()])
    def test_refuses_values_without_canonical_form(self, value: object) -> None:
        with pytest.raises(NotCanonical):
            canonical_digest({"v": value})


class TestReceiptModel:
    """Receipts validate their fields and round-trip through their payload."""

    @pytest.mark.parametrize("outcome", list(Outcome))
    def test_round_trip(self, outcome: Outcome) -> None:
        original = receipt(5, outcome=outcome)
        assert ToolReceipt.from_payload(original.to_payload()) == original

    def test_payload_validates_against_the_schema(self) -> None:
        chain = Chain()
        sealed = chain.seal(RECEIPT_KIND, receipt(1).to_payload(), TIMING.started_at)
        assert record_problem(json.loads(sealed.line)) is None

    def test_ok_has_no_error_code_and_others_need_one(self) -> None:
        with pytest.raises(ValueError, match="error_code"):
            ToolReceipt(**{**_fields(receipt(1)), "error_code": "tool.failed"})
        with pytest.raises(ValueError, match="error_code"):
            ToolReceipt(**{**_fields(receipt(1)), "outcome": Outcome.TIMEOUT})

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("error_code", "tool.no_such_code"),
            ("args_digest", "sha256:abc"),
            ("traceparent", "00-xyz"),
            ("call_id", ""),
        ],
    )
    def test_bad_field_is_refused(self, field: str, value: str) -> None:
        fields = {**_fields(receipt(1, outcome=Outcome.ERROR)), field: value}
        with pytest.raises(ValueError, match=field):
            ToolReceipt(**fields)

    def test_caps_wire_names(self) -> None:
        assert Caps(timeout_ms=5, max_bytes=9).to_json() == {"timeoutMs": 5, "maxBytes": 9}


def _fields(value: ToolReceipt) -> dict[str, Any]:
    return attrs.asdict(value, recurse=False)


class TestChain:
    """Sealed lines verify; each kind of tampering is found at the right line."""

    def test_valid_file_verifies(self) -> None:
        lines = sample_lines()
        report = verify_lines(lines)
        assert report.ok, report.problem
        assert report.records == len(lines)
        assert report.kinds["audit.checkpoint"] == 2
        assert json.loads(lines[0])["prev"] == GENESIS
        assert report.head == Anchor(seq=len(lines) - 1, hash=json.loads(lines[-1])["hash"])

    def test_modified_line(self) -> None:
        lines = sample_lines()
        record = json.loads(lines[4])
        record["payload"]["outcome"] = "error"
        lines[4] = canonical_json(record) + b"\n"
        problem = verify_lines(lines).problem
        assert problem is not None
        assert problem.line == 5
        assert "hash" in problem.reason

    def test_modified_line_with_its_hash_recomputed(self) -> None:
        lines = sample_lines()
        record = json.loads(lines[4])
        record["payload"]["truncated"] = not record["payload"]["truncated"]
        body = {k: v for k, v in record.items() if k != "hash"}
        record["hash"] = canonical_digest(body)
        lines[4] = canonical_json(record) + b"\n"
        problem = verify_lines(lines).problem
        assert problem is not None
        assert problem.line == 6
        assert "prev" in problem.reason

    def test_removed_line(self) -> None:
        lines = sample_lines()
        del lines[3]
        problem = verify_lines(lines).problem
        assert problem is not None
        assert problem.line == 4
        assert "expected seq 3" in problem.reason

    def test_removed_first_line(self) -> None:
        problem = verify_lines(sample_lines()[1:]).problem
        assert problem is not None
        assert problem.line == 1

    def test_reordered_lines(self) -> None:
        lines = sample_lines()
        lines[2], lines[3] = lines[3], lines[2]
        problem = verify_lines(lines).problem
        assert problem is not None
        assert problem.line == 3

    def test_inserted_line(self) -> None:
        lines = sample_lines()
        lines.insert(7, lines[6])
        problem = verify_lines(lines).problem
        assert problem is not None
        assert problem.line == 8

    def test_whitespace_change_is_not_canonical(self) -> None:
        lines = sample_lines()
        lines[2] = lines[2].replace(b'":', b'": ', 1)
        problem = verify_lines(lines).problem
        assert problem is not None
        assert problem.line == 3
        assert "canonical" in problem.reason

    def test_torn_last_line(self) -> None:
        lines = sample_lines()
        lines[-1] = lines[-1][:40]
        problem = verify_lines(lines).problem
        assert problem is not None
        assert problem.line == len(lines)
        assert "torn" in problem.reason

    def test_cut_tail_needs_an_anchor(self) -> None:
        lines = sample_lines()
        head = verify_lines(lines).head
        assert head is not None
        assert verify_lines(lines[:-2]).ok  # a chain alone cannot see records cut off its end
        problem = verify_lines(lines[:-2], anchor=head).problem
        assert problem is not None
        assert "ends before the anchor" in problem.reason
        assert verify_lines(lines, anchor=head).ok

    def test_anchor_with_another_hash(self) -> None:
        lines = sample_lines()
        anchor = Anchor(seq=5, hash=GENESIS)
        problem = verify_lines(lines, anchor=anchor).problem
        assert problem is not None
        assert problem.seq == 5

    def test_forged_checkpoint_counts(self) -> None:
        chain = Chain()
        lines = [
            chain.seal(RECEIPT_KIND, receipt(n).to_payload(), "2026-01-01T00:00:00Z").line
            for n in range(3)
        ]
        lines.append(
            chain.seal(
                "audit.checkpoint",
                {"records": 3, "prev_checkpoint": None, "kinds": {"tool.receipt": 2}},
                "2026-01-01T00:00:00Z",
            ).line
        )
        problem = verify_lines(lines).problem
        assert problem is not None
        assert problem.line == 4
        assert "checkpoint" in problem.reason

    def test_anchor_text_round_trip(self) -> None:
        anchor = Anchor(seq=12, hash=GENESIS)
        assert Anchor.parse(str(anchor)) == anchor
        with pytest.raises(ValueError, match="SEQ"):
            Anchor.parse("12-sha256:00")

    def test_seal_refuses_bad_kind(self) -> None:
        with pytest.raises(ValueError, match="kind"):
            Chain().seal("Receipt", {}, TIMING.started_at)

    def test_parse_line_refuses_extra_fields(self) -> None:
        line = sample_lines(1)[0]
        record = json.loads(line)
        record["extra"] = 1
        with pytest.raises(ValueError, match="fields"):
            parse_line(canonical_json(record) + b"\n")


VALID = b"".join(sample_lines(9, checkpoint_every=4))
VALID_LINES = VALID.splitlines(keepends=True)
HEAD = verify_lines(VALID_LINES).head


def _edit(data: bytes, draw: st.DrawFn) -> bytes:
    lines = data.splitlines(keepends=True)
    kind = draw(st.sampled_from(["flip", "delete", "insert", "drop", "swap", "dup", "cut"]))
    if kind == "flip":
        at = draw(st.integers(0, len(data) - 1))
        new = draw(st.integers(0, 255).filter(lambda b: b != data[at]))
        return data[:at] + bytes([new]) + data[at + 1 :]
    if kind == "delete":
        at = draw(st.integers(0, len(data) - 1))
        size = draw(st.integers(1, 40))
        return data[:at] + data[at + size :]
    if kind == "insert":
        at = draw(st.integers(0, len(data)))
        return data[:at] + draw(st.binary(min_size=1, max_size=20)) + data[at:]
    if kind == "drop":
        del lines[draw(st.integers(0, len(lines) - 1))]
    elif kind == "swap" and len(lines) >= 2:
        i, j = draw(st.lists(st.integers(0, len(lines) - 1), min_size=2, max_size=2, unique=True))
        lines[i], lines[j] = lines[j], lines[i]
    elif kind in ("swap", "dup"):
        i = draw(st.integers(0, len(lines) - 1))
        lines.insert(draw(st.integers(0, len(lines))), lines[i])
    else:
        return data[: draw(st.integers(0, len(data) - 1))]
    return b"".join(lines)


@st.composite
def edited_files(draw: st.DrawFn) -> bytes:
    data = VALID
    for _ in range(draw(st.integers(1, 3))):
        if not data:
            break
        data = _edit(data, draw)
    return data


class TestRandomEdits:
    """Any edit of a valid file is detected (a cut at a line end needs the anchor)."""

    @settings(max_examples=300, deadline=None)
    @given(edited_files())
    def test_every_edit_is_detected(self, edited: bytes) -> None:
        if edited == VALID:
            return  # e.g. a line dropped and inserted back where it was
        lines = edited.splitlines(keepends=True)
        assert not verify_lines(lines, anchor=HEAD).ok
        clean_cut = VALID.startswith(edited) and (not edited or edited.endswith(b"\n"))
        if not clean_cut:
            assert not verify_lines(lines).ok
