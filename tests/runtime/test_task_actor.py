"""Task actors: one piece of work per incarnation, run in the incarnation's own task."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from zl_actors import (
    ActorContext,
    ActorSpec,
    Backoff,
    Restart,
    SupervisorRef,
    SupervisorSpec,
    TaskActor,
    open_actor_system,
)

from ._support import Boom

# Long enough that a test which waited for it would be caught by its fail_after.
LONG_GRACE_S = 30.0


async def wait_until_cancelled(log: list[str], entry: str) -> None:
    """Sleep until cancelled; note ``entry`` in ``log`` on the way out."""
    try:
        await trio.sleep_forever()
    except trio.Cancelled:
        log.append(entry)
        raise


class Work(TaskActor):
    """Records what happens to it; ``hold`` keeps ``run`` waiting until cancelled."""

    def __init__(self, log: list[str], *, hold: bool = False, fail: bool = False) -> None:
        self.log = log
        self.hold = hold
        self.fail = fail

    async def run(self, ctx: ActorContext[Any]) -> None:
        self.log.append("run")
        if self.fail:
            raise Boom("the work failed")
        if self.hold:
            await wait_until_cancelled(self.log, "run cancelled")
        self.log.append("run done")

    async def on_stop(self, ctx: ActorContext[Any]) -> None:
        self.log.append("on_stop")


async def sessions(system: Any) -> SupervisorRef:
    sup = await system.spawn(
        SupervisorSpec(name="sup", restart=Restart.PERMANENT, stop_grace_s=LONG_GRACE_S)
    )
    assert isinstance(sup, SupervisorRef)
    return sup


class TestLife:
    async def test_returning_ends_a_temporary_actor(self) -> None:
        log: list[str] = []
        async with open_actor_system("t") as system:
            sup = await sessions(system)
            await sup.start_child(
                ActorSpec(name="w", factory=lambda: Work(log), restart=Restart.TEMPORARY)
            )
            await trio.testing.wait_all_tasks_blocked()
            assert log == ["run", "run done", "on_stop"]
            assert sup.children() == []

    async def test_a_permanent_one_runs_again(self) -> None:
        log: list[str] = []
        runs = 0

        class Twice(TaskActor):
            async def run(self, ctx: ActorContext[Any]) -> None:
                nonlocal runs
                runs += 1
                log.append(f"run {runs}")
                if runs >= 2:
                    await trio.sleep_forever()

        async with open_actor_system("t") as system:
            await system.spawn(
                SupervisorSpec(
                    name="sup",
                    backoff=Backoff(initial_s=0.0),
                    children=[ActorSpec(name="w", factory=Twice, restart=Restart.PERMANENT)],
                )
            )
            await trio.testing.wait_all_tasks_blocked()
            assert log == ["run 1", "run 2"]

    async def test_raising_fails_it(self) -> None:
        log: list[str] = []
        runs = 0

        def fails_once() -> Work:
            nonlocal runs
            runs += 1
            return Work(log, fail=runs == 1, hold=runs > 1)

        async with open_actor_system("t") as system:
            await system.spawn(
                SupervisorSpec(
                    name="sup",
                    backoff=Backoff(initial_s=0.0),
                    children=[ActorSpec(name="w", factory=fails_once)],
                )
            )
            await trio.testing.wait_all_tasks_blocked()
            node = system.snapshot().find("/t/sup/w")
            assert node is not None
            assert node.restarts == 1
            assert node.last_failure is not None
            assert "Boom" in str(node.last_failure)
            assert log == ["run", "on_stop", "run"]

    async def test_the_work_runs_in_the_incarnations_task(self) -> None:
        """No task of its own: the work starts in the pass that starts the actor."""
        tasks: list[trio.lowlevel.Task] = []

        class Where(TaskActor):
            async def on_start(self, ctx: ActorContext[Any]) -> None:
                tasks.append(trio.lowlevel.current_task())

            async def run(self, ctx: ActorContext[Any]) -> None:
                tasks.append(trio.lowlevel.current_task())

        async with open_actor_system("t") as system:
            sup = await sessions(system)
            await sup.start_child(ActorSpec(name="w", factory=Where, restart=Restart.TEMPORARY))
            await trio.testing.wait_all_tasks_blocked()
        assert len(tasks) == 2
        assert tasks[0] is tasks[1]


class TestStopping:
    async def test_stopping_cancels_the_work_at_once(self) -> None:
        """Not after the grace: a stopped turn stops its provider stream now."""
        log: list[str] = []
        async with open_actor_system("t", stop_grace_s=LONG_GRACE_S) as system:
            sup = await sessions(system)
            await sup.start_child(
                ActorSpec(name="w", factory=lambda: Work(log, hold=True), restart=Restart.TEMPORARY)
            )
            await trio.testing.wait_all_tasks_blocked()
            assert log == ["run"]
            with trio.fail_after(5):
                await sup.stop_child("w")
            assert log == ["run", "run cancelled", "on_stop"]
            assert sup.children() == []

    async def test_ctx_stop_cancels_its_own_work(self) -> None:
        log: list[str] = []

        class StopsItself(TaskActor):
            async def run(self, ctx: ActorContext[Any]) -> None:
                ctx.stop()
                await wait_until_cancelled(log, "run cancelled")

        async with open_actor_system("t", stop_grace_s=LONG_GRACE_S) as system:
            sup = await sessions(system)
            with trio.fail_after(5):
                await sup.start_child(
                    ActorSpec(name="w", factory=StopsItself, restart=Restart.TEMPORARY)
                )
                await trio.testing.wait_all_tasks_blocked()
            assert log == ["run cancelled"]
            assert sup.children() == []

    async def test_children_are_stopped_after_the_work(self) -> None:
        log: list[str] = []

        class Parent(TaskActor):
            async def run(self, ctx: ActorContext[Any]) -> None:
                await ctx.start_child(
                    ActorSpec(
                        name="child",
                        factory=lambda: Work(log, hold=True),
                        restart=Restart.TEMPORARY,
                    )
                )
                await wait_until_cancelled(log, "parent cancelled")

        async with open_actor_system("t", stop_grace_s=LONG_GRACE_S) as system:
            sup = await sessions(system)
            await sup.start_child(ActorSpec(name="p", factory=Parent, restart=Restart.TEMPORARY))
            await trio.testing.wait_all_tasks_blocked()
            with trio.fail_after(5):
                await sup.stop_child("p")
        assert log == ["run", "parent cancelled", "run cancelled", "on_stop"]


@pytest.mark.parametrize("hold", [False, True])
async def test_system_shutdown_ends_task_actors(hold: bool) -> None:
    log: list[str] = []
    with trio.fail_after(5):
        async with open_actor_system("t", stop_grace_s=LONG_GRACE_S) as system:
            sup = await sessions(system)
            await sup.start_child(
                ActorSpec(name="w", factory=lambda: Work(log, hold=hold), restart=Restart.TEMPORARY)
            )
            await trio.testing.wait_all_tasks_blocked()
    assert log[-1] == "on_stop"
