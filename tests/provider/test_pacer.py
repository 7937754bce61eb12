"""The mock's pacer: many sleeps from one timer, on time, cancellable, never a hang."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from actors.provider import Pacer


class TestPacer:
    async def test_every_sleeper_wakes_at_its_time_in_order(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        pacer = Pacer()
        woke: list[tuple[float, float]] = []

        async def sleeper(at: float) -> None:
            await pacer.sleep_until(at)
            woke.append((at, trio.current_time()))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(pacer.run)
            await trio.testing.wait_all_tasks_blocked()
            start = trio.current_time()
            async with trio.open_nursery() as sleepers:
                for offset in (3.0, 1.0, 2.0, 1.0, 0.5):
                    sleepers.start_soon(sleeper, start + offset)
            nursery.cancel_scope.cancel()
        assert [at for at, _ in woke] == sorted(at for at, _ in woke)
        for at, now in woke:
            assert now == pytest.approx(at)
        assert pacer.waiting == 0

    async def test_an_earlier_sleep_moves_the_timer_forward(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        pacer = Pacer()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pacer.run)
            nursery.start_soon(pacer.sleep_until, trio.current_time() + 100)
            await trio.testing.wait_all_tasks_blocked()
            start = trio.current_time()
            await pacer.sleep_until(start + 1)
            assert trio.current_time() == pytest.approx(start + 1)
            nursery.cancel_scope.cancel()

    async def test_a_cancelled_sleeper_leaves_at_once(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        pacer = Pacer()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pacer.run)
            await trio.testing.wait_all_tasks_blocked()
            start = trio.current_time()
            with trio.move_on_after(1):
                await pacer.sleep_until(start + 60)
            assert trio.current_time() == pytest.approx(start + 1)
            nursery.cancel_scope.cancel()

    async def test_without_a_driver_it_sleeps_on_its_own(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        pacer = Pacer()
        start = trio.current_time()
        await pacer.sleep_until(start + 2)
        assert trio.current_time() == pytest.approx(start + 2)

    async def test_stopping_the_driver_wakes_the_sleepers(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        pacer = Pacer()
        woke = trio.Event()

        async def sleeper() -> None:
            await pacer.sleep_until(trio.current_time() + 3600)
            woke.set()

        async with trio.open_nursery() as outer:
            async with trio.open_nursery() as driver:
                driver.start_soon(pacer.run)
                await trio.testing.wait_all_tasks_blocked()
                outer.start_soon(sleeper)
                await trio.testing.wait_all_tasks_blocked()
                driver.cancel_scope.cancel()
            with trio.fail_after(1):
                await woke.wait()
        assert not pacer.running

    async def test_one_driver_only(self) -> None:
        pacer = Pacer()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pacer.run)
            await trio.testing.wait_all_tasks_blocked()
            with pytest.raises(RuntimeError):
                await pacer.run()
            nursery.cancel_scope.cancel()
