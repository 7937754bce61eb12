"""A failure is seen: logged once with what happens next, kept after the actor is gone, and
raised to a parent that waits on its child (``ctx.run_child``)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio
import trio.testing

from zl_actors import (
    ActorContext,
    ActorCrashed,
    ActorSpec,
    Backoff,
    Restart,
    RestartIntensity,
    SupervisorSpec,
    TaskActor,
    open_actor_system,
    snapshot_from_json,
)
from zl_actors._reports import RECENT_FAILURES_KEPT

from ._support import Boom, Fail, counter


class Worker(TaskActor):
    """Fails (``Boom``), returns, or waits forever, as told."""

    def __init__(self, how: str, started: trio.Event | None = None) -> None:
        self.how = how
        self.started = started

    async def run(self, ctx: ActorContext[Any]) -> None:
        if self.started is not None:
            self.started.set()
        if self.how == "fail":
            raise Boom("the work broke")
        if self.how == "hang":
            await trio.sleep_forever()


class FailsToStart(TaskActor):
    async def on_start(self, ctx: ActorContext[Any]) -> None:
        raise Boom("no start")

    async def run(self, ctx: ActorContext[Any]) -> None:
        return None


class Parent(TaskActor):
    """Runs one child with ``run_child`` and keeps what happened."""

    def __init__(self, child: ActorSpec[Any], seen: list[BaseException | None]) -> None:
        self.child = child
        self.seen = seen

    async def run(self, ctx: ActorContext[Any]) -> None:
        try:
            await ctx.run_child(self.child)
        except ActorCrashed as exc:
            self.seen.append(exc)
            return
        self.seen.append(None)


def temporary(name: str, factory: Any) -> ActorSpec[Any]:
    return ActorSpec(name=name, factory=factory, restart=Restart.TEMPORARY)


async def run_parent(child: ActorSpec[Any]) -> list[BaseException | None]:
    seen: list[BaseException | None] = []
    async with open_actor_system("t") as system:
        with trio.fail_after(10):
            await system.spawn(temporary("parent", lambda: Parent(child, seen)))
            while not seen:
                await trio.sleep(0.01)
    return seen


class TestRunChild:
    """``run_child`` returns when the child ends; its failure, at any point, is raised."""

    async def test_normal_end(self) -> None:
        assert await run_parent(temporary("w", lambda: Worker("return"))) == [None]

    async def test_failure_while_running_is_raised(self) -> None:
        [error] = await run_parent(temporary("w", lambda: Worker("fail")))
        assert isinstance(error, ActorCrashed)
        assert isinstance(error.__cause__, Boom)
        assert "/t/parent/w" in str(error)
        assert "the work broke" in str(error)

    async def test_failure_while_starting_is_raised(self) -> None:
        [error] = await run_parent(temporary("w", FailsToStart))
        assert isinstance(error, ActorCrashed)
        assert "no start" in str(error)

    async def test_injected_crash_is_raised(self) -> None:
        started = trio.Event()
        seen: list[BaseException | None] = []
        child = temporary("w", lambda: Worker("hang", started))
        async with open_actor_system("t", faults=True) as system:
            with trio.fail_after(10):
                await system.spawn(temporary("parent", lambda: Parent(child, seen)))
                await started.wait()
                system.faults.crash("/t/parent/w")
                while not seen:
                    await trio.sleep(0.01)
        assert isinstance(seen[0], ActorCrashed)

    async def test_cancelled_waiter_stops_the_child(self) -> None:
        started = trio.Event()
        stopped = trio.Event()

        class Waiter(TaskActor):
            async def run(self, ctx: ActorContext[Any]) -> None:
                with trio.move_on_after(0.2):
                    await ctx.run_child(temporary("w", lambda: Worker("hang", started)))
                assert ctx.children() == []
                stopped.set()
                await trio.sleep_forever()

        async with open_actor_system("t") as system:
            with trio.fail_after(10):
                await system.spawn(temporary("waiter", Waiter))
                await started.wait()
                await stopped.wait()


class TestFailureReports:
    """Every abnormal exit: one log line, and an entry in the snapshot's recent failures."""

    async def test_temporary_child_failure_is_kept_after_it_is_gone(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.ERROR, logger="zl_actors")
        async with open_actor_system("t") as system:
            sup = await system.spawn(SupervisorSpec(name="sup"))
            await sup.start_child(temporary("w", lambda: Worker("fail")))
            await trio.testing.wait_all_tasks_blocked()
            snapshot = system.snapshot()
        assert snapshot.find("/t/sup/w") is None  # gone from the tree...
        [failure] = snapshot.recent_failures  # ...but not forgotten
        assert failure.path == "/t/sup/w"
        assert failure.type == "Boom"
        assert failure.message == "the work broke"
        assert failure.action == "not restarted (temporary)"
        [record] = [r for r in caplog.records if r.name == "zl_actors"]
        assert record.levelno == logging.ERROR
        assert record.getMessage() == (
            "actor /t/sup/w (Worker) failed: Boom: the work broke; not restarted (temporary)"
        )
        # The JSON form the debug endpoint serves keeps them.
        assert snapshot_from_json(snapshot.to_json()).recent_failures == snapshot.recent_failures

    async def test_restarts_left_then_giving_up(self, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.ERROR, logger="zl_actors")
        log: list[str] = []
        async with open_actor_system(
            "t", root_intensity=RestartIntensity(max_restarts=0)
        ) as system:
            await system.spawn(
                SupervisorSpec(
                    name="sup",
                    children=[ActorSpec(name="c", factory=counter(log, "c"))],
                    intensity=RestartIntensity(max_restarts=2, within_s=60),
                    backoff=Backoff(initial_s=0.0),
                    restart=Restart.TEMPORARY,
                )
            )
            for _ in range(3):
                ref = system.lookup("/t/sup/c")
                with pytest.raises(ActorCrashed):
                    await ref.ask(Fail())
                await trio.testing.wait_all_tasks_blocked()
            actions = [f.action for f in system.snapshot().recent_failures]
        assert actions == [
            "restarting (1 more restarts allowed within 60 s)",
            "restarting (0 more restarts allowed within 60 s)",
            "/t/sup gives up (2 restarts within 60 s)",
            "not restarted (temporary)",  # the supervisor itself, reported by the root
        ]
        lines = [r.getMessage() for r in caplog.records if r.name == "zl_actors"]
        assert len(lines) == 4  # once each
        assert lines[3].startswith("supervisor /t/sup (Supervisor) failed: SupervisorGaveUp:")

    async def test_list_is_bounded(self) -> None:
        async with open_actor_system("t") as system:
            sup = await system.spawn(SupervisorSpec(name="sup"))
            for index in range(RECENT_FAILURES_KEPT + 5):
                await sup.start_child(temporary(f"w{index}", lambda: Worker("fail")))
            await trio.testing.wait_all_tasks_blocked()
            failures = system.snapshot().recent_failures
        assert len(failures) == RECENT_FAILURES_KEPT
        assert failures[-1].path == f"/t/sup/w{RECENT_FAILURES_KEPT + 4}"  # newest last

    async def test_normal_exits_are_not_failures(self) -> None:
        async with open_actor_system("t") as system:
            sup = await system.spawn(SupervisorSpec(name="sup"))
            await sup.start_child(temporary("w", lambda: Worker("return")))
            await trio.testing.wait_all_tasks_blocked()
            assert system.snapshot().recent_failures == ()
