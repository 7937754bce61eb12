"""Actors: a class with a bounded mailbox whose ``handle`` sees one message at a time."""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, overload

import trio

from . import _lifecycle
from ._cell import WAKE, Cell, CellState, Fault, Reply, StopMode
from ._errors import ActorCrashed, ActorStopped, DuplicateName, NoSuchActor
from ._mailbox import Mailbox
from ._ref import ActorRef, SupervisorRef, ref_of
from ._spec import ActorSpec, Restart, SupervisorSpec

if TYPE_CHECKING:
    from ._lifecycle import StartFlag
    from ._spec import ChildSpec
    from ._system import ActorSystem

M = TypeVar("M")
N = TypeVar("N")


# on_stop runs even when the actor is being cancelled; it gets this long, shielded.
ON_STOP_TIMEOUT_S = 1.0


class Actor(abc.ABC, Generic[M]):
    """Subclass this and implement ``handle``.

    The runtime calls ``on_start`` before the actor counts as started (a spawn returns
    after it), then ``handle`` for each message in order, never two at once, then
    ``on_stop``. An exception from any of them is a failure that the supervisor sees.
    For a ``Request`` sent with ``ask``, the value ``handle`` returns is the answer.

    ``mailbox_capacity`` is a decision, not a default: how many messages may wait before
    senders are made to wait (``send``) or refused (``send_nowait``).
    """

    mailbox_capacity: ClassVar[int] = 64

    async def on_start(self, ctx: ActorContext[M]) -> None:
        """Start-up work (open resources, start background tasks in ``ctx.nursery``)."""

    @abc.abstractmethod
    async def handle(self, message: M, ctx: ActorContext[M]) -> Any:
        """Handle one message; for a ``Request``, return the answer."""

    def handle_inline(self, message: M, ctx: ActorContext[M]) -> bool:
        """Optionally handle ``message`` at once, in the sender's task; return whether it did.

        The runtime offers a message here, instead of queueing it, when the actor is idle:
        its loop is waiting on an empty mailbox and it is running normally. Returning
        ``False`` queues the message for ``handle`` as usual. What it does counts as the
        handling of that message: messages are still handled one at a time and in order.

        Why: every hand-over between tasks waits for a pass of Trio's run queue, and under
        load that pass is the latency. An actor whose common case needs no waiting (start
        a child, update its state) can spare its message that hand-over.

        It must not block (it cannot: it is synchronous), and it runs in another task:
        use ``ctx.start_child_soon`` rather than waiting for a child to start. An exception
        fails the actor as one from ``handle`` does. Offered by ``ActorRef.send_nowait`` and
        ``ActorRef.tell``; never for a ``Request`` sent with ``ask``.
        """
        return False

    async def on_drained(self, ctx: ActorContext[M]) -> None:
        """On a graceful stop, after the last queued message and before anything is cancelled.

        The place to finish work that ``handle`` started in ``ctx.nursery`` (flush a batch,
        answer deferred replies); it runs within the stop's grace.
        """

    async def on_stop(self, ctx: ActorContext[M]) -> None:
        """Clean-up; runs shielded for at most ``ON_STOP_TIMEOUT_S`` seconds."""


class TaskActor(Actor[Any]):
    """An actor whose life is one piece of work (a turn, a tool call).

    ``run`` starts once the actor is ready, in the incarnation's own task (where a message
    loop would run); when it returns the actor ends normally (so a temporary child is gone, a
    permanent one is started again). It takes no messages of its own. Stopping it (its
    parent, its supervisor, or ``ctx.stop()``) cancels ``run``; its children are then stopped
    and ``on_stop`` runs, as for any actor.

    Why not a task of its own beside the loop: one task per turn or tool call instead of
    two, the work starts in the scheduler's pass that starts the actor rather than the next,
    and ``on_stop`` runs once the work has ended, never beside it.
    """

    mailbox_capacity = 1

    @abc.abstractmethod
    async def run(self, ctx: ActorContext[Any]) -> None:
        """The work; raising fails the actor."""

    async def handle(self, message: Any, ctx: ActorContext[Any]) -> None:
        return None


