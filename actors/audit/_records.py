"""What the audit records: tool receipts and turn summaries, as frozen attrs classes.

A receipt never holds a tool's arguments or result, only their canonical digests, so the
audit file is safe to keep and ship even before redaction rules exist.
"""

from __future__ import annotations

import datetime as _dt
import enum
import re
import time
import uuid
from collections.abc import Iterable
from typing import Any

import attrs

from contracts import error_catalog

from ._digest import DIGEST_PREFIX

# Record kinds written by the host; any other ``a.b`` kind may be appended with AppendRecord.
RECEIPT_KIND = "tool.receipt"
TURN_KIND = "turn.summary"
OPENED_KIND = "audit.opened"
CHECKPOINT_KIND = "audit.checkpoint"

KIND_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"
_KIND_RE = re.compile(KIND_PATTERN)
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_TRACEPARENT_RE = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
# RFC 3339 in UTC with a Z, as ``utc_now`` writes it (milliseconds or more digits, or none).
_RFC3339_UTC_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$")


class Outcome(enum.StrEnum):
    """How a tool call ended; every call that started has exactly one."""

    OK = "ok"
    ERROR = "error"
    DENIED = "denied"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    #: The call's end failed inside the host (its receipt could not be made as usual):
    #: the receipt still exists, with ``error_code`` ``internal``.
    INTERNAL = "internal"


def valid_kind(kind: str) -> bool:
    """Whether ``kind`` is a dotted lower-case record kind such as ``tool.receipt``."""
    return _KIND_RE.match(kind) is not None


def utc_now() -> str:
    """The wall clock now, RFC 3339 in UTC with milliseconds: ``2026-01-02T03:04:05.678Z``."""
    now = _dt.datetime.now(_dt.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def new_receipt_id() -> str:
    """A fresh receipt id (``rcpt_`` and 32 hex digits)."""
    return "rcpt_" + uuid.uuid4().hex


def _rfc3339(_: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not _RFC3339_UTC_RE.match(value):
        raise ValueError(f"{attribute.name} must be RFC 3339 UTC (…Z): {value!r}")


def _digest(_: object, attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None and not _DIGEST_RE.match(value):
        raise ValueError(f"{attribute.name} must be {DIGEST_PREFIX}<64 hex>: {value!r}")


def _traceparent(_: object, attribute: attrs.Attribute[str | None], value: str | None) -> None:
    if value is not None and not _TRACEPARENT_RE.match(value):
        raise ValueError(f"{attribute.name} is not a W3C traceparent: {value!r}")


def _catalog_code(_: object, attribute: attrs.Attribute[str | None], value: str | None) -> None:
    if value is not None and value not in error_catalog():
        raise ValueError(f"{attribute.name} {value!r} is not in the error catalog")


def _non_empty(_: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not value:
        raise ValueError(f"{attribute.name} must not be empty")


@attrs.frozen(kw_only=True)
class Caps:
    """Limits a call ran under (``timeoutMs``, ``maxBytes`` on the wire)."""

    timeout_ms: int = attrs.field(validator=attrs.validators.ge(1))
    max_bytes: int = attrs.field(validator=attrs.validators.ge(1))

    def to_json(self) -> dict[str, int]:
        return {"timeoutMs": self.timeout_ms, "maxBytes": self.max_bytes}


@attrs.frozen(kw_only=True)
class Timing:
    """When a piece of work ran: wall-clock ends for people, monotonic length for figures."""

    started_at: str = attrs.field(validator=_rfc3339)
    finished_at: str = attrs.field(validator=_rfc3339)
    elapsed_ms: float = attrs.field(validator=attrs.validators.ge(0))


class Stopwatch:
    """Times one call: the wall clock at both ends and the monotonic time between them.

    The elapsed time comes from the monotonic clock, so a wall-clock step (NTP) during a
    call never makes it negative or wrong.
    """

    __slots__ = ("_mono", "started_at")

    def __init__(self) -> None:
        self.started_at = utc_now()
        self._mono = time.monotonic()

    def stop(self) -> Timing:
        """The timing from creation to now (may be called more than once)."""
        elapsed = (time.monotonic() - self._mono) * 1000.0
        return Timing(
            started_at=self.started_at, finished_at=utc_now(), elapsed_ms=round(elapsed, 3)
        )


@attrs.frozen(kw_only=True)
class ToolReceipt:
    """The audit's record of one tool call, whatever its outcome.

    ``outcome`` OK goes with no ``error_code``; every other outcome names a catalog code.
    ``result_digest`` is None when there was no result (denied, timeout, cancelled).
    """

    receipt_id: str = attrs.field(factory=new_receipt_id, validator=_non_empty)
    tool: str = attrs.field(validator=_non_empty)
    tool_version: str = attrs.field(validator=_non_empty)
    call_id: str = attrs.field(validator=_non_empty)
    session_id: str = attrs.field(validator=_non_empty)
    turn_id: str = attrs.field(validator=_non_empty)
    tenant: str = attrs.field(validator=_non_empty)
    device_id: str | None = None
    policy_id: str | None = None
    args_digest: str = attrs.field(validator=_digest)
    result_digest: str | None = attrs.field(default=None, validator=_digest)
    caps: Caps
    timing: Timing
    outcome: Outcome = attrs.field(converter=Outcome)
    error_code: str | None = attrs.field(default=None, validator=_catalog_code)
    truncated: bool = False
    traceparent: str | None = attrs.field(default=None, validator=_traceparent)
    #: The revision of the policy bundle the call was decided under (None: no bundle).
    policy_revision: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.ge(0))
    )
    #: What policy decided (``allow`` or ``deny``); None when policy is off (development).
    decision: str | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.in_(("allow", "deny")))
    )
    #: The rule that made the decision (``default-deny`` when none did).
    rule_id: str | None = None

    def __attrs_post_init__(self) -> None:
        if (self.outcome is Outcome.OK) != (self.error_code is None):
            raise ValueError("an ok receipt has no error_code; any other outcome needs one")
        if self.decision == "deny" and self.outcome is not Outcome.DENIED:
            raise ValueError("a call policy denied has the outcome denied")

    def to_payload(self) -> dict[str, Any]:
        """The receipt as the JSON payload of a ``tool.receipt`` record."""
        return {
            "receipt_id": self.receipt_id,
            "tool": self.tool,
            "tool_version": self.tool_version,
            "call_id": self.call_id,
            "session_id": self.session_id,
            "turn_id": self.turn_id,
            "tenant": self.tenant,
            "device_id": self.device_id,
            "policy_id": self.policy_id,
            "args_digest": self.args_digest,
            "result_digest": self.result_digest,
            "caps": self.caps.to_json(),
            "started_at": self.timing.started_at,
            "finished_at": self.timing.finished_at,
            "elapsed_ms": self.timing.elapsed_ms,
            "outcome": self.outcome.value,
            "error_code": self.error_code,
            "truncated": self.truncated,
            "traceparent": self.traceparent,
            "policy_revision": self.policy_revision,
            "decision": self.decision,
            "rule_id": self.rule_id,
        }

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> ToolReceipt:
        """Rebuild a receipt from its payload (as read back from the audit file).

        Raises:
            KeyError, TypeError, ValueError: the payload is not a receipt.
        """
        caps = payload["caps"]
        return cls(
            receipt_id=payload["receipt_id"],
            tool=payload["tool"],
            tool_version=payload["tool_version"],
            call_id=payload["call_id"],
            session_id=payload["session_id"],
            turn_id=payload["turn_id"],
            tenant=payload["tenant"],
            device_id=payload["device_id"],
            policy_id=payload["policy_id"],
            args_digest=payload["args_digest"],
            result_digest=payload["result_digest"],
            caps=Caps(timeout_ms=caps["timeoutMs"], max_bytes=caps["maxBytes"]),
            timing=Timing(
                started_at=payload["started_at"],
                finished_at=payload["finished_at"],
                elapsed_ms=payload["elapsed_ms"],
            ),
            outcome=payload["outcome"],
            error_code=payload["error_code"],
            truncated=payload["truncated"],
            traceparent=payload["traceparent"],
            # Receipts written before policy existed have none of these.
            policy_revision=payload.get("policy_revision"),
            decision=payload.get("decision"),
            rule_id=payload.get("rule_id"),
        )


