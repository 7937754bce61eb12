from __future__ import annotations

import pytest
import trio
import trio.testing

from zl_actors._mailbox import Mailbox


class TestMailboxQueue:
    """The mailbox is a bounded FIFO with Trio channel semantics."""

    async def test_fifo_and_capacity(self) -> None:
        box = Mailbox(2)
        box.put_nowait((1, None))
        box.put_nowait((2, None))
        with pytest.raises(trio.WouldBlock):
            box.put_nowait((3, None))
        assert len(box) == 2
        assert await box.get() == (1, None)
        assert box.get_nowait() == (2, None)
        with pytest.raises(trio.WouldBlock):
            box.get_nowait()

    async def test_waiting_senders_are_served_in_arrival_order(self) -> None:
        box = Mailbox(1)
        box.put_nowait((0, None))
        async with trio.open_nursery() as nursery:
            for index in (1, 2, 3):
                nursery.start_soon(box.put, (index, None))
                await trio.testing.wait_all_tasks_blocked()
            got = [(await box.get())[0] for _ in range(4)]
        assert got == [0, 1, 2, 3]

    async def test_zero_capacity_is_a_rendezvous(self) -> None:
        box = Mailbox(0)
        with pytest.raises(trio.WouldBlock):
            box.put_nowait(("x", None))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(box.put, ("x", None))
            await trio.testing.wait_all_tasks_blocked()
            assert await box.get() == ("x", None)

    async def test_cancelled_put_leaves_nothing_behind(self) -> None:
        box = Mailbox(0)
        with trio.move_on_after(0.01):
            await box.put(("lost", None))
        with pytest.raises(trio.WouldBlock):
            box.get_nowait()

    async def test_close_for_senders_drains_then_ends(self) -> None:
        box = Mailbox(2)
        box.put_nowait(("a", None))
        box.close_for_senders()
        with pytest.raises(trio.ClosedResourceError):
            box.put_nowait(("b", None))
        assert await box.get() == ("a", None)
        with pytest.raises(trio.EndOfChannel):
            await box.get()

    async def test_close_wakes_blocked_senders_and_a_parked_receiver(self) -> None:
        box = Mailbox(0)
        errors: list[type[BaseException]] = []

        async def put() -> None:
            try:
                await box.put(("x", None))
            except trio.ClosedResourceError as exc:
                errors.append(type(exc))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(put)
            await trio.testing.wait_all_tasks_blocked()
            box.close_for_senders()
        assert errors == [trio.ClosedResourceError]
        receiver_box = Mailbox(1)
        async with trio.open_nursery() as nursery:

            async def get() -> None:
                with pytest.raises(trio.EndOfChannel):
                    await receiver_box.get()

            nursery.start_soon(get)
            await trio.testing.wait_all_tasks_blocked()
            receiver_box.close_for_senders()

    async def test_drain_returns_what_is_queued(self) -> None:
        box = Mailbox(3)
        for item in "abc":
            box.put_nowait((item, None))
        assert [env[0] for env in box.drain()] == ["a", "b", "c"]
        assert len(box) == 0

    def test_negative_capacity_is_refused(self) -> None:
        with pytest.raises(ValueError, match="capacity"):
            Mailbox(-1)