class ActorContext(Generic[M]):
    """What an actor's callbacks can reach: itself, the system, its task group and its children.

    ``nursery`` belongs to this incarnation: tasks started there are cancelled when the
    actor stops or restarts, and a task that raises makes the actor fail.
    """

    __slots__ = ("_cell", "nursery", "self_ref")

    def __init__(self, cell: Cell, nursery: trio.Nursery) -> None:
        self._cell = cell
        self.nursery = nursery
        self.self_ref: ActorRef[M] = ActorRef(cell)

    @property
    def path(self) -> str:
        return self._cell.path

    @property
    def system(self) -> ActorSystem:
        return self._cell.system

    def stop(self) -> None:
        """End this incarnation normally after the current message; returns at once.

        Whether it is started again is its supervisor's decision (a permanent child is,
        a transient or temporary one is not). Queued messages stay in the mailbox for a
        next incarnation, or get ``ActorStopped`` if there is none.
        """
        cell = self._cell
        cell.exit_requested = True
        # If the loop is parked on an empty mailbox, wake it so that it sees the request.
        cell.mailbox.wake_receiver((WAKE, None))
        if cell.work_scope is not None:
            cell.work_scope.cancel()

    @property
    def answering(self) -> bool:
        """Whether the message being handled was asked (has an answer slot to defer)."""
        return self._cell.current_reply is not None

    def defer_reply(self) -> DeferredReply:
        """Take the answer slot of the request being handled, to answer it later.

        Use it when a request starts work that must not block the mailbox (a tool call,
        a stream): start the work in ``nursery`` and call ``resolve`` or ``fail`` on the
        returned handle when it is done. If this incarnation ends first, the asker gets
        ``ActorStopped`` (or ``ActorCrashed`` when it failed): an asker never hangs.

        Raises:
            RuntimeError: not called from ``handle`` of a request sent with ``ask``.
        """
        cell = self._cell
        reply = cell.current_reply
        if reply is None:
            raise RuntimeError("defer_reply() is only for a request being handled (ask)")
        cell.current_reply = None
        if cell.deferred_replies is None:
            cell.deferred_replies = set()
        cell.deferred_replies.add(reply)
        return DeferredReply(cell, reply)

    async def stop_child(self, name: str) -> None:
        """Stop this actor's child ``name`` for good (its children first) and forget it.

        Raises:
            NoSuchActor: no running child has that name.
        """
        await _stop_child(self._cell, name)

    def children(self) -> list[str]:
        """Names of this actor's running children, in start order."""
        return list(self._cell.children)

    @overload
    async def start_child(self, spec: ActorSpec[N]) -> ActorRef[N]: ...
    @overload
    async def start_child(self, spec: SupervisorSpec) -> SupervisorRef: ...
    async def start_child(self, spec: ChildSpec) -> ActorRef[Any] | SupervisorRef:
        """Start a temporary child that lives at most as long as this incarnation.

        Use it for work an actor owns (a session's turn, a tool call). The child is never
        restarted; its failure is recorded in the tree but does not fail this actor, so
        the child should report its outcome by message. Children are stopped, in reverse
        order, before ``on_stop`` runs.

        Raises:
            ValueError: the spec's restart type is not TEMPORARY.
            DuplicateName: a running child has that name.
        """
        child = self._new_child(spec)
        try:
            await _lifecycle.start_incarnation(child, self.nursery, _forget_child)
        except BaseException:
            _forget_child(child, child.incarnation, None)
            raise
        return ref_of(child)

    async def run_child(self, spec: ActorSpec[Any]) -> None:
        """Start a temporary child and wait until it has ended, as a part of this actor's work.

        Like ``trio.Nursery.start`` for a failure before it is ready, and unlike
        ``start_child`` for one after: the child's failure, at any point, is raised here,
        so the work that waits on the child can never wait on a dead one.

        Raises:
            ActorCrashed: the child failed (its exception is chained).
            ActorStopped: this actor is stopping.
            ValueError: the spec's restart type is not TEMPORARY.
            DuplicateName: a running child has that name.

        On cancellation the child is stopped (within its grace) before this returns.
        """
        child = self._new_child(spec)
        failures: list[BaseException] = []

        def on_exit(cell: Cell, incarnation: int, failure: BaseException | None) -> None:
            _forget_child(cell, incarnation, failure)
            if failure is not None:
                failures.append(failure)

        try:
            await _lifecycle.start_incarnation(child, self.nursery, on_exit)
        except Exception as exc:
            _forget_child(child, child.incarnation, exc)
            raise _crashed(child, exc, "while starting")  # noqa: B904 - the cause is set
        except BaseException:
            _forget_child(child, child.incarnation, None)
            raise
        try:
            await child.wait_finished()
        finally:
            if not child.finished:
                grace = _lifecycle.child_grace(self._cell)
                with trio.move_on_after(grace + ON_STOP_TIMEOUT_S, shield=True):
                    await _lifecycle.stop_cell(child, grace)
        # The exit hook runs in the child's task right after it marks itself finished, with
        # no scheduling point between them, so it has run by the time this task wakes.
        if failures:
            raise _crashed(child, failures[0], "while running")

    def start_child_soon(self, spec: ActorSpec[N]) -> ActorRef[N]:
        """Like ``start_child``, but return at once: the child starts in the next pass.

        For ``handle_inline``, which cannot wait, and for work that should not wait a pass
        for its start. Messages sent to the returned ref wait in its mailbox until it runs.
        A failure before the child is ready (its factory or ``on_start`` raising) is not
        raised here: it is recorded in the tree like any failure of a temporary child, so
        a child whose start can fail should be started with ``start_child``.

        Raises:
            ValueError: the spec's restart type is not TEMPORARY.
            DuplicateName: a running child has that name.
            ActorStopped: this actor is stopping.
        """
        child = self._new_child(spec)
        _lifecycle.start_incarnation_soon(child, self.nursery, _forget_child)
        return ActorRef(child)

    def _new_child(self, spec: ChildSpec) -> Cell:
        if spec.restart is not Restart.TEMPORARY:
            raise ValueError("children of an actor are temporary; use a supervisor otherwise")
        cell = self._cell
        if cell.stop_mode is not StopMode.NONE or cell.scope is None:
            raise ActorStopped(cell.path)
        if spec.name in cell.children:
            raise DuplicateName(f"{cell.path} already has a child named {spec.name!r}")
        child = _lifecycle.new_cell(spec, cell, cell.system)
        cell.children[child.name] = child
        return child


