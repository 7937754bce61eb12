"""Handles that other actors hold: ``ActorRef`` for actors, ``SupervisorRef`` for supervisors."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

import trio

from ._cell import Cell, Reply
from ._errors import ActorStopped, AskTimeout, MailboxFull
from ._spec import ActorSpec, Request, SupervisorSpec

if TYPE_CHECKING:
    from ._spec import ChildSpec

M = TypeVar("M")
T = TypeVar("T")

# A caller that does not say how long it will wait for an answer waits this long.
DEFAULT_ASK_TIMEOUT_S = 5.0


class ActorRef(Generic[M]):
    """The handle to an actor; valid across restarts of the same child.

    ``send`` waits while the mailbox is full (back-pressure); ``send_nowait`` raises
    instead; ``ask`` sends a ``Request`` and waits for what the actor's ``handle`` returns.
    """

    __slots__ = ("_cell",)

    def __init__(self, cell: Cell) -> None:
        self._cell = cell

    @property
    def path(self) -> str:
        return self._cell.path

    @property
    def name(self) -> str:
        return self._cell.name

    def __repr__(self) -> str:
        return f"ActorRef({self._cell.path!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActorRef) and other._cell is self._cell

    def __hash__(self) -> int:
        return hash(id(self._cell))

    async def send(self, message: M) -> None:
        """Put ``message`` in the mailbox, waiting while it is full.

        Raises:
            ActorStopped: the actor is stopped for good (also if it stops while we wait).

        On cancellation the message is not sent.
        """
        try:
            await self._cell.mailbox.put((message, None))
        except trio.ClosedResourceError:
            raise ActorStopped(self._cell.path) from None

    async def tell(self, message: M) -> None:
        """Like ``send``, but with no scheduling point when the mailbox has room.

        An idle actor may handle the message at once (``Actor.handle_inline``).

        For hot paths: under load every pass of Trio's run queue is latency, and a message
        crossing several actors would pay one per hop. Waits (back-pressure) only when the
        mailbox is full; then it is a checkpoint like ``send``.

        Raises:
            ActorStopped: the actor is stopped for good.
        """
        cell = self._cell
        if cell.inline is not None and cell.offer_inline(message):
            return
        mailbox = cell.mailbox
        try:
            mailbox.put_nowait((message, None))
        except trio.WouldBlock:
            pass
        except trio.ClosedResourceError:
            raise ActorStopped(self._cell.path) from None
        else:
            return
        try:
            await mailbox.put((message, None))
        except trio.ClosedResourceError:
            raise ActorStopped(self._cell.path) from None

    def send_nowait(self, message: M) -> None:
        """Put ``message`` in the mailbox or raise at once.

        An idle actor may handle the message at once (``Actor.handle_inline``).

        Raises:
            MailboxFull: the mailbox is at capacity.
            ActorStopped: the actor is stopped for good.
        """
        cell = self._cell
        if cell.inline is not None and cell.offer_inline(message):
            return
        try:
            cell.mailbox.put_nowait((message, None))
        except trio.WouldBlock:
            raise MailboxFull(self._cell.path, self._cell.mailbox_capacity) from None
        except trio.ClosedResourceError:
            raise ActorStopped(self._cell.path) from None

    async def ask(self, request: Request[T], *, timeout: float = DEFAULT_ASK_TIMEOUT_S) -> T:
        """Send ``request`` and wait for the actor's answer (what its ``handle`` returned).

        The timeout covers both waiting for room in the mailbox and waiting for the answer.

        Raises:
            AskTimeout: no answer within ``timeout`` seconds.
            ActorCrashed: the actor raised while handling the request (cause chained).
            ActorStopped: the actor is, or became, stopped for good before answering.

        On cancellation the request may still be handled; its answer is dropped.
        """
        cell = self._cell
        reply = Reply(cell.path)
        with trio.move_on_after(timeout):
            try:
                # No scheduling point for the put when there is room: the asker parks
                # right after anyway, so ``ask`` stays a checkpoint.
                cell.mailbox.put_nowait((request, reply))
            except trio.WouldBlock:
                try:
                    await cell.mailbox.put((request, reply))
                except trio.ClosedResourceError:
                    raise ActorStopped(cell.path) from None
            except trio.ClosedResourceError:
                raise ActorStopped(cell.path) from None
            result: T = await reply.wait()
            return result
        reply.abandon()
        raise AskTimeout(cell.path, timeout)


class SupervisorRef:
    """The handle to a supervisor: start and stop its dynamic children, list them."""

    __slots__ = ("_cell",)

    def __init__(self, cell: Cell) -> None:
        self._cell = cell

    @property
    def path(self) -> str:
        return self._cell.path

    @property
    def name(self) -> str:
        return self._cell.name

    def __repr__(self) -> str:
        return f"SupervisorRef({self._cell.path!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SupervisorRef) and other._cell is self._cell

    def __hash__(self) -> int:
        return hash(id(self._cell))

    @overload
    async def start_child(self, spec: ActorSpec[M]) -> ActorRef[M]: ...
    @overload
    async def start_child(self, spec: SupervisorSpec) -> SupervisorRef: ...
    async def start_child(self, spec: ChildSpec) -> ActorRef[Any] | SupervisorRef:
        """Start a child after the existing ones and return once it is ready.

        Raises:
            DuplicateName: a running sibling has that name.
            TooManyChildren: the supervisor is at ``max_children``.
            SpawnError: the child failed while starting (cause chained).
            ActorStopped: the supervisor is stopping or stopped.
        """
        runtime = self._cell.supervisor
        if runtime is None:
            raise ActorStopped(self._cell.path)
        child = await runtime.start_dynamic_child(spec)
        return ref_of(child)

    async def stop_child(self, name: str) -> None:
        """Stop the named child for good (children first, within its grace) and forget it.

        Raises:
            NoSuchActor: no child has that name.
        """
        runtime = self._cell.supervisor
        if runtime is None:
            raise ActorStopped(self._cell.path)
        await runtime.stop_dynamic_child(name)

    def children(self) -> list[str]:
        """Names of the current children, in start order."""
        return list(self._cell.children)


def ref_of(cell: Cell) -> ActorRef[Any] | SupervisorRef:
    from ._cell import Kind

    return SupervisorRef(cell) if cell.kind is Kind.SUPERVISOR else ActorRef(cell)
