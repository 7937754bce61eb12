"""``Actor.handle_inline`` and ``ActorContext.start_child_soon``: work without a hand-over."""

from __future__ import annotations

from typing import Any

import attrs
import trio
import trio.testing

from zl_actors import (
    Actor,
    ActorContext,
    ActorRef,
    ActorSpec,
    DuplicateName,
    Request,
    Restart,
    TaskActor,
    open_actor_system,
)

from ._support import Boom


@attrs.frozen(kw_only=True)
class Note:
    """Logged by the actor; ``fast`` ones are taken inline, unless the actor refuses them."""

    text: str
    fast: bool = True


@attrs.frozen(kw_only=True)
class Hold:
    """Makes ``handle`` wait for ``until``."""

    until: trio.Event


@attrs.frozen(kw_only=True)
class Echo(Request[str]):
    text: str


@attrs.frozen(kw_only=True)
class StartHelper:
    """Inline: start a child soon, named ``name``."""

    name: str
    fail: bool = False


Message = Note | Hold | Echo | StartHelper


class Helper(TaskActor):
    def __init__(self, log: list[str], name: str, fail: bool) -> None:
        if fail:
            raise Boom("the helper cannot be made")
        self.log = log
        self.name = name

    async def run(self, ctx: ActorContext[Any]) -> None:
        self.log.append(f"{self.name} ran")


class Recorder(Actor[Message]):
    """Logs where each message was handled: inline (and in which task) or by ``handle``."""

    def __init__(self, log: list[str], *, refuse: bool = False, fail_inline: bool = False):
        self.log = log
        self.refuse = refuse
        self.fail_inline = fail_inline

    def handle_inline(self, message: Message, ctx: ActorContext[Message]) -> bool:
        if isinstance(message, StartHelper):
            log, name, fail = self.log, message.name, message.fail
            try:
                ctx.start_child_soon(
                    ActorSpec(
                        name=name,
                        factory=lambda: Helper(log, name, fail),
                        restart=Restart.TEMPORARY,
                    )
                )
            except DuplicateName:
                self.log.append(f"duplicate {name}")
            else:
                self.log.append(f"started {name}")
            return True
        if not isinstance(message, Note) or not message.fast or self.refuse:
            return False
        if self.fail_inline:
            raise Boom("inline handling failed")
        self.log.append(f"inline {message.text} in {trio.lowlevel.current_task().name}")
        if message.text == "to self":
            ctx.self_ref.send_nowait(Note(text="sent to self"))
        if message.text == "to self, then fail":
            ctx.self_ref.send_nowait(Note(text="sent to self"))  # wakes the loop first
            raise Boom("failed after waking its own loop")
        return True

    async def handle(self, message: Message, ctx: ActorContext[Message]) -> Any:
        match message:
            case Note(text=text):
                self.log.append(f"handle {text}")
            case Hold(until=until):
                self.log.append("holding")
                await until.wait()
            case Echo(text=text):
                return text
        return None


async def spawn(system: Any, log: list[str], **kwargs: Any) -> ActorRef[Message]:
    ref: ActorRef[Message] = await system.spawn(
        ActorSpec(name="rec", factory=lambda: Recorder(log, **kwargs), restart=Restart.PERMANENT)
    )
    await trio.testing.wait_all_tasks_blocked()  # its loop is parked: it is idle
    return ref


def sender_task() -> str:
    return trio.lowlevel.current_task().name


