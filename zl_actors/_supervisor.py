"""Supervisors: start children in order, restart them by strategy, give up past the intensity."""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING

import attrs
import trio

from . import _lifecycle
from ._cell import Cell, CellState, FailureInfo, StopMode
from ._errors import (
    ActorStopped,
    DuplicateName,
    NoSuchActor,
    SpawnError,
    SupervisorGaveUp,
    TooManyChildren,
    describe,
)
from ._spec import ChildSpec, Restart, Strategy, SupervisorSpec

if TYPE_CHECKING:
    from ._lifecycle import StartFlag


@attrs.frozen(kw_only=True)
class ChildExit:
    cell: Cell
    incarnation: int
    failure: BaseException | None


def needs_restart(restart: Restart, failure: BaseException | None) -> bool:
    if restart is Restart.PERMANENT:
        return True
    if restart is Restart.TRANSIENT:
        return failure is not None
    return False


class SupervisorRuntime:
    """The live state of one supervisor incarnation.

    Exits of children arrive on a queue whose capacity is ``max_children``: a child has at
    most one unprocessed exit, so ``send_nowait`` always fits. Restarts, dynamic starts and
    stops all hold ``lock``, so the children list changes one operation at a time.
    """

    def __init__(self, cell: Cell, nursery: trio.Nursery) -> None:
        spec = cell.spec
        assert isinstance(spec, SupervisorSpec)
        self.cell = cell
        self.spec = spec
        self.nursery = nursery
        self.lock = trio.Lock()
        self.exits_send, self.exits_recv = trio.open_memory_channel[ChildExit](spec.max_children)
        self.restart_times: collections.deque[float] = collections.deque()
        self.backoff_scope: trio.CancelScope | None = None

    # -- children coming and going ------------------------------------------------------

    def on_child_exit(self, cell: Cell, incarnation: int, failure: BaseException | None) -> None:
        if failure is not None:
            cell.system.failure_log.report(cell, failure, self._next_step(cell, failure))
        try:
            self.exits_send.send_nowait(
                ChildExit(cell=cell, incarnation=incarnation, failure=failure)
            )
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            # This supervisor is itself ending; nothing is left to restart the child.
            cell.retire()

    def _next_step(self, cell: Cell, failure: BaseException) -> str:
        """What this supervisor will do about ``cell``'s failure, for the failure report."""
        if self.cell.stop_mode is not StopMode.NONE or cell.stop_mode is StopMode.FINAL:
            return "not restarted (stopping)"
        if not needs_restart(cell.spec.restart, failure):
            return f"not restarted ({cell.spec.restart.value})"
        intensity = self.spec.intensity
        now = trio.current_time()
        recent = sum(1 for at in self.restart_times if at > now - intensity.within_s)
        left = intensity.max_restarts - recent
        if left <= 0:
            return (
                f"{self.cell.path} gives up ({intensity.max_restarts} restarts within "
                f"{intensity.within_s:g} s)"
            )
        return f"restarting ({left - 1} more restarts allowed within {intensity.within_s:g} s)"

    async def start_child(self, spec: ChildSpec) -> Cell:
        children = self.cell.children
        if len(children) >= self.spec.max_children:
            raise TooManyChildren(
                f"{self.cell.path} has {len(children)} children "
                f"(max_children={self.spec.max_children})"
            )
        if spec.name in children:
            raise DuplicateName(f"{self.cell.path} already has a child named {spec.name!r}")
        child = _lifecycle.new_cell(spec, self.cell, self.cell.system)
        children[child.name] = child
        try:
            await _lifecycle.start_incarnation(child, self.nursery, self.on_child_exit)
        except Exception as exc:
            del children[child.name]
            child.retire()
            raise SpawnError(f"could not start {child.path}: {describe(exc)}") from exc
        return child

    async def start_dynamic_child(self, spec: ChildSpec) -> Cell:
        async with self.lock:
            if self.cell.stop_mode is not StopMode.NONE:
                raise ActorStopped(self.cell.path)
            return await self.start_child(spec)

    async def stop_dynamic_child(self, name: str) -> None:
        async with self.lock:
            child = self.cell.children.get(name)
            if child is not None:
                await _lifecycle.stop_cell(child, self.spec.stop_grace_s)
                self._forget(child)
                return
        raise NoSuchActor(f"{self.cell.path}/{name}")

    async def stop_all_children(self) -> None:
        """Stop every child for good, last started first (the supervisor is ending)."""
        if self.backoff_scope is not None:
            self.backoff_scope.cancel()
        async with self.lock:
            for child in reversed(list(self.cell.children.values())):
                await _lifecycle.stop_cell(child, self.spec.stop_grace_s)
                self._forget(child)

    def _forget(self, child: Cell) -> None:
        if self.cell.children.get(child.name) is child:
            del self.cell.children[child.name]
        child.retire()

    # -- restarts -------------------------------------------------------------------------

    async def handle_exit(self, exit_: ChildExit) -> None:
        """Apply restart type, strategy and intensity to one child's exit.

        Raises:
            SupervisorGaveUp: one restart too many within the window; every child is stopped.
        """
        cell = exit_.cell
        if exit_.incarnation != cell.incarnation or self.cell.children.get(cell.name) is not cell:
            return  # An older incarnation that this supervisor already replaced or stopped.
        if cell.stop_mode is StopMode.FINAL or not needs_restart(cell.spec.restart, exit_.failure):
            self._forget(cell)
            return
        children = list(self.cell.children.values())
        index = children.index(cell)
        if self.spec.strategy is Strategy.ONE_FOR_ONE:
            group = [cell]
        elif self.spec.strategy is Strategy.ONE_FOR_ALL:
            group = list(children)
        else:
            group = children[index:]
        for sibling in reversed(group):
            if sibling is cell:
                continue
            if sibling.spec.restart is Restart.TEMPORARY:
                await _lifecycle.stop_cell(sibling, self.spec.stop_grace_s)
                self._forget(sibling)
            else:
                await _lifecycle.stop_cell(sibling, self.spec.stop_grace_s, StopMode.FOR_RESTART)
        failure_text = describe(exit_.failure) if exit_.failure is not None else "exited normally"
        # One failure is one restart in the intensity count, however many children it restarts.
        self._count_restart(failure_text)
        delay = self.spec.backoff.delay(len(self.restart_times), self.cell.system.rng)
        for member in group:
            member.state = CellState.RESTARTING
        await self._sleep_backoff(delay)
        for member in group:
            if self.cell.children.get(member.name) is member:
                await self._restart(member)

    async def _sleep_backoff(self, delay: float) -> None:
        # Cancelled by stop_all_children, so a stopping supervisor never waits out a backoff.
        with trio.CancelScope() as self.backoff_scope:
            await trio.sleep(delay)
        self.backoff_scope = None

    async def _restart(self, cell: Cell) -> None:
        """Start ``cell`` again; a failed start counts as another restart (with its backoff)."""
        while self.cell.stop_mode is StopMode.NONE and cell.stop_mode is not StopMode.FINAL:
            try:
                await _lifecycle.start_incarnation(cell, self.nursery, self.on_child_exit)
            except Exception as exc:
                cell.last_failure = FailureInfo.of(exc)
                self._count_restart(f"restart of {cell.path} failed: {describe(exc)}")
                await self._sleep_backoff(
                    self.spec.backoff.delay(len(self.restart_times), self.cell.system.rng)
                )
                continue
            cell.restarts += 1
            return

    def _count_restart(self, failure_text: str) -> None:
        now = trio.current_time()
        window = self.spec.intensity.within_s
        times = self.restart_times
        while times and times[0] <= now - window:
            times.popleft()
        if len(times) >= self.spec.intensity.max_restarts:
            raise SupervisorGaveUp(self.cell.path, len(times), window, failure_text)
        times.append(now)


