"""The actor system: the root of the tree, and the only place its tasks may live."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar, overload

import trio

from . import _lifecycle
from ._cell import Cell, StopMode
from ._errors import ActorSystemCrashed, FaultInjectionDisabled, NoSuchActor, describe
from ._faults import FaultInjector
from ._ref import ActorRef, SupervisorRef, ref_of
from ._reports import FailureLog
from ._snapshot import ActorSnapshot, snapshot_of
from ._spec import ActorSpec, Backoff, ChildSpec, RestartIntensity, Strategy, SupervisorSpec

M = TypeVar("M")

# How long the whole tree gets to stop when the system closes, unless the caller says.
DEFAULT_STOP_GRACE_S = 5.0
# Shutdown is shielded from outer cancellation, but never for longer than the grace plus this.
SHUTDOWN_MARGIN_S = 1.0


class ActorSystem:
    """A running tree of actors; obtained from ``open_actor_system`` only."""

    def __init__(self, *, stop_grace_s: float, faults: bool, rng: random.Random) -> None:
        self.stop_grace_s = stop_grace_s
        self.rng = rng
        self._faults = FaultInjector(self) if faults else None
        self._root: Cell | None = None
        self._crash: BaseException | None = None
        self._nursery: trio.Nursery | None = None
        #: Recent abnormal exits (each logged once); shown by ``snapshot``.
        self.failure_log = FailureLog()

    @property
    def root(self) -> SupervisorRef:
        """The root supervisor (one_for_one); ``spawn`` adds children to it."""
        return SupervisorRef(self._root_cell())

    @property
    def faults_enabled(self) -> bool:
        """Whether the system was opened with ``faults=True``."""
        return self._faults is not None

    @property
    def faults(self) -> FaultInjector:
        """The fault injector.

        Raises:
            FaultInjectionDisabled: the system was opened without ``faults=True``.
        """
        if self._faults is None:
            raise FaultInjectionDisabled("open the actor system with faults=True to inject faults")
        return self._faults

    @overload
    async def spawn(self, spec: ActorSpec[M]) -> ActorRef[M]: ...
    @overload
    async def spawn(self, spec: SupervisorSpec) -> SupervisorRef: ...
    async def spawn(self, spec: ChildSpec) -> ActorRef[Any] | SupervisorRef:
        """Start ``spec`` under the root and return once it is ready (see ``start_child``)."""
        return await self.root.start_child(spec)

    def lookup(self, path: str) -> ActorRef[Any] | SupervisorRef:
        """The ref of the live actor or supervisor at ``path``.

        Raises:
            NoSuchActor: nothing lives there.
        """
        cell = self.find_cell(path)
        if cell is None:
            raise NoSuchActor(path)
        return ref_of(cell)

    def find_cell(self, path: str) -> Cell | None:
        cell = self._root
        if cell is None:
            return None
        parts = path.strip("/").split("/")
        if not parts or parts[0] != cell.name:
            return None
        for name in parts[1:]:
            cell = cell.children.get(name)
            if cell is None:
                return None
        return cell

    def snapshot(self) -> ActorSnapshot:
        """The live tree now: path, kind, state, mailbox, restarts, uptime, last failure.

        The root also carries the system's recent failures (``recent_failures``), which
        outlive the actors that had them.
        """
        return snapshot_of(self._root_cell(), failures=self.failure_log.records)

    def _root_cell(self) -> Cell:
        if self._root is None:
            raise RuntimeError("the actor system is not running")
        return self._root

    def _root_exited(self, cell: Cell, _incarnation: int, failure: BaseException | None) -> None:
        # The root has no parent to restart it: its failure ends the system.
        if failure is not None:
            self.failure_log.report(cell, failure, "the actor system stops")
        cell.retire()
        if failure is not None and self._crash is None:
            self._crash = failure
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()


@asynccontextmanager
async def open_actor_system(
    name: str = "system",
    *,
    stop_grace_s: float = DEFAULT_STOP_GRACE_S,
    root_intensity: RestartIntensity | None = None,
    root_backoff: Backoff | None = None,
    max_children: int = 1024,
    faults: bool = False,
    seed: int | None = None,
) -> AsyncIterator[ActorSystem]:
    """Run an actor system for the duration of the block.

    Nothing of the system runs outside the block. Leaving it stops the whole tree,
    children before parents, last started first, each within ``stop_grace_s`` (then
    cancelled); no task of the system survives it, also when the block is cancelled.

    Args:
        name: the root's name; every path starts with ``/name``.
        stop_grace_s: time each actor gets to drain and stop at shutdown.
        root_intensity: restart intensity of the root supervisor.
        root_backoff: restart backoff of the root supervisor.
        max_children: how many children the root may have.
        faults: enable fault injection (``system.faults``); for tests and chaos runs.
        seed: seed for restart-backoff jitter (deterministic tests).

    Raises:
        ActorSystemCrashed: the root supervisor gave up (the cause is chained). An
            exception raised by the block itself leaves unchanged, not in a group.
    """
    system = ActorSystem(stop_grace_s=stop_grace_s, faults=faults, rng=random.Random(seed))
    root_spec = SupervisorSpec(
        name=name,
        strategy=Strategy.ONE_FOR_ONE,
        intensity=root_intensity or RestartIntensity(),
        backoff=root_backoff or Backoff(),
        max_children=max_children,
        stop_grace_s=stop_grace_s,
    )
    body_error: BaseException | None = None
    try:
        async with trio.open_nursery() as nursery:
            system._nursery = nursery
            root = _lifecycle.new_cell(root_spec, None, system)
            system._root = root
            await _lifecycle.start_incarnation(root, nursery, system._root_exited)
            try:
                yield system
            except BaseException as exc:
                body_error = exc
                raise
            finally:
                # Shielded so that a cancelled block still stops the tree in order; bounded so
                # that a stuck actor cannot hold the block open.
                with trio.move_on_after(stop_grace_s + SHUTDOWN_MARGIN_S, shield=True):
                    await _lifecycle.stop_cell(root, stop_grace_s, StopMode.FINAL)
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # The system's own tasks never raise into this nursery (they report to their
        # parents), so a group here holds what the block raised: give it back as it was.
        if body_error is not None and list(group.exceptions) == [body_error]:
            raise body_error from None
        raise
    if system._crash is not None:
        raise ActorSystemCrashed(
            f"the root supervisor of {name!r} gave up: {describe(system._crash)}"
        ) from system._crash
