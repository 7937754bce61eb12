from __future__ import annotations

import functools

import pytest
import trio
import trio.testing

from zl_actors import (
    ActorCrashed,
    ActorSpec,
    ActorStopped,
    AskTimeout,
    MailboxFull,
    Restart,
    open_actor_system,
)

from ._support import Add, Block, Boom, Counter, Fail, Finish, Total, counter


class TestMailbox:
    """Bounded mailboxes: send waits, send_nowait raises, capacities are declared."""

    async def test_capacity_comes_from_the_class_or_the_spec(self) -> None:
        async with open_actor_system("t") as system:
            by_class = await system.spawn(ActorSpec(name="a", factory=Counter))
            by_spec = await system.spawn(ActorSpec(name="b", factory=Counter, mailbox_capacity=3))
            snap = system.snapshot()
            assert snap.find(by_class.path).mailbox.capacity == Counter.mailbox_capacity  # type: ignore[union-attr]
            assert snap.find(by_spec.path).mailbox.capacity == 3  # type: ignore[union-attr]

    async def test_full_mailbox_blocks_send_and_nowait_raises(self) -> None:
        async with open_actor_system("t") as system:
            ref = await system.spawn(ActorSpec(name="c", factory=counter(), mailbox_capacity=2))
            gate = trio.Event()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(ref.ask, Block(until=gate))
                await trio.testing.wait_all_tasks_blocked()
                # The actor is busy with Block; two messages fill the mailbox.
                ref.send_nowait(Add(n=1))
                ref.send_nowait(Add(n=1))
                with pytest.raises(MailboxFull) as info:
                    ref.send_nowait(Add(n=1))
                assert info.value.capacity == 2
                sent = trio.Event()

                async def blocked_sender() -> None:
                    await ref.send(Add(n=1))
                    sent.set()

                nursery.start_soon(blocked_sender)
                await trio.testing.wait_all_tasks_blocked()
                assert not sent.is_set(), "send must wait while the mailbox is full"
                gate.set()
                await sent.wait()
            assert await ref.ask(Total()) == 3

    async def test_send_to_a_stopped_actor_raises(self) -> None:
        async with open_actor_system("t") as system:
            ref = await system.spawn(ActorSpec(name="c", factory=counter()))
            await system.root.stop_child("c")
            with pytest.raises(ActorStopped):
                await ref.send(Add(n=1))
            with pytest.raises(ActorStopped):
                ref.send_nowait(Add(n=1))
            with pytest.raises(ActorStopped):
                await ref.ask(Total())

    async def test_sender_waiting_on_a_full_mailbox_is_released_when_the_actor_stops(self) -> None:
        async with open_actor_system("t", stop_grace_s=0.1) as system:
            ref = await system.spawn(ActorSpec(name="c", factory=counter(), mailbox_capacity=1))
            gate = trio.Event()
            errors: list[BaseException] = []
            async with trio.open_nursery() as nursery:

                async def ask_blocked() -> None:
                    try:
                        await ref.ask(Block(until=gate), timeout=10)
                    except Exception as exc:
                        errors.append(exc)

                async def send_blocked() -> None:
                    try:
                        await ref.send(Add(n=1))
                    except Exception as exc:
                        errors.append(exc)

                nursery.start_soon(ask_blocked)
                await trio.testing.wait_all_tasks_blocked()
                ref.send_nowait(Add(n=1))
                nursery.start_soon(send_blocked)
                await trio.testing.wait_all_tasks_blocked()
                with trio.fail_after(5):
                    await system.root.stop_child("c")
            assert len(errors) == 2
            assert all(isinstance(err, ActorStopped) for err in errors)


