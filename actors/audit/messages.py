"""The ``AuditWriter``'s protocol: every message is a request, answered once it is written."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from zl_actors import Request

from ._records import ToolReceipt, TurnSummary


@attrs.frozen(kw_only=True)
class Appended:
    """Where a record landed: its ``seq``, its chain ``hash`` and its ``kind``."""

    seq: int
    hash: str
    kind: str


@attrs.frozen(kw_only=True)
class AppendReceipt(Request[Appended]):
    """Append a tool receipt; answered once it is written (and fsync'd per policy)."""

    receipt: ToolReceipt


@attrs.frozen(kw_only=True)
class AppendTurn(Request[Appended]):
    """Append a turn summary; answered once it is written."""

    summary: TurnSummary


@attrs.frozen(kw_only=True)
class AppendRecord(Request[Appended]):
    """Append any record: a dotted lower-case ``kind`` and a JSON object ``payload``.

    A bad kind or a payload with no canonical JSON form is refused (the ask raises
    ``ValueError``); the writer carries on.
    """

    kind: str
    payload: Mapping[str, Any]


@attrs.frozen(kw_only=True)
class Checkpoint(Request[Appended]):
    """Append a checkpoint now (its seq and hash may be published as an anchor)."""


@attrs.frozen(kw_only=True)
class Sync(Request[None]):
    """fsync now whatever the policy; answered when the file is on disk."""


@attrs.frozen(kw_only=True)
class Tick:
    """Sent by the writer to itself: time-based fsync and checkpoint, if due."""


AuditMessage = AppendReceipt | AppendTurn | AppendRecord | Checkpoint | Sync | Tick