class TestInline:
    """An idle actor takes a message in the sender's task; otherwise the mailbox as usual."""

    async def test_an_idle_actor_handles_it_in_the_senders_task(self) -> None:
        log: list[str] = []
        async with open_actor_system("t") as system:
            ref = await spawn(system, log)
            with trio.testing.assert_no_checkpoints():
                ref.send_nowait(Note(text="a"))
                await ref.tell(Note(text="b"))
            # Done before the sender yielded: no hand-over to the actor's task.
            assert log == [f"inline a in {sender_task()}", f"inline b in {sender_task()}"]

    async def test_a_refused_message_is_queued_for_handle(self) -> None:
        log: list[str] = []
        async with open_actor_system("t") as system:
            ref = await spawn(system, log, refuse=True)
            ref.send_nowait(Note(text="a"))
            assert log == []
            await trio.testing.wait_all_tasks_blocked()
            assert log == ["handle a"]

    async def test_nothing_overtakes_a_message_already_handed_over(self) -> None:
        log: list[str] = []
        async with open_actor_system("t") as system:
            ref = await spawn(system, log)
            ref.send_nowait(Note(text="slow", fast=False))  # handed to the parked loop
            ref.send_nowait(Note(text="fast"))  # must wait its turn
            await trio.testing.wait_all_tasks_blocked()
            assert log == ["handle slow", "handle fast"]

    async def test_a_busy_actor_gets_it_in_its_mailbox(self) -> None:
        log: list[str] = []
        release = trio.Event()
        async with open_actor_system("t") as system:
            ref = await spawn(system, log)
            ref.send_nowait(Hold(until=release))
            await trio.testing.wait_all_tasks_blocked()
            ref.send_nowait(Note(text="while held"))
            assert log == ["holding"]
            release.set()
            await trio.testing.wait_all_tasks_blocked()
            assert log == ["holding", "handle while held"]
            ref.send_nowait(Note(text="idle again"))
            assert log[-1] == f"inline idle again in {sender_task()}"

    async def test_what_it_sends_to_itself_is_queued(self) -> None:
        log: list[str] = []
        async with open_actor_system("t") as system:
            ref = await spawn(system, log)
            ref.send_nowait(Note(text="to self"))
            assert log == [f"inline to self in {sender_task()}"]
            await trio.testing.wait_all_tasks_blocked()
            assert log[1:] == ["handle sent to self"]

    async def test_ask_is_never_inline(self) -> None:
        log: list[str] = []
        async with open_actor_system("t") as system:
            ref = await spawn(system, log)
            with trio.fail_after(5):
                assert await ref.ask(Echo(text="answer")) == "answer"

    async def test_send_is_never_inline(self) -> None:
        log: list[str] = []
        async with open_actor_system("t") as system:
            ref = await spawn(system, log)
            await ref.send(Note(text="a"))
            await trio.testing.wait_all_tasks_blocked()
            assert log == ["handle a"]

    async def test_a_faulty_actor_is_not_offered_it(self) -> None:
        log: list[str] = []
        async with open_actor_system("t", faults=True) as system:
            ref = await spawn(system, log)
            system.faults.slow(ref.path, 0.01)
            ref.send_nowait(Note(text="a"))
            assert log == []
            with trio.fail_after(5):
                while not log:
                    await trio.sleep(0.01)
            assert log == ["handle a"]

    async def test_raising_fails_the_actor_like_handle(self) -> None:
        log: list[str] = []
        async with open_actor_system("t") as system:
            ref = await spawn(system, log, fail_inline=True)
            ref.send_nowait(Note(text="a"))  # accepted: the failure is the actor's
            await trio.testing.wait_all_tasks_blocked()
            (rec,) = system.snapshot().children
            assert rec.state == "restarting"  # its supervisor saw it fail
            assert rec.last_failure is not None
            assert rec.last_failure.type == "Boom"

    async def test_a_failure_is_not_lost_when_the_loop_was_woken_already(self) -> None:
        log: list[str] = []
        async with open_actor_system("t") as system:
            ref = await spawn(system, log)
            ref.send_nowait(Note(text="to self, then fail"))
            await trio.testing.wait_all_tasks_blocked()
            (rec,) = system.snapshot().children
            assert rec.last_failure is not None
            assert rec.last_failure.message == "failed after waking its own loop"
            assert "handle sent to self" not in log  # it failed before handling it


class TestStartChildSoon:
    """A child started without waiting: at once in the tree, running from the next pass."""

    async def test_returns_at_once_and_the_child_runs_next(self) -> None:
        log: list[str] = []
        async with open_actor_system("t") as system:
            ref = await spawn(system, log)
            with trio.testing.assert_no_checkpoints():
                ref.send_nowait(StartHelper(name="h1"))
            assert log == ["started h1"]
            await trio.testing.wait_all_tasks_blocked()
            assert log == ["started h1", "h1 ran"]
            (rec,) = system.snapshot().children
            assert rec.children == ()  # a temporary child is forgotten once it ends

    async def test_a_failure_before_ready_is_recorded_not_raised(self) -> None:
        log: list[str] = []
        async with open_actor_system("t") as system:
            ref = await spawn(system, log)
            ref.send_nowait(StartHelper(name="bad", fail=True))
            await trio.testing.wait_all_tasks_blocked()
            (rec,) = system.snapshot().children
            assert rec.restarts == 0  # the parent is untouched
            assert rec.children == ()
            ref.send_nowait(StartHelper(name="good"))
            await trio.testing.wait_all_tasks_blocked()
            assert log[-1] == "good ran"

    async def test_a_duplicate_name_raises_at_once(self) -> None:
        log: list[str] = []
        async with open_actor_system("t") as system:
            ref = await spawn(system, log)
            ref.send_nowait(StartHelper(name="twice"))
            # The first is in the tree already, though it has not run yet.
            ref.send_nowait(StartHelper(name="twice"))
            assert log == ["started twice", "duplicate twice"]
            await trio.testing.wait_all_tasks_blocked()
            assert log[-1] == "twice ran"