class TestAsk:
    """Request/reply: answers, typed errors, never a hang."""

    async def test_ask_returns_what_handle_returns(self) -> None:
        async with open_actor_system("t") as system:
            ref = await system.spawn(ActorSpec(name="c", factory=counter()))
            await ref.send(Add(n=4))
            await ref.send(Add(n=5))
            assert await ref.ask(Total()) == 9

    async def test_crash_mid_request_gives_actor_crashed_and_the_actor_restarts(self) -> None:
        async with open_actor_system("t") as system:
            ref = await system.spawn(ActorSpec(name="c", factory=counter()))
            await ref.send(Add(n=1))
            with trio.fail_after(5), pytest.raises(ActorCrashed) as info:
                await ref.ask(Fail(reason="kaput"))
            assert isinstance(info.value.__cause__, Boom)
            assert "kaput" in str(info.value)
            # A fresh incarnation answers (its state starts over) through the same ref.
            assert await ref.ask(Total()) == 0
            assert system.snapshot().find(ref.path).restarts == 1  # type: ignore[union-attr]

    async def test_ask_to_a_hung_actor_times_out(self, autojump_clock: trio.abc.Clock) -> None:
        async with open_actor_system("t", faults=True, stop_grace_s=0.5) as system:
            ref = await system.spawn(ActorSpec(name="c", factory=counter()))
            system.faults.hang(ref.path)
            start = trio.current_time()
            with pytest.raises(AskTimeout) as info:
                await ref.ask(Total(), timeout=2.0)
            assert trio.current_time() - start == pytest.approx(2.0)
            assert info.value.timeout == 2.0

    async def test_ask_timeout_covers_waiting_for_mailbox_room(
        self, autojump_clock: trio.abc.Clock
    ) -> None:
        async with open_actor_system("t", stop_grace_s=0.5) as system:
            ref = await system.spawn(ActorSpec(name="c", factory=counter(), mailbox_capacity=1))
            gate = trio.Event()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(functools.partial(ref.ask, Block(until=gate), timeout=100.0))
                await trio.testing.wait_all_tasks_blocked()
                ref.send_nowait(Add(n=1))
                with pytest.raises(AskTimeout):
                    await ref.ask(Total(), timeout=1.0)
                gate.set()

    async def test_queued_asks_fail_with_actor_stopped_when_the_actor_ends_for_good(self) -> None:
        async with open_actor_system("t") as system:
            ref = await system.spawn(
                ActorSpec(name="c", factory=counter(), restart=Restart.TEMPORARY)
            )
            gate = trio.Event()
            outcomes: list[object] = []
            async with trio.open_nursery() as nursery:

                async def ask(request: object) -> None:
                    try:
                        outcomes.append(await ref.ask(request, timeout=5))  # type: ignore[arg-type]
                    except Exception as exc:
                        outcomes.append(type(exc))

                nursery.start_soon(ask, Block(until=gate))
                await trio.testing.wait_all_tasks_blocked()
                nursery.start_soon(ask, Fail())
                await trio.testing.wait_all_tasks_blocked()
                nursery.start_soon(ask, Total())
                await trio.testing.wait_all_tasks_blocked()
                gate.set()
            # Block answers; Fail crashes the temporary actor; Total was queued behind it.
            assert outcomes == [None, ActorCrashed, ActorStopped]

    async def test_messages_queued_during_a_crash_are_handled_by_the_next_incarnation(self) -> None:
        async with open_actor_system("t") as system:
            ref = await system.spawn(ActorSpec(name="c", factory=counter()))
            gate = trio.Event()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(ref.ask, Block(until=gate))
                await trio.testing.wait_all_tasks_blocked()
                ref.send_nowait(Fail())
                ref.send_nowait(Add(n=7))
                gate.set()
            assert await ref.ask(Total()) == 7

    async def test_a_transient_actor_that_stops_itself_is_not_restarted(self) -> None:
        async with open_actor_system("t") as system:
            ref = await system.spawn(
                ActorSpec(name="c", factory=counter(), restart=Restart.TRANSIENT)
            )
            await ref.send(Finish())
            with trio.fail_after(5):
                while system.root.children():
                    await trio.sleep(0.01)
            with pytest.raises(ActorStopped):
                await ref.send(Add(n=1))


