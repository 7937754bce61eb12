"""Which sessions exist, whose they are, and the caps on how many.

A plain object on the one Trio thread (no awaits inside, so no locking): the HTTP edge
reserves a place before it asks the host for a session, so that concurrent requests are
counted before any of them has finished its handshake.
"""

from __future__ import annotations

from collections import Counter

import attrs

from zl_actors import ActorRef

from ._problems import Problem
from .messages import SessionMessage

Owner = tuple[str, str]


@attrs.define
class Reservation:
    owner: Owner
    released: bool = False


@attrs.define
class _Entry:
    owner: Owner
    ref: ActorRef[SessionMessage]


class SessionTable:
    """Sessions by id, with their owners (tenant, user), capped in total and per user."""

    def __init__(self, *, max_sessions: int, max_per_user: int) -> None:
        self.max_sessions = max_sessions
        self.max_per_user = max_per_user
        self._entries: dict[str, _Entry] = {}
        self._per_owner: Counter[Owner] = Counter()
        self._total = 0

    def __len__(self) -> int:
        return len(self._entries)

    def reserve(self, owner: Owner) -> Reservation:
        """Count a session about to be started for ``owner``.

        Raises:
            Problem: ``overloaded`` (503) at ``max_sessions``, ``session.limit`` (429) at
                ``max_per_user`` for this owner.
        """
        if self._total >= self.max_sessions:
            raise Problem("overloaded", f"the BFF has {self.max_sessions} sessions open")
        if self._per_owner[owner] >= self.max_per_user:
            raise Problem(
                "session.limit",
                f"you have {self.max_per_user} sessions open; close one (DELETE) first",
            )
        self._total += 1
        self._per_owner[owner] += 1
        return Reservation(owner=owner)

    def release(self, reservation: Reservation) -> None:
        if reservation.released:
            return
        reservation.released = True
        self._total -= 1
        self._per_owner[reservation.owner] -= 1
        if not self._per_owner[reservation.owner]:
            del self._per_owner[reservation.owner]

    def add(self, session_id: str, reservation: Reservation, ref: ActorRef[SessionMessage]) -> None:
        self._entries[session_id] = _Entry(owner=reservation.owner, ref=ref)
        # The reservation now belongs to the entry; ``remove`` releases it.
        reservation.released = True

    def remove(self, session_id: str) -> None:
        entry = self._entries.pop(session_id, None)
        if entry is None:
            return
        self._total -= 1
        self._per_owner[entry.owner] -= 1
        if not self._per_owner[entry.owner]:
            del self._per_owner[entry.owner]

    def lookup(self, session_id: str, owner: Owner) -> ActorRef[SessionMessage]:
        """The session ``session_id`` if it belongs to ``owner``.

        Raises:
            Problem: ``session.not_found`` (404), also when it is someone else's (so that
                ids of other tenants' sessions cannot be probed).
        """
        entry = self._entries.get(session_id)
        if entry is None or entry.owner != owner:
            raise Problem("session.not_found", f"no session {session_id[:64]!r} is yours")
        return entry.ref
