"""Random trees under random crashes, hangs and stops keep the runtime's invariants."""

from __future__ import annotations

import contextlib
from typing import Any

import attrs
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zl_actors import (
    ActorError,
    ActorSpec,
    ActorSystemCrashed,
    Backoff,
    Restart,
    RestartIntensity,
    Strategy,
    SupervisorGaveUp,
    SupervisorSpec,
    open_actor_system,
)
from zl_actors._cell import Kind

from ._support import Add, counter, live_tasks

# Long enough that every restart in one example counts against the intensity.
WINDOW_S = 3600.0


@attrs.frozen
class Op:
    kind: str  # crash | hang | crash_supervisor | add_temp | stop_temp
    target: int


def supervisor_specs(depth: int) -> st.SearchStrategy[SupervisorSpec]:
    workers = st.lists(st.sampled_from(list(Restart)), min_size=1, max_size=3)
    nested = st.lists(supervisor_specs(depth - 1), max_size=2) if depth > 1 else st.just([])
    return st.builds(
        lambda strategy, max_restarts, restarts, subs: SupervisorSpec(
            name="s",
            strategy=strategy,
            intensity=RestartIntensity(max_restarts=max_restarts, within_s=WINDOW_S),
            backoff=Backoff(initial_s=0.0),
            stop_grace_s=0.05,
            children=[
                ActorSpec(name=f"w{i}", factory=counter(), restart=restart)
                for i, restart in enumerate(restarts)
            ]
            + [attrs.evolve(sub, name=f"s{i}") for i, sub in enumerate(subs)],
        ),
        st.sampled_from(list(Strategy)),
        st.integers(min_value=0, max_value=3),
        workers,
        nested,
    )


ops = st.lists(
    st.builds(
        Op,
        st.sampled_from(["crash", "crash", "hang", "crash_supervisor", "add_temp", "stop_temp"]),
        st.integers(min_value=0, max_value=50),
    ),
    max_size=25,
)


def live_cells(system: Any) -> list[Any]:
    cells = []
    stack = [system.find_cell(system.root.path)]
    while stack:
        cell = stack.pop()
        if cell is None:
            continue
        cells.append(cell)
        stack.extend(cell.children.values())
    return cells


async def settle(system: Any) -> None:
    """Wait until no cell is between states (stops wait out their grace on the clock)."""
    while True:
        await trio.testing.wait_all_tasks_blocked()
        if all(cell.state.value == "running" for cell in live_cells(system)):
            return
        await trio.sleep(0.01)


def check_tree(system: Any) -> None:
    for cell in live_cells(system):
        # Nothing is left half-done once the system is quiet.
        assert cell.state.value == "running", (cell.path, cell.state)
        if cell.kind is Kind.SUPERVISOR and cell.supervisor is not None:
            # Restart counts never pass the intensity: one more and the supervisor gives up.
            assert len(cell.supervisor.restart_times) <= cell.spec.intensity.max_restarts
        failure = cell.last_failure
        if (
            cell.kind is Kind.SUPERVISOR
            and failure is not None
            and failure.type == "SupervisorGaveUp"
        ):
            # The escalation reached its parent, which restarted it.
            assert cell.restarts >= 1, cell.path


class TestInvariants:
    """No leaked tasks, restart counts within the policy, escalations reach a supervisor."""

    @settings(
        max_examples=100,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(tree=supervisor_specs(depth=2), operations=ops)
    async def test_random_faults_on_random_trees(
        self, tree: SupervisorSpec, operations: list[Op]
    ) -> None:
        before = live_tasks()
        crashed: ActorSystemCrashed | None = None
        temp_counter = 0
        try:
            async with open_actor_system(
                "t",
                faults=True,
                stop_grace_s=0.05,
                root_intensity=RestartIntensity(max_restarts=2, within_s=WINDOW_S),
                root_backoff=Backoff(initial_s=0.0),
            ) as system:
                await system.spawn(attrs.evolve(tree, name="app"))
                with trio.fail_after(10):
                    for op in operations:
                        cells = live_cells(system)
                        actors = [c for c in cells if c.kind is Kind.ACTOR]
                        supervisors = [c for c in cells if c.kind is Kind.SUPERVISOR][1:]
                        if op.kind in ("crash", "hang") and actors:
                            cell = actors[op.target % len(actors)]
                            if op.kind == "crash":
                                system.faults.crash(cell.path)
                            else:
                                system.faults.hang(cell.path)
                                with contextlib.suppress(ActorError):
                                    system.lookup(cell.path).send_nowait(Add(n=1))  # type: ignore[union-attr]
                        elif op.kind == "crash_supervisor" and supervisors:
                            system.faults.crash(supervisors[op.target % len(supervisors)].path)
                        elif op.kind == "add_temp" and supervisors:
                            sup = system.lookup(supervisors[op.target % len(supervisors)].path)
                            temp_counter += 1
                            with contextlib.suppress(ActorError):
                                await sup.start_child(  # type: ignore[union-attr]
                                    ActorSpec(
                                        name=f"tmp{temp_counter}",
                                        factory=counter(),
                                        restart=Restart.TEMPORARY,
                                    )
                                )
                        elif op.kind == "stop_temp":
                            temps = [c for c in actors if c.name.startswith("tmp")]
                            if temps:
                                cell = temps[op.target % len(temps)]
                                parent = system.lookup(cell.parent.path)
                                with contextlib.suppress(ActorError):
                                    await parent.stop_child(cell.name)  # type: ignore[union-attr]
                        await settle(system)
                        check_tree(system)
        except ActorSystemCrashed as exc:
            crashed = exc
        if crashed is not None:
            # The root gave up: the chain of escalations ends in SupervisorGaveUp at the root.
            assert isinstance(crashed.__cause__, SupervisorGaveUp)
            assert crashed.__cause__.path == "/t"
        assert live_tasks() == before
