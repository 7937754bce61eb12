"""``zl audit``: verify an audit file, or show its last records."""

from __future__ import annotations

import argparse
import collections
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from actors.strict_json import StrictJsonError, loads

from ._chain import Anchor
from ._file import iter_lines, verify_audit
from ._records import RECEIPT_KIND, TURN_KIND

DEFAULT_TAIL = 10


def audit_main(argv: Sequence[str] | None = None) -> int:
    """``zl audit verify FILE [--anchor SEQ:HASH]`` or ``zl audit tail FILE [-n N]``.

    ``verify`` prints ``OK`` with the record count and head, or ``FAIL`` with the first
    problem (line, seq, reason). ``tail`` prints the last N records, receipts and turn
    summaries on one readable line each.

    Args:
        argv: the arguments after ``audit`` (``sys.argv[1:]`` when None).

    Returns:
        0 when the file verifies (or was shown), 1 when it does not or cannot be read.
        Bad arguments exit with status 2 through argparse.
    """
    parser = argparse.ArgumentParser(prog="zl audit", description="Audit file tools.")
    commands = parser.add_subparsers(dest="command", required=True)
    verify = commands.add_parser("verify", help="check the hash chain, checkpoints and schema")
    verify.add_argument("file", type=Path)
    verify.add_argument(
        "--anchor", type=Anchor.parse, help="SEQ:sha256:HEX of a published checkpoint"
    )
    verify.add_argument("--no-schema", action="store_true", help="skip the JSON Schema check")
    tail = commands.add_parser("tail", help="show the last records")
    tail.add_argument("file", type=Path)
    tail.add_argument("-n", type=int, default=DEFAULT_TAIL, help="default %(default)s")
    args = parser.parse_args(argv)

    try:
        if args.command == "verify":
            report = verify_audit(args.file, anchor=args.anchor, check_schema=not args.no_schema)
            if report.problem is not None:
                print(f"FAIL {args.file}: {report.problem}")
                print(f"  {report.records} records verified before it")
                return 1
            kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(report.kinds.items()))
            print(f"OK {args.file}: {report.records} records ({kinds or 'empty'})")
            if report.head is not None:
                print(f"  head {report.head}")
            return 0
        last = collections.deque(iter_lines(args.file), maxlen=max(args.n, 0))
    except OSError as exc:
        print(f"zl audit: cannot read {args.file}: {exc}", file=sys.stderr)
        return 1
    for line in last:
        print(_render(line))
    return 0


def _render(line: bytes) -> str:
    not_a_record = f"?  (not a record) {line[:80]!r}"
    try:
        record = loads(line)
        seq, kind, at, payload = record["seq"], record["kind"], record["at"], record["payload"]
    except (StrictJsonError, KeyError, TypeError):
        return not_a_record
    if not (isinstance(seq, int) and isinstance(kind, str) and isinstance(at, str)):
        return not_a_record
    return f"{seq:>6} {at} {kind:<16} {_summary(kind, payload)}"


def _summary(kind: str, payload: dict[str, Any]) -> str:
    try:
        if kind == RECEIPT_KIND:
            error = f" {payload['error_code']}" if payload["error_code"] else ""
            cut = " truncated" if payload["truncated"] else ""
            policy = ""
            if payload.get("decision"):
                policy = (
                    f"; policy {payload.get('policy_id') or '-'} r{payload.get('policy_revision')}"
                    f" {payload['decision']} by {payload.get('rule_id') or '-'}"
                )
            return (
                f"{payload['tool']}@{payload['tool_version']} call {payload['call_id']} "
                f"session {payload['session_id']} turn {payload['turn_id']} "
                f"device {payload['device_id'] or '-'}: {payload['outcome']}{error}{cut} "
                f"in {payload['elapsed_ms']} ms{policy}"
            )
        if kind == TURN_KIND:
            usage = payload["usage"]
            return (
                f"session {payload['session_id']} turn {payload['turn_id']}: "
                f"{payload['finish_reason']}, {usage['input_tokens']} in / "
                f"{usage['output_tokens']} out, {payload['tool_calls']} tool calls, "
                f"{payload['elapsed_ms']} ms"
            )
    except (KeyError, TypeError):
        pass
    return json.dumps(payload, sort_keys=True)