class DeferredReply:
    """The answer slot of a request an actor answers later (see ``ActorContext.defer_reply``)."""

    __slots__ = ("_cell", "_reply")

    def __init__(self, cell: Cell, reply: Reply) -> None:
        self._cell = cell
        self._reply = reply

    @property
    def answered(self) -> bool:
        return self._reply.answered

    def resolve(self, value: object) -> None:
        """Answer with ``value`` (what ``ask`` returns); later calls do nothing."""
        self._done()
        self._reply.resolve(value)

    def fail(self, error: Exception) -> None:
        """Make ``ask`` raise ``error``; later calls do nothing."""
        self._done()
        self._reply.fail(error)

    def _done(self) -> None:
        if self._cell.deferred_replies is not None:
            self._cell.deferred_replies.discard(self._reply)


def _crashed(child: Cell, failure: BaseException, doing: str) -> ActorCrashed:
    # The actor's own nursery wraps what it raised: the cause is the exception itself.
    while isinstance(failure, BaseExceptionGroup) and len(failure.exceptions) == 1:
        failure = failure.exceptions[0]
    error = ActorCrashed(child.path, failure, doing=doing)
    error.__cause__ = failure
    return error


def _fail_deferred(cell: Cell, failure: BaseException | None) -> None:
    replies, cell.deferred_replies = cell.deferred_replies, None
    for reply in replies or ():
        if failure is not None:
            reply.crashed(failure)
        else:
            reply.fail(ActorStopped(cell.path))


