"""Fault injection for tests and chaos runs: make the actor at a path crash, hang or slow down.

Off unless the system is opened with ``faults=True`` (a process enables it only from an
explicit flag), so production code paths pay one ``is None`` check per message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._cell import Cell, Fault, Kind
from ._errors import NoSuchActor

if TYPE_CHECKING:
    from ._system import ActorSystem


class FaultInjector:
    """Injects faults into the live cells of one system, by path."""

    def __init__(self, system: ActorSystem) -> None:
        self._system = system

    def _cell(self, path: str) -> Cell:
        cell = self._system.find_cell(path)
        if cell is None:
            raise NoSuchActor(path)
        return cell

    def crash(self, path: str) -> None:
        """Fail the actor or supervisor at ``path`` now, with ``InjectedCrash``.

        Its current work is cancelled; its supervisor then applies its policy as for any
        other failure.
        """
        cell = self._cell(path)
        if cell.scope is None:
            raise NoSuchActor(path)
        cell.pending_crash = True
        cell.scope.cancel()

    def hang(self, path: str) -> None:
        """The actor stops handling messages (the next one hangs) until stopped or restarted."""
        cell = self._cell(path)
        if cell.kind is not Kind.ACTOR:
            raise ValueError(f"{path} is a supervisor; only actors handle messages")
        cell.fault = Fault.HANG

    def slow(self, path: str, delay_s: float) -> None:
        """The actor waits ``delay_s`` seconds before handling each message, until cleared."""
        cell = self._cell(path)
        if cell.kind is not Kind.ACTOR:
            raise ValueError(f"{path} is a supervisor; only actors handle messages")
        if delay_s < 0:
            raise ValueError("delay_s must be >= 0")
        cell.fault = Fault.SLOW
        cell.fault_delay_s = delay_s

    def clear(self, path: str) -> None:
        """Remove a hang or slow fault (a hang already in progress ends only with a restart)."""
        cell = self._cell(path)
        cell.fault = None
        cell.fault_delay_s = 0.0
