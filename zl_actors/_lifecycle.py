"""Starting and stopping cells: the one place where tasks are created and ended.

Every cell runs as one task in its parent's nursery (the system's nursery for the
root). The task reports how it ended to an ``ExitHook`` of the parent, synchronously
and without blocking, so that a full queue can never hide a death.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import trio

from . import _actor, _supervisor
from ._cell import Cell, CellState, FailureInfo, Fault, Kind, StopMode
from ._errors import InjectedCrash
from ._spec import ActorSpec, ChildSpec

if TYPE_CHECKING:
    from ._system import ActorSystem

# Called when an incarnation ends: (cell, incarnation number, failure or None).
ExitHook = Callable[[Cell, int, BaseException | None], None]


class StartFlag:
    """Wraps ``task_status`` so the incarnation knows whether it reported ready."""

    __slots__ = ("_task_status", "started")

    def __init__(self, task_status: trio.TaskStatus[None]) -> None:
        self._task_status = task_status
        self.started = False

    def ready(self, cell: Cell) -> None:
        cell.state = CellState.RUNNING
        cell.started_at = trio.current_time()
        self.started = True
        self._task_status.started()


def new_cell(spec: ChildSpec, parent: Cell | None, system: ActorSystem) -> Cell:
    if isinstance(spec, ActorSpec):
        # The spec's capacity, else the actor class's (read when the first incarnation has
        # made the actor: a factory need not be the class itself).
        return Cell(
            spec=spec,
            parent=parent,
            system=system,
            kind=Kind.ACTOR,
            mailbox_capacity=spec.mailbox_capacity,
        )
    # A supervisor takes no messages: its mailbox is a zero-capacity channel nobody sends on.
    return Cell(spec=spec, parent=parent, system=system, kind=Kind.SUPERVISOR, mailbox_capacity=0)


async def start_incarnation(cell: Cell, nursery: trio.Nursery, on_exit: ExitHook) -> None:
    """Run a new incarnation of ``cell`` in ``nursery``; return once it is ready.

    Raises:
        Exception: whatever the incarnation raised before it was ready.
    """
    _begin(cell)
    await nursery.start(_run_incarnation, cell, cell.incarnation, on_exit, True)


def start_incarnation_soon(cell: Cell, nursery: trio.Nursery, on_exit: ExitHook) -> None:
    """Like ``start_incarnation``, but return at once; the incarnation starts in its own task.

    A failure before it is ready goes to ``on_exit`` like any later failure (nobody is
    waiting for the start to raise it to).
    """
    _begin(cell)
    nursery.start_soon(_run_incarnation, cell, cell.incarnation, on_exit, False)


def _begin(cell: Cell) -> None:
    cell.incarnation += 1
    cell.stop_mode = StopMode.NONE
    cell.pending_crash = False
    cell.exit_requested = False
    if cell.fault is Fault.HANG:
        cell.fault = None  # A hang lasts one incarnation; a restart is how it ends.
    cell.begin_incarnation()


async def _run_incarnation(
    cell: Cell,
    incarnation: int,
    on_exit: ExitHook,
    awaited: bool,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    flag = StartFlag(task_status)
    failure: BaseException | None = None
    try:
        # The body sets cell.scope to its nursery's scope before its first checkpoint, and
        # that scope absorbs the cancellation of a stop, a restart or an injected crash.
        try:
            if cell.kind is Kind.ACTOR:
                await _actor.run_actor(cell, flag)
            else:
                await _supervisor.run_supervisor(cell, flag)
        except Exception as exc:
            if not flag.started and awaited:
                cell.state = CellState.FAILED
                cell.last_failure = FailureInfo.of(exc)
                raise
            failure = exc
        if failure is None and cell.pending_crash:
            failure = InjectedCrash(f"fault injection crashed {cell.path}")
    finally:
        cell.scope = None
        cell.end_incarnation()
    if failure is not None:
        cell.state = CellState.FAILED
        cell.last_failure = FailureInfo.of(failure)
    else:
        cell.state = CellState.STOPPED
    if flag.started or not awaited:
        on_exit(cell, incarnation, failure)


async def stop_cell(cell: Cell, grace_s: float, mode: StopMode = StopMode.FINAL) -> None:
    """Stop ``cell`` (its children first, in reverse start order) and wait until it has ended.

    A FINAL stop closes an actor's mailbox so it handles what is queued and ends (a task
    actor's work is cancelled at once), or is cancelled when ``grace_s`` runs out; a
    FOR_RESTART stop cancels it at once (its ``on_stop`` still runs, bounded) and keeps the
    mailbox for the next incarnation.
    """
    if cell.finished:
        cell.stop_mode = mode
        return
    cell.stop_mode = mode
    if cell.state is not CellState.FAILED:
        cell.state = CellState.STOPPING
    if cell.kind is Kind.SUPERVISOR and cell.supervisor is not None:
        await cell.supervisor.stop_all_children()
    scope = cell.scope
    if scope is not None:
        if cell.kind is Kind.ACTOR and mode is StopMode.FINAL:
            cell.mailbox.close_for_senders()
            if cell.work_scope is not None:
                cell.work_scope.cancel()  # a task actor's work ends as its loop would
            scope.deadline = min(scope.deadline, trio.current_time() + grace_s)
        else:
            scope.cancel()
    await cell.wait_finished()


def child_grace(cell: Cell) -> float:
    """How long ``cell``'s children get to stop: their supervisor's setting, or the system's."""
    owner = cell
    while owner is not None:
        spec = owner.spec
        if not isinstance(spec, ActorSpec):
            return spec.stop_grace_s
        owner = owner.parent  # type: ignore[assignment]
    return cell.system.stop_grace_s
