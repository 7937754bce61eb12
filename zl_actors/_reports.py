"""Failure reports: every abnormal exit is logged once and kept in a bounded list.

As OTP's supervisor reports do, each report names the path, the kind, the exception's
type and message, and what happens next (restarted and how many restarts are left in the
window, not restarted, or the supervisor giving up). The list outlives the actors, so a
temporary child that failed and left the tree can still be seen in the snapshot.
"""

from __future__ import annotations

import collections
import logging
from typing import TYPE_CHECKING, Final

import attrs
import trio

from ._cell import FailureInfo

if TYPE_CHECKING:
    from ._cell import Cell

log = logging.getLogger("zl_actors")

#: How many recent failures a system keeps for its snapshot (oldest dropped first).
RECENT_FAILURES_KEPT: Final = 32


@attrs.frozen(kw_only=True)
class FailureRecord:
    path: str
    kind: str
    actor_type: str
    type: str
    message: str
    action: str
    at: float


class FailureLog:
    """The recent failures of one actor system (bounded; newest last)."""

    def __init__(self, capacity: int = RECENT_FAILURES_KEPT) -> None:
        self.records: collections.deque[FailureRecord] = collections.deque(maxlen=capacity)
        #: Every failure reported since the system opened (the list keeps the latest).
        self.total = 0

    def report(self, cell: Cell, failure: BaseException, action: str) -> None:
        """Log ``cell``'s failure once (one line) and remember it."""
        info = FailureInfo.of(failure)
        record = FailureRecord(
            path=cell.path,
            kind=cell.kind.value,
            actor_type=cell.actor_type,
            type=info.type,
            message=info.message,
            action=action,
            at=trio.current_time(),
        )
        self.records.append(record)
        self.total += 1
        log.error(
            "%s %s (%s) failed: %s: %s; %s",
            record.kind,
            record.path,
            record.actor_type or "?",
            record.type,
            record.message,
            action,
        )
