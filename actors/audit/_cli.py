"""``zl audit``: verify an audit file, prove one record, check a proof, show the last records."""

from __future__ import annotations

import argparse
import collections
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from actors.relay import KeyFileError
from actors.strict_json import StrictJsonError, loads

from ._chain import Anchor, VerifyReport
from ._file import iter_lines, verify_audit
from ._proof import ProofError, check_proof, make_proof
from ._records import RECEIPT_KIND, TURN_KIND
from ._signing import load_public_keys

DEFAULT_TAIL = 10


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zl audit", description="Audit file tools.")
    commands = parser.add_subparsers(dest="command", required=True)
    verify = commands.add_parser(
        "verify", help="check the hash chain, checkpoints, signatures and schema"
    )
    verify.add_argument("file", type=Path)
    verify.add_argument(
        "--key",
        action="append",
        default=[],
        type=Path,
        metavar="PUB",
        help="the writer's Ed25519 public key (PEM; repeat for rotated keys): every "
        "checkpoint must be signed, and every record covered by a signed checkpoint",
    )
    verify.add_argument(
        "--allow-unsigned-tail",
        action="store_true",
        help="with --key, accept records after the last signed checkpoint (a file still "
        "being written, or one whose writer died)",
    )
    verify.add_argument(
        "--anchor", type=Anchor.parse, help="SEQ:sha256:HEX of a published checkpoint"
    )
    verify.add_argument("--no-schema", action="store_true", help="skip the JSON Schema check")
    prove = commands.add_parser(
        "prove", help="print what a third party needs to check one record (JSON)"
    )
    prove.add_argument("file", type=Path)
    prove.add_argument("record_id", help="a receipt id, a turn's audit id, or seq:N")
    check = commands.add_parser("check-proof", help="check a proof made by `zl audit prove`")
    check.add_argument("proof", type=Path, help="the proof (JSON); - reads stdin")
    check.add_argument("--key", action="append", required=True, type=Path, metavar="PUB")
    tail = commands.add_parser("tail", help="show the last records")
    tail.add_argument("file", type=Path)
    tail.add_argument("-n", type=int, default=DEFAULT_TAIL, help="default %(default)s")
    return parser


def audit_main(argv: Sequence[str] | None = None) -> int:
    """``zl audit verify|prove|check-proof|tail``.

    ``verify FILE [--key PUB] [--anchor SEQ:HASH]`` prints ``OK`` with the record count,
    head and how far signatures reach, or ``FAIL`` with the first problem (line, seq,
    reason). ``prove FILE RECORD_ID`` prints a JSON proof of one record against its signed
    checkpoint; ``check-proof PROOF --key PUB`` checks one. ``tail`` prints the last N
    records, receipts and turn records on one readable line each.

    Args:
        argv: the arguments after ``audit`` (``sys.argv[1:]`` when None).

    Returns:
        0 when the file verifies (or was shown, or the proof holds), 1 when it does not or
        cannot be read. Bad arguments exit with status 2 through argparse.
    """
    args = _parser().parse_args(argv)
    try:
        if args.command == "verify":
            return _verify(args)
        if args.command == "prove":
            proof = make_proof(iter_lines(args.file), args.record_id)
            print(json.dumps(proof, indent=2, sort_keys=True))
            return 0
        if args.command == "check-proof":
            text = sys.stdin.read() if str(args.proof) == "-" else args.proof.read_text()
            problem = check_proof(json.loads(text), load_public_keys(args.key))
            if problem is not None:
                print(f"FAIL: {problem}")
                return 1
            print("OK: the record is in the audit, under a checkpoint signed by that key")
            return 0
        last = collections.deque(iter_lines(args.file), maxlen=max(args.n, 0))
    except OSError as exc:
        print(
            f"zl audit: cannot read {exc.filename or args.file}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 1
    except (ProofError, KeyFileError) as exc:
        print(f"zl audit: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"zl audit: not a proof: {exc}", file=sys.stderr)
        return 1
    for line in last:
        print(_render(line))
    return 0


def _verify(args: argparse.Namespace) -> int:
    keys = load_public_keys(args.key) if args.key else None
    report = verify_audit(args.file, anchor=args.anchor, check_schema=not args.no_schema, keys=keys)
    if report.problem is not None:
        print(f"FAIL {args.file}: {report.problem}")
        print(f"  {report.records} records verified before it")
        return 1
    status, signatures = (
        (0, "signatures not checked (give --key PUB)")
        if keys is None
        else _signature_verdict(report, allow_tail=args.allow_unsigned_tail)
    )
    kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(report.kinds.items()))
    verdict = "OK" if status == 0 else "FAIL"
    print(f"{verdict} {args.file}: {report.records} records ({kinds or 'empty'})")
    print(f"  {signatures}")
    if report.head is not None:
        print(f"  head {report.head}")
    return status


def _signature_verdict(report: VerifyReport, *, allow_tail: bool) -> tuple[int, str]:
    """The exit status and the line that says how far the signatures reach."""
    if report.signed_through is None:
        reach = "no signed checkpoint yet"
    else:
        reach = f"{report.checkpoints} checkpoints signed, through seq {report.signed_through}"
    if not report.unsigned_tail:
        return 0, f"{reach}; every record is covered by a signature"
    tail = (
        f"{report.unsigned_tail} records after the last signed checkpoint are not covered by "
        "any signature"
    )
    if allow_tail:
        return 0, f"{reach}; {tail} (allowed: --allow-unsigned-tail)"
    return 1, (
        f"{reach}; {tail}: forged, or written by a writer that is still writing or died "
        "(--allow-unsigned-tail accepts that)"
    )


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
            model = f" model {payload['model']}" if payload.get("model") else ""
            return (
                f"session {payload['session_id']} turn {payload['turn_id']}{model}: "
                f"{payload['finish_reason']}, {usage['input_tokens']} in / "
                f"{usage['output_tokens']} out, {payload['tool_calls']} tool calls, "
                f"{payload['elapsed_ms']} ms"
            )
    except (KeyError, TypeError):
        pass
    return json.dumps(payload, sort_keys=True)
