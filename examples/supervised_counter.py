"""Write and supervise an actor (the README shows this file; a test runs it)."""

import attrs
import trio

from zl_actors import (
    Actor,
    ActorContext,
    ActorSpec,
    Request,
    SupervisorSpec,
    open_actor_system,
    render_tree,
)


@attrs.frozen(kw_only=True)
class Add:
    n: int


@attrs.frozen(kw_only=True)
class Total(Request[int]):  # asked: `handle` returns the answer
    pass


class Counter(Actor[Add | Total]):
    mailbox_capacity = 16  # a 17th queued message makes senders wait (back-pressure)

    def __init__(self) -> None:
        self.total = 0

    async def handle(self, message: Add | Total, ctx: ActorContext[Add | Total]) -> int | None:
        match message:
            case Add(n=n):
                self.total += n
                if self.total > 10:
                    raise OverflowError("too big")  # fails; the supervisor restarts it
            case Total():
                return self.total
        return None


async def main() -> None:
    async with open_actor_system("demo") as system:
        counters = await system.spawn(SupervisorSpec(name="counters"))
        counter = await counters.start_child(ActorSpec(name="c1", factory=Counter))
        await counter.send(Add(n=7))
        print("total:", await counter.ask(Total(), timeout=1.0))
        await counter.send(Add(n=7))  # 14 > 10: the actor fails and is restarted
        print("after restart:", await counter.ask(Total(), timeout=1.0))
        print(render_tree(system.snapshot()))


if __name__ == "__main__":
    trio.run(main)