async def _stop_child(owner: Cell, name: str) -> None:
    child = owner.children.get(name)
    if child is None:
        raise NoSuchActor(f"{owner.path}/{name}")
    await _lifecycle.stop_cell(child, _lifecycle.child_grace(owner))
    _forget_child(child, child.incarnation, None)


def _forget_child(child: Cell, _incarnation: int, failure: BaseException | None) -> None:
    if failure is not None:
        child.system.failure_log.report(child, failure, "not restarted (temporary)")
    parent = child.parent
    if parent is not None and parent.children.get(child.name) is child:
        del parent.children[child.name]
    child.retire()


async def run_actor(cell: Cell, flag: StartFlag) -> None:
    """One incarnation of an actor: on_start, the mailbox loop (a task actor's run), children,
    on_stop."""
    spec = cell.spec
    assert isinstance(spec, ActorSpec)
    actor = spec.factory()
    cell.actor_type = type(actor).__qualname__
    if cell.incarnation == 1 and spec.mailbox_capacity is None:
        cell.mailbox = Mailbox(type(actor).mailbox_capacity)
    failure: BaseException | None = None
    async with trio.open_nursery() as nursery:
        # The nursery's scope is the incarnation's: stop, restart and injected crashes cancel
        # it (one scope per actor keeps idle actors small).
        cell.scope = nursery.cancel_scope
        ctx: ActorContext[Any] = ActorContext(cell, nursery)
        try:
            await actor.on_start(ctx)
            flag.ready(cell)
            if isinstance(actor, TaskActor):
                await _run_work(cell, actor, ctx)
            else:
                await _mailbox_loop(cell, actor, ctx)
            # The mailbox is closed and drained, or the work is done: a graceful stop.
            # Children go first.
            cell.state = CellState.STOPPING
            await actor.on_drained(ctx)
            grace = _lifecycle.child_grace(cell)
            for child in reversed(list(cell.children.values())):
                await _lifecycle.stop_cell(child, grace)
        except BaseException as exc:
            failure = exc
            raise
        finally:
            nursery.cancel_scope.cancel()
            _fail_deferred(cell, failure if isinstance(failure, Exception) else None)
            for child in list(cell.children.values()):
                child.retire()
            cell.children.clear()
            with trio.move_on_after(ON_STOP_TIMEOUT_S, shield=True):
                await actor.on_stop(ctx)


async def _run_work(cell: Cell, actor: TaskActor, ctx: ActorContext[Any]) -> None:
    with trio.CancelScope() as work:
        cell.work_scope = work
        try:
            if not cell.exit_requested:
                await actor.run(ctx)
        finally:
            cell.work_scope = None


async def _mailbox_loop(cell: Cell, actor: Actor[Any], ctx: ActorContext[Any]) -> None:
    receive = cell.mailbox.get
    handle = actor.handle
    if type(actor).handle_inline is not Actor.handle_inline:
        inline = actor.handle_inline
        cell.inline = lambda message: inline(message, ctx)
    try:
        while not cell.exit_requested:
            try:
                message, reply = await receive()
            except trio.EndOfChannel:
                return
            failure = cell.inline_failure
            if failure is not None:
                # The inline handler failed: the actor fails here, in its own task, and the
                # message that woke it counts as the one being handled (its asker is told).
                cell.inline_failure = None
                if reply is not None:
                    reply.crashed(failure)
                raise failure
            if message is WAKE:
                continue
            if cell.fault is not None:
                await _apply_fault(cell)
            if reply is None:
                await handle(message, ctx)
                continue
            cell.current_reply = reply
            try:
                result = await handle(message, ctx)
            except BaseException as exc:
                if cell.current_reply is not None:
                    reply.crashed(exc)
                raise
            finally:
                taken = cell.current_reply is None
                cell.current_reply = None
            if not taken:
                reply.resolve(result)
    finally:
        cell.inline = None
        cell.inline_failure = None


async def _apply_fault(cell: Cell) -> None:
    if cell.fault is Fault.HANG:
        # Hangs until the actor is stopped or restarted (cancellation ends it).
        await trio.sleep_forever()
    elif cell.fault is Fault.SLOW:
        await trio.sleep(cell.fault_delay_s)
