from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from zl_actors import (
    Actor,
    ActorContext,
    ActorSpec,
    ActorSystemCrashed,
    Backoff,
    DuplicateName,
    NoSuchActor,
    Restart,
    RestartIntensity,
    SpawnError,
    Strategy,
    SupervisorRef,
    SupervisorSpec,
    TooManyChildren,
    open_actor_system,
)

from ._support import Add, Fail, Finish, Total, counter

NO_BACKOFF = Backoff(initial_s=0.0)


def three_children(log: list[str], restart: Restart = Restart.PERMANENT) -> list[Any]:
    return [ActorSpec(name=n, factory=counter(log, n), restart=restart) for n in ("a", "b", "c")]


async def crash(system: Any, path: str) -> None:
    """Crash the actor at path by a failing request and wait until its supervisor is done."""
    ref = system.lookup(path)
    with pytest.raises(Exception):  # noqa: B017, PT011 - ActorCrashed, or ActorStopped if not restarted
        await ref.ask(Fail())
    await trio.testing.wait_all_tasks_blocked()


class TestStrategies:
    """one_for_one, one_for_all and rest_for_one restart the right children in the right order."""

    @pytest.mark.parametrize(
        ("strategy", "expected"),
        [
            (Strategy.ONE_FOR_ONE, ["stop b", "start b"]),
            (Strategy.ONE_FOR_ALL, ["stop b", "stop c", "stop a", "start a", "start b", "start c"]),
            (Strategy.REST_FOR_ONE, ["stop b", "stop c", "start b", "start c"]),
        ],
    )
    async def test_strategy(self, strategy: Strategy, expected: list[str]) -> None:
        log: list[str] = []
        async with open_actor_system("t") as system:
            await system.spawn(
                SupervisorSpec(
                    name="sup", strategy=strategy, children=three_children(log), backoff=NO_BACKOFF
                )
            )
            assert log == ["start a", "start b", "start c"]
            log.clear()
            await crash(system, "/t/sup/b")
            assert log == expected
            restarted = {node.name: node.restarts for node in system.snapshot().walk()}
            for name in "abc":
                assert restarted[name] == (1 if f"start {name}" in expected else 0)

    async def test_unaffected_siblings_keep_their_state(self) -> None:
        async with open_actor_system("t") as system:
            await system.spawn(
                SupervisorSpec(
                    name="sup",
                    strategy=Strategy.REST_FOR_ONE,
                    children=three_children([]),
                    backoff=NO_BACKOFF,
                )
            )
            for name in "abc":
                await system.lookup(f"/t/sup/{name}").send(Add(n=1))  # type: ignore[union-attr]
            await crash(system, "/t/sup/b")
            totals = [await system.lookup(f"/t/sup/{n}").ask(Total()) for n in "abc"]  # type: ignore[union-attr]
            assert totals == [1, 0, 0]


class TestRestartTypes:
    """permanent, transient and temporary children on failure and on normal exit."""

    @pytest.mark.parametrize(
        ("restart", "after_crash", "after_normal_exit"),
        [
            (Restart.PERMANENT, True, True),
            (Restart.TRANSIENT, True, False),
            (Restart.TEMPORARY, False, False),
        ],
    )
    async def test_restart_type(
        self, restart: Restart, after_crash: bool, after_normal_exit: bool
    ) -> None:
        async with open_actor_system("t") as system:
            sup = await system.spawn(
                SupervisorSpec(
                    name="sup",
                    children=[ActorSpec(name="x", factory=counter(), restart=restart)],
                    backoff=NO_BACKOFF,
                )
            )
            await crash(system, "/t/sup/x")
            assert ("x" in sup.children()) is after_crash
            if after_crash:
                ref = system.lookup("/t/sup/x")
                await ref.send(Finish())  # type: ignore[arg-type]
                await trio.testing.wait_all_tasks_blocked()
                assert ("x" in sup.children()) is after_normal_exit