class TestDeferredReplies:
    """An actor can answer a request later without blocking its mailbox."""

    async def test_answers_out_of_order_while_the_mailbox_keeps_flowing(self) -> None:
        from typing import Any

        import attrs

        from zl_actors import Actor, ActorContext, Request

        @attrs.frozen(kw_only=True)
        class Slow(Request[str]):
            gate: trio.Event
            label: str

        class Worker(Actor[Any]):
            async def handle(self, message: Any, ctx: ActorContext[Any]) -> Any:
                if isinstance(message, Slow):
                    reply = ctx.defer_reply()

                    async def finish() -> None:
                        await message.gate.wait()
                        reply.resolve(message.label)

                    ctx.nursery.start_soon(finish)
                    return None
                return "quick"

        async with open_actor_system("t") as system:
            ref = await system.spawn(ActorSpec(name="w", factory=Worker))
            first, second = trio.Event(), trio.Event()
            answers: list[str] = []
            async with trio.open_nursery() as nursery:

                async def ask_slow(gate: trio.Event, label: str) -> None:
                    answers.append(await ref.ask(Slow(gate=gate, label=label)))

                nursery.start_soon(ask_slow, first, "first")
                nursery.start_soon(ask_slow, second, "second")
                await trio.testing.wait_all_tasks_blocked()
                answers.append(await ref.ask(Total()))  # type: ignore[arg-type]
                second.set()
                await trio.testing.wait_all_tasks_blocked()
                first.set()
            assert answers == ["quick", "second", "first"]

    async def test_deferred_replies_fail_when_the_actor_crashes(self) -> None:
        from typing import Any

        import attrs

        from zl_actors import Actor, ActorContext, Request

        @attrs.frozen(kw_only=True)
        class Later(Request[str]):
            pass

        class Worker(Actor[Any]):
            async def handle(self, message: Any, ctx: ActorContext[Any]) -> Any:
                if isinstance(message, Later):
                    ctx.defer_reply()
                    return None
                raise Boom("worker fails")

        async with open_actor_system("t") as system:
            ref = await system.spawn(ActorSpec(name="w", factory=Worker))
            outcome: list[BaseException] = []
            async with trio.open_nursery() as nursery:

                async def ask_later() -> None:
                    try:
                        await ref.ask(Later(), timeout=5)
                    except Exception as exc:
                        outcome.append(exc)

                nursery.start_soon(ask_later)
                await trio.testing.wait_all_tasks_blocked()
                await ref.send("fail")  # type: ignore[arg-type]
            assert len(outcome) == 1
            assert isinstance(outcome[0], ActorCrashed)
            with pytest.raises(RuntimeError, match="defer_reply"):
                ActorContextProbe.defer_outside_handle(system)


class ActorContextProbe:
    @staticmethod
    def defer_outside_handle(system: object) -> None:
        from zl_actors._actor import ActorContext

        cell = system.find_cell("/t/w")  # type: ignore[attr-defined]
        ActorContext(cell, None).defer_reply()  # type: ignore[arg-type]


class TestTell:
    """tell: no scheduling point while there is room; waits like send when full."""

    async def test_no_yield_with_room_and_waits_when_full(self) -> None:
        async with open_actor_system("t") as system:
            ref = await system.spawn(ActorSpec(name="c", factory=counter(), mailbox_capacity=2))
            gate = trio.Event()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(functools.partial(ref.ask, Block(until=gate), timeout=10))
                await trio.testing.wait_all_tasks_blocked()
                # Not even a cancellation check: a ready task as the witness would miss a
                # yield whenever Trio happened to resume this task first in the next pass.
                with trio.testing.assert_no_checkpoints():
                    await ref.tell(Add(n=1))
                    await ref.tell(Add(n=2))
                told = trio.Event()

                async def third() -> None:
                    await ref.tell(Add(n=3))
                    told.set()

                nursery.start_soon(third)
                await trio.testing.wait_all_tasks_blocked()
                assert not told.is_set(), "tell waits while the mailbox is full"
                gate.set()
                await told.wait()
            assert await ref.ask(Total()) == 6
            await system.root.stop_child("c")
            with pytest.raises(ActorStopped):
                await ref.tell(Add(n=1))
