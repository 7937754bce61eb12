"""Receipts and small audit files shared by the audit tests."""

from __future__ import annotations

from actors.audit import (
    CHECKPOINT_KIND,
    RECEIPT_KIND,
    TURN_KIND,
    Caps,
    Chain,
    Outcome,
    Timing,
    ToolReceipt,
    TurnSummary,
    canonical_digest,
)

TIMING = Timing(
    started_at="2026-01-02T03:04:05.000Z", finished_at="2026-01-02T03:04:05.012Z", elapsed_ms=12.5
)


def receipt(n: int = 0, *, outcome: Outcome = Outcome.OK) -> ToolReceipt:
    """A valid receipt; call ``n`` differs in ids and digests."""
    failed = outcome is not Outcome.OK
    return ToolReceipt(
        tool="fs.read",
        tool_version="1.0.0",
        call_id=f"call-{n}",
        session_id="sess-1",
        turn_id=f"turn-{n // 3}",
        tenant="acme",
        device_id="dev-7",
        policy_id=None,
        args_digest=canonical_digest({"path": f"notes/{n}.txt"}),
        result_digest=None if failed else canonical_digest({"content": "x" * n}),
        caps=Caps(timeout_ms=5000, max_bytes=65536),
        timing=TIMING,
        outcome=outcome,
        error_code={
            Outcome.OK: None,
            Outcome.ERROR: "tool.failed",
            Outcome.DENIED: "tool.denied",
            Outcome.TIMEOUT: "tool.timeout",
            Outcome.CANCELLED: "tool.cancelled",
            Outcome.INTERNAL: "internal",
        }[outcome],
        truncated=n % 4 == 1,
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    )


def turn(n: int = 0) -> TurnSummary:
    return TurnSummary(
        session_id="sess-1",
        turn_id=f"turn-{n}",
        tenant="acme",
        input_tokens=120 + n,
        output_tokens=40,
        finish_reason="stop",
        tool_calls=1,
        timing=TIMING,
    )


def sample_lines(records: int = 12, checkpoint_every: int = 5) -> list[bytes]:
    """The lines of a valid audit file: receipts, turns and checkpoints."""
    chain = Chain()
    lines = []
    for n in range(records):
        if n and n % checkpoint_every == 0:
            lines.append(
                chain.seal(CHECKPOINT_KIND, chain.checkpoint_payload(), TIMING.started_at).line
            )
        kind, payload = (
            (TURN_KIND, turn(n).to_payload())
            if n % 3 == 2
            else (RECEIPT_KIND, receipt(n).to_payload())
        )
        lines.append(chain.seal(kind, payload, TIMING.started_at).line)
    return lines