class TestIntensity:
    """Too many restarts in the window: the supervisor gives up and its parent decides."""

    async def test_escalation_restarts_the_child_supervisor(self) -> None:
        async with open_actor_system("t") as system:
            await system.spawn(
                SupervisorSpec(
                    name="outer",
                    backoff=NO_BACKOFF,
                    intensity=RestartIntensity(max_restarts=5, within_s=60),
                    children=[
                        SupervisorSpec(
                            name="inner",
                            backoff=NO_BACKOFF,
                            intensity=RestartIntensity(max_restarts=2, within_s=60),
                            children=[ActorSpec(name="w", factory=counter())],
                        )
                    ],
                )
            )
            for _ in range(2):
                await crash(system, "/t/outer/inner/w")
            inner = system.snapshot().find("/t/outer/inner")
            assert inner is not None
            assert inner.restarts == 0
            assert inner.find("/t/outer/inner/w").restarts == 2  # type: ignore[union-attr]
            # The third crash within the window is one too many for "inner".
            await crash(system, "/t/outer/inner/w")
            inner = system.snapshot().find("/t/outer/inner")
            assert inner is not None
            assert inner.restarts == 1, "outer restarted inner after it gave up"
            assert inner.last_failure is not None
            assert inner.last_failure.type == "SupervisorGaveUp"
            # A fresh inner started a fresh worker.
            assert inner.find("/t/outer/inner/w").restarts == 0  # type: ignore[union-attr]

    async def test_restarts_outside_the_window_do_not_count(
        self, autojump_clock: trio.abc.Clock
    ) -> None:
        async with open_actor_system("t") as system:
            await system.spawn(
                SupervisorSpec(
                    name="sup",
                    backoff=NO_BACKOFF,
                    intensity=RestartIntensity(max_restarts=1, within_s=10),
                    children=[ActorSpec(name="w", factory=counter())],
                )
            )
            for _ in range(3):
                await crash(system, "/t/sup/w")
                await trio.sleep(11)
            node = system.snapshot().find("/t/sup")
            assert node is not None
            assert node.restarts == 0
            assert node.find("/t/sup/w").restarts == 3  # type: ignore[union-attr]

    async def test_root_giving_up_crashes_the_system(self) -> None:
        with pytest.raises(ActorSystemCrashed) as info:
            async with open_actor_system(
                "t", root_intensity=RestartIntensity(max_restarts=0, within_s=1)
            ) as system:
                await system.spawn(ActorSpec(name="w", factory=counter()))
                await crash(system, "/t/w")
                await trio.sleep_forever()
        assert "gave up" in str(info.value)

    async def test_backoff_grows_between_restarts(self, autojump_clock: trio.abc.Clock) -> None:
        starts: list[float] = []

        class Stamped(Actor[Any]):
            async def on_start(self, ctx: ActorContext[Any]) -> None:
                starts.append(trio.current_time())

            async def handle(self, message: Any, ctx: ActorContext[Any]) -> None:
                raise RuntimeError("always fails")

        sent: list[float] = []
        async with open_actor_system("t", seed=1) as system:
            await system.spawn(
                SupervisorSpec(
                    name="sup",
                    backoff=Backoff(initial_s=1.0, max_s=4.0, jitter=0.0),
                    intensity=RestartIntensity(max_restarts=10, within_s=1000),
                    children=[ActorSpec(name="w", factory=Stamped)],
                )
            )
            for _ in range(4):
                sent.append(trio.current_time())
                await system.lookup("/t/sup/w").send("go")  # type: ignore[union-attr]
                await trio.sleep(10)
        # The delay before the n-th restart in the window doubles from 1 s and is capped at 4 s.
        delays = [round(start - send, 6) for send, start in zip(sent, starts[1:], strict=True)]
        assert delays == [1.0, 2.0, 4.0, 4.0]

    def test_jitter_stays_within_its_band(self) -> None:
        import random

        backoff = Backoff(initial_s=1.0, max_s=8.0, jitter=0.25)
        rng = random.Random(7)
        samples = [backoff.delay(3, rng) for _ in range(500)]
        assert min(samples) >= 3.0
        assert max(samples) <= 5.0
        assert max(samples) - min(samples) > 1.0, "jitter spreads restarts out"