def new_turn_id() -> str:
    """A fresh audit id for a turn record (``turn_`` and 32 hex digits)."""
    return "turn_" + uuid.uuid4().hex


def _optional_non_empty(_: object, attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None and not value:
        raise ValueError(f"{attribute.name} must be None or not empty")


def _non_negative_cost(_: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and not value >= 0:
        raise ValueError(f"{attribute.name} must be None or >= 0: {value!r}")


def _ids(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


@attrs.frozen(kw_only=True)
class TurnSummary:
    """The audit's record of one turn: who, with which model, how many tokens, what it
    cost, how it ended, how long, the receipts of its tool calls, the policy in force.

    ``audit_id`` is the record's own id (``zl audit prove`` takes it); ``policy_id`` and
    ``policy_revision`` name the tenant's bundle the turn's tools were offered under (None
    when policy is off or the turn asked for no tools).
    """

    session_id: str = attrs.field(validator=_non_empty)
    turn_id: str = attrs.field(validator=_non_empty)
    tenant: str = attrs.field(validator=_non_empty)
    input_tokens: int = attrs.field(validator=attrs.validators.ge(0))
    output_tokens: int = attrs.field(validator=attrs.validators.ge(0))
    usage_estimated: bool = False
    finish_reason: str = attrs.field(validator=_non_empty)
    tool_calls: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    timing: Timing
    error_code: str | None = attrs.field(default=None, validator=_catalog_code)
    traceparent: str | None = attrs.field(default=None, validator=_traceparent)
    audit_id: str | None = attrs.field(factory=new_turn_id, validator=_optional_non_empty)
    user: str | None = attrs.field(default=None, validator=_optional_non_empty)
    device_id: str | None = attrs.field(default=None, validator=_optional_non_empty)
    model: str | None = attrs.field(default=None, validator=_optional_non_empty)
    cost_usd: float | None = attrs.field(default=None, validator=_non_negative_cost)
    receipt_ids: tuple[str, ...] = attrs.field(default=(), converter=_ids)
    policy_id: str | None = None
    policy_revision: int | None = None

    def to_payload(self) -> dict[str, Any]:
        """The summary as the JSON payload of a ``turn.summary`` record."""
        return {
            "policy_id": self.policy_id,
            "audit_id": self.audit_id,
            "user": self.user,
            "device_id": self.device_id,
            "model": self.model,
            "cost_usd": self.cost_usd,
            "receipt_ids": list(self.receipt_ids),
            "policy_revision": self.policy_revision,
            "session_id": self.session_id,
            "turn_id": self.turn_id,
            "tenant": self.tenant,
            "usage": {
                "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens,
                "estimated": self.usage_estimated,
            },
            "finish_reason": self.finish_reason,
            "tool_calls": self.tool_calls,
            "started_at": self.timing.started_at,
            "finished_at": self.timing.finished_at,
            "elapsed_ms": self.timing.elapsed_ms,
            "error_code": self.error_code,
            "traceparent": self.traceparent,
        }
