from __future__ import annotations

import inspect
import json
from typing import Any

import pytest
import trio
import trio.testing

import zl_actors
from zl_actors import (
    Actor,
    ActorContext,
    ActorSpec,
    FaultInjectionDisabled,
    NoSuchActor,
    Restart,
    SupervisorSpec,
    open_actor_system,
    render_tree,
    snapshot_from_json,
)

from ._support import Add, Block, Total, counter, live_tasks


class Background(Actor[Any]):
    """Starts helper tasks in its nursery: they must not outlive it."""

    async def on_start(self, ctx: ActorContext[Any]) -> None:
        for _ in range(3):
            ctx.nursery.start_soon(trio.sleep_forever)

    async def handle(self, message: Any, ctx: ActorContext[Any]) -> None:
        return None


class TestSystem:
    """Nothing runs outside the system; leaving it leaves no task behind."""

    async def test_leaving_the_block_stops_everything(self) -> None:
        before = live_tasks()
        async with open_actor_system("t") as system:
            sup = await system.spawn(SupervisorSpec(name="sup"))
            for index in range(20):
                await sup.start_child(
                    ActorSpec(name=f"w{index}", factory=Background, restart=Restart.TEMPORARY)
                )
            assert live_tasks() > before + 20 * 4
        assert live_tasks() == before

    async def test_a_cancelled_block_still_stops_the_tree(self) -> None:
        before = live_tasks()
        log: list[str] = []
        with trio.move_on_after(0.05):
            async with open_actor_system("t") as system:
                await system.spawn(ActorSpec(name="a", factory=counter(log, "a")))
                await trio.sleep_forever()
        assert log == ["start a", "stop a"]
        assert live_tasks() == before

    async def test_the_blocks_own_exception_leaves_unwrapped(self) -> None:
        with pytest.raises(KeyError):
            async with open_actor_system("t") as system:
                await system.spawn(ActorSpec(name="a", factory=counter()))
                raise KeyError("from the block")

    async def test_nothing_runs_after_the_block(self) -> None:
        async with open_actor_system("t") as system:
            ref = await system.spawn(ActorSpec(name="a", factory=counter()))
        with pytest.raises(zl_actors.ActorStopped):
            await ref.send(Add(n=1))
        with pytest.raises(zl_actors.ActorStopped):
            await system.root.start_child(ActorSpec(name="b", factory=counter()))

    async def test_lookup(self) -> None:
        async with open_actor_system("t") as system:
            ref = await system.spawn(ActorSpec(name="a", factory=counter()))
            assert system.lookup("/t/a") == ref
            with pytest.raises(NoSuchActor):
                system.lookup("/t/missing")
            with pytest.raises(NoSuchActor):
                system.lookup("/other/a")


class TestSnapshot:
    """The introspection snapshot holds what the debug endpoint needs, as JSON."""

    async def test_snapshot_contents(self, autojump_clock: trio.abc.Clock) -> None:
        async with open_actor_system("host", faults=True) as system:
            sup = await system.spawn(SupervisorSpec(name="sessions"))
            ref = await sup.start_child(ActorSpec(name="s1", factory=counter(), mailbox_capacity=5))
            gate = trio.Event()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(ref.ask, Block(until=gate))
                await trio.testing.wait_all_tasks_blocked()
                ref.send_nowait(Add(n=1))
                ref.send_nowait(Add(n=1))
                await trio.sleep(2.0)
                snap = system.snapshot()
                gate.set()
            node = snap.find("/host/sessions/s1")
            assert node is not None
            assert node.kind == "actor"
            assert node.actor_type == "Counter"
            assert node.state == "running"
            assert (node.mailbox.depth, node.mailbox.capacity) == (2, 5)
            assert node.restarts == 0
            assert node.uptime_s == pytest.approx(2.0)
            assert node.last_failure is None
            assert snap.kind == "supervisor"
            assert [c.path for c in snap.children] == ["/host/sessions"]

            system.faults.crash("/host/sessions/s1")
            await trio.sleep(1.0)
            node = system.snapshot().find("/host/sessions/s1")
            assert node is not None
            assert node.restarts == 1
            assert node.last_failure is not None
            assert node.last_failure.type == "InjectedCrash"
            assert "/host/sessions/s1" in node.last_failure.message
            assert node.last_failure.seconds_ago == pytest.approx(1.0, abs=0.05)

    async def test_snapshot_is_json_and_round_trips(self) -> None:
        async with open_actor_system("host") as system:
            sup = await system.spawn(SupervisorSpec(name="sessions"))
            await sup.start_child(ActorSpec(name="s1", factory=counter()))
            snap = system.snapshot()
        text = json.dumps(snap.to_json())
        again = snapshot_from_json(json.loads(text))
        assert again == snap
        rendered = render_tree(snap)
        assert rendered.splitlines()[0].startswith("host [supervisor:Supervisor] running")
        assert "└─ sessions" in rendered
        assert "   └─ s1 [actor:Counter] running  mailbox 0/8" in rendered


