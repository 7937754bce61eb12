"""Small actors and helpers shared by the runtime tests."""

from __future__ import annotations

from typing import Any

import attrs
import trio

from zl_actors import Actor, ActorContext, Request


def live_tasks() -> int:
    """Every task in this Trio run, found by walking nurseries from the root task."""
    count = 0
    stack = [trio.lowlevel.current_root_task()]
    while stack:
        task = stack.pop()
        count += 1
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return count


@attrs.frozen(kw_only=True)
class Add:
    n: int


@attrs.frozen(kw_only=True)
class Total(Request[int]):
    pass


@attrs.frozen(kw_only=True)
class Fail(Request[None]):
    """Makes the actor raise while handling it."""

    reason: str = "asked to fail"


@attrs.frozen(kw_only=True)
class Finish:
    """Makes the actor end normally (stop itself)."""


@attrs.frozen(kw_only=True)
class Block(Request[None]):
    """Blocks the handler until the event is set."""

    until: trio.Event


CounterMsg = Add | Total | Fail | Finish | Block


class Boom(Exception):
    pass


class Counter(Actor[CounterMsg]):
    mailbox_capacity = 8

    def __init__(self, log: list[str] | None = None, name: str = "counter") -> None:
        self.total = 0
        self.log = log
        self.name = name

    async def on_start(self, ctx: ActorContext[CounterMsg]) -> None:
        if self.log is not None:
            self.log.append(f"start {self.name}")

    async def handle(self, message: CounterMsg, ctx: ActorContext[CounterMsg]) -> Any:
        match message:
            case Add(n=n):
                self.total += n
            case Total():
                return self.total
            case Fail(reason=reason):
                raise Boom(reason)
            case Finish():
                ctx.stop()
            case Block(until=until):
                await until.wait()
        return None

    async def on_stop(self, ctx: ActorContext[CounterMsg]) -> None:
        if self.log is not None:
            self.log.append(f"stop {self.name}")


def counter(log: list[str] | None = None, name: str = "counter") -> Any:
    """A factory for ActorSpec.factory (a fresh Counter per start)."""
    return lambda: Counter(log, name)