class TestStartAndStop:
    """Children start in order, stop in reverse, within a grace; dynamic children are capped."""

    async def test_start_in_order_and_stop_in_reverse(self) -> None:
        log: list[str] = []
        async with open_actor_system("t") as system:
            await system.spawn(SupervisorSpec(name="s1", children=three_children(log)))
            await system.spawn(
                SupervisorSpec(name="s2", children=[ActorSpec(name="d", factory=counter(log, "d"))])
            )
        assert log == [
            "start a",
            "start b",
            "start c",
            "start d",
            "stop d",
            "stop c",
            "stop b",
            "stop a",
        ]

    async def test_a_child_that_ignores_stop_is_cancelled_after_the_grace(
        self, autojump_clock: trio.abc.Clock
    ) -> None:
        class Stubborn(Actor[Any]):
            async def handle(self, message: Any, ctx: ActorContext[Any]) -> None:
                await trio.sleep_forever()

        async with open_actor_system("t", stop_grace_s=3.0) as system:
            ref = await system.spawn(ActorSpec(name="s", factory=Stubborn))
            await ref.send("hang")
            before = trio.current_time()
            await system.root.stop_child("s")
            assert trio.current_time() - before == pytest.approx(3.0)

    async def test_failed_start_raises_spawn_error_and_stops_started_siblings(self) -> None:
        log: list[str] = []

        class Broken(Actor[Any]):
            async def on_start(self, ctx: ActorContext[Any]) -> None:
                raise OSError("cannot open resource")

            async def handle(self, message: Any, ctx: ActorContext[Any]) -> None:
                return None

        async with open_actor_system("t") as system:
            with pytest.raises(SpawnError) as info:
                await system.spawn(
                    SupervisorSpec(
                        name="sup",
                        children=[
                            ActorSpec(name="a", factory=counter(log, "a")),
                            ActorSpec(name="broken", factory=Broken),
                            ActorSpec(name="c", factory=counter(log, "c")),
                        ],
                    )
                )
            assert "cannot open resource" in str(info.value)
            assert log == ["start a", "stop a"]
            assert system.root.children() == []

    async def test_dynamic_children(self) -> None:
        async with open_actor_system("t") as system:
            sup = await system.spawn(
                SupervisorSpec(name="sessions", max_children=2, restart=Restart.PERMANENT)
            )
            assert isinstance(sup, SupervisorRef)
            one = await sup.start_child(
                ActorSpec(name="s1", factory=counter(), restart=Restart.TEMPORARY)
            )
            await sup.start_child(
                ActorSpec(name="s2", factory=counter(), restart=Restart.TEMPORARY)
            )
            with pytest.raises(TooManyChildren):
                await sup.start_child(
                    ActorSpec(name="s3", factory=counter(), restart=Restart.TEMPORARY)
                )
            await sup.stop_child("s2")
            with pytest.raises(DuplicateName):
                await sup.start_child(
                    ActorSpec(name="s1", factory=counter(), restart=Restart.TEMPORARY)
                )
            with pytest.raises(NoSuchActor):
                await sup.stop_child("nope")
            await one.send(Add(n=1))
            assert await one.ask(Total()) == 1
            assert sup.children() == ["s1"]

    async def test_actor_owned_children_die_with_their_owner(self) -> None:
        log: list[str] = []

        class Owner(Actor[Any]):
            async def on_start(self, ctx: ActorContext[Any]) -> None:
                await ctx.start_child(
                    ActorSpec(name="turn", factory=counter(log, "turn"), restart=Restart.TEMPORARY)
                )

            async def handle(self, message: Any, ctx: ActorContext[Any]) -> None:
                raise RuntimeError("owner fails")

        async with open_actor_system("t") as system:
            await system.spawn(
                SupervisorSpec(
                    name="sup",
                    backoff=NO_BACKOFF,
                    children=[ActorSpec(name="owner", factory=Owner)],
                )
            )
            assert system.snapshot().find("/t/sup/owner/turn") is not None
            await system.lookup("/t/sup/owner").send("fail")  # type: ignore[union-attr]
            await trio.testing.wait_all_tasks_blocked()
            assert log == ["start turn", "stop turn", "start turn"]
            assert system.snapshot().find("/t/sup/owner").restarts == 1  # type: ignore[union-attr]