async def run_supervisor(cell: Cell, flag: StartFlag) -> None:
    """One incarnation of a supervisor: start children in order, then watch them."""
    spec = cell.spec
    assert isinstance(spec, SupervisorSpec)
    cell.actor_type = "Supervisor"
    gave_up: SupervisorGaveUp | None = None
    start_error: Exception | None = None
    try:
        async with trio.open_nursery() as nursery:
            cell.scope = nursery.cancel_scope
            runtime = SupervisorRuntime(cell, nursery)
            cell.supervisor = runtime
            try:
                for child_spec in spec.children:
                    await runtime.start_child(child_spec)
            except Exception as exc:
                start_error = exc
            if start_error is None:
                flag.ready(cell)
                async for exit_ in runtime.exits_recv:
                    async with runtime.lock:
                        try:
                            await runtime.handle_exit(exit_)
                        except SupervisorGaveUp as exc:
                            gave_up = exc
                    if gave_up is not None:
                        break
            # Giving up, or failing to start: stop what runs, last started first.
            await runtime.stop_all_children()
            runtime.exits_send.close()
            nursery.cancel_scope.cancel()
    finally:
        cell.supervisor = None
        # Children cancelled with this incarnation (a crash) will not come back as they were.
        for child in cell.children.values():
            child.retire()
        cell.children.clear()
    if start_error is not None:
        raise start_error
    if gave_up is not None:
        raise gave_up