class TestFaults:
    """Fault injection: crash, hang, slow; off unless enabled."""

    async def test_disabled_by_default(self) -> None:
        async with open_actor_system("t") as system:
            with pytest.raises(FaultInjectionDisabled):
                system.faults.crash("/t")

    async def test_crash_an_idle_actor(self) -> None:
        async with open_actor_system("t", faults=True) as system:
            ref = await system.spawn(ActorSpec(name="a", factory=counter()))
            await ref.send(Add(n=3))
            assert await ref.ask(Total()) == 3
            system.faults.crash(ref.path)
            await trio.testing.wait_all_tasks_blocked()
            assert await ref.ask(Total()) == 0
            with pytest.raises(NoSuchActor):
                system.faults.crash("/t/ghost")

    async def test_crash_a_supervisor_restarts_its_subtree(self) -> None:
        log: list[str] = []
        async with open_actor_system("t", faults=True) as system:
            await system.spawn(
                SupervisorSpec(name="sup", children=[ActorSpec(name="a", factory=counter(log))])
            )
            await system.lookup("/t/sup/a").send(Add(n=1))  # type: ignore[union-attr]
            system.faults.crash("/t/sup")
            with trio.fail_after(5):
                while system.snapshot().find("/t/sup/a") is None or len(log) < 3:
                    await trio.sleep(0.01)
            await trio.testing.wait_all_tasks_blocked()
            node = system.snapshot().find("/t/sup")
            assert node is not None
            assert node.restarts == 1
            assert node.last_failure is not None
            assert node.last_failure.type == "InjectedCrash"
            assert log == ["start counter", "stop counter", "start counter"]
            # The worker is a fresh one: the subtree was started anew.
            assert await system.lookup("/t/sup/a").ask(Total()) == 0  # type: ignore[union-attr]

    async def test_hang_until_restart(self, autojump_clock: trio.abc.Clock) -> None:
        async with open_actor_system("t", faults=True) as system:
            ref = await system.spawn(ActorSpec(name="a", factory=counter()))
            system.faults.hang(ref.path)
            with pytest.raises(zl_actors.AskTimeout):
                await ref.ask(Total(), timeout=1)
            assert system.snapshot().find(ref.path).state == "running"  # type: ignore[union-attr]
            system.faults.crash(ref.path)
            await trio.testing.wait_all_tasks_blocked()
            assert await ref.ask(Total(), timeout=1) == 0

    async def test_slow(self, autojump_clock: trio.abc.Clock) -> None:
        async with open_actor_system("t", faults=True) as system:
            ref = await system.spawn(ActorSpec(name="a", factory=counter()))
            system.faults.slow(ref.path, 0.5)
            start = trio.current_time()
            for _ in range(4):
                await ref.ask(Total())
            assert trio.current_time() - start == pytest.approx(2.0)
            system.faults.clear(ref.path)
            start = trio.current_time()
            await ref.ask(Total())
            assert trio.current_time() - start == pytest.approx(0.0)
            with pytest.raises(ValueError, match="supervisor"):
                system.faults.hang("/t")


class TestPublicSurface:
    """``zl_actors`` re-exports its API and nothing else."""

    def test_all_matches_the_exports(self) -> None:
        public = {name for name in vars(zl_actors) if not name.startswith("_")}
        assert public == set(zl_actors.__all__)
        for name in zl_actors.__all__:
            obj = getattr(zl_actors, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                assert obj.__module__.startswith("zl_actors._"), f"{name} is defined privately"
