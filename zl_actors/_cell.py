"""The runtime's record of one child: state that lives across restarts of the same child.

A ``Cell`` is what a path names. Its mailbox outlives restarts, so refs stay valid and
queued messages are handled by the next incarnation; only the message being handled
when an actor failed is lost (and its asker gets ``ActorCrashed``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

import attrs
import outcome
import trio

from ._errors import ActorCrashed, ActorStopped, describe
from ._mailbox import Mailbox

if TYPE_CHECKING:
    from ._spec import ChildSpec
    from ._supervisor import SupervisorRuntime
    from ._system import ActorSystem


# Put in an idle actor's mailbox to wake its loop (a stop request, a failure of its inline
# handler); never handled.
WAKE: Final[Any] = object()


class Kind(enum.Enum):
    ACTOR = "actor"
    SUPERVISOR = "supervisor"


class CellState(enum.Enum):
    STARTING = "starting"
    RUNNING = "running"
    RESTARTING = "restarting"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"


class StopMode(enum.Enum):
    NONE = "none"
    # Stopped for good: the mailbox is closed, queued messages are drained within the grace.
    FINAL = "final"
    # Stopped by its supervisor's strategy so that it can be started again: the mailbox stays.
    FOR_RESTART = "for_restart"


@attrs.frozen(kw_only=True)
class FailureInfo:
    """The last failure of a cell: exception type, message and when (Trio clock)."""

    type: str
    message: str
    at: float

    @classmethod
    def of(cls, exc: BaseException) -> FailureInfo:
        while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
            exc = exc.exceptions[0]
        return cls(type=type(exc).__name__, message=str(exc), at=trio.current_time())


class Fault(enum.Enum):
    HANG = "hang"
    SLOW = "slow"


class Cell:
    """One node of the live tree (see module docstring)."""

    __slots__ = (
        "actor_type",
        "children",
        "created_at",
        "current_reply",
        "deferred_replies",
        "done_event",
        "exit_requested",
        "fault",
        "fault_delay_s",
        "finished",
        "incarnation",
        "inline",
        "inline_failure",
        "kind",
        "last_failure",
        "mailbox",
        "name",
        "parent",
        "path",
        "pending_crash",
        "restarts",
        "scope",
        "spec",
        "started_at",
        "state",
        "stop_mode",
        "supervisor",
        "system",
        "work_scope",
    )

    def __init__(
        self,
        *,
        spec: ChildSpec,
        parent: Cell | None,
        system: ActorSystem,
        kind: Kind,
        mailbox_capacity: int | None,
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.parent = parent
        self.path: str = f"{parent.path}/{spec.name}" if parent is not None else f"/{spec.name}"
        self.system = system
        self.kind = kind
        self.state = CellState.STARTING
        self.stop_mode = StopMode.NONE
        self.restarts = 0
        self.incarnation = 0
        self.created_at = trio.current_time()
        self.started_at = self.created_at
        self.last_failure: FailureInfo | None = None
        # By name, in start order (dicts keep insertion order): O(1) lookups for big supervisors.
        self.children: dict[str, Cell] = {}
        self.actor_type = ""
        self.scope: trio.CancelScope | None = None
        # A task actor's work while it runs (stopping the actor cancels it; see TaskActor).
        self.work_scope: trio.CancelScope | None = None
        self.exit_requested = False
        # Whether the current incarnation has ended; the event is made only if someone waits.
        self.finished = True
        self.done_event: trio.Event | None = None
        self.pending_crash = False
        self.fault: Fault | None = None
        self.fault_delay_s = 0.0
        self.supervisor: SupervisorRuntime | None = None
        # The reply slot of the request being handled, and replies an actor took to answer
        # later (ctx.defer_reply): failed for the asker if the incarnation ends first.
        self.current_reply: Reply | None = None
        self.deferred_replies: set[Reply] | None = None
        # The running incarnation's ``Actor.handle_inline`` (bound to its context), if the
        # actor has one; see ``Cell.offer_inline``.
        self.inline: Callable[[Any], bool] | None = None
        # What the inline handler raised; the actor's loop raises it before its next message.
        self.inline_failure: Exception | None = None
        # Made now when the capacity is known, else by the first incarnation (see run_actor).
        self.mailbox = _UNSET_MAILBOX if mailbox_capacity is None else Mailbox(mailbox_capacity)

    def begin_incarnation(self) -> None:
        self.finished = False
        self.done_event = None

    def end_incarnation(self) -> None:
        self.finished = True
        if self.done_event is not None:
            self.done_event.set()

    async def wait_finished(self) -> None:
        """Wait until the current incarnation has ended (returns at once if it has)."""
        if self.finished:
            return
        if self.done_event is None:
            self.done_event = trio.Event()
        await self.done_event.wait()

    def offer_inline(self, message: Any) -> bool:
        """Have the actor handle ``message`` now, in the caller's task, if it is idle.

        Idle: its loop is parked on an empty mailbox, so it is not in the middle of a
        message and nothing sent earlier is waiting (order and one-at-a-time both hold),
        and it is running normally (not stopping, no fault injected). Returns whether the
        actor took the message; if not, the caller queues it as usual. An exception from
        the handler fails the actor, in its own task, as one from ``handle`` would.
        """
        inline = self.inline
        if (
            inline is None
            or not self.mailbox.receiver_waiting
            or self.exit_requested
            or self.stop_mode is not StopMode.NONE
            or self.fault is not None
            or self.pending_crash
        ):
            return False
        # Not re-entered: what the handler sends to its own actor is queued.
        self.inline = None
        try:
            return inline(message)
        except Exception as exc:
            # Raised in the actor's own task, by its loop, so that its supervisor sees it
            # (also when the handler had already woken the loop with a message of its own).
            self.inline_failure = exc
            self.mailbox.wake_receiver((WAKE, None))
            return True
        finally:
            self.inline = inline

    @property
    def mailbox_capacity(self) -> int:
        return self.mailbox.capacity

    @property
    def mailbox_depth(self) -> int:
        return len(self.mailbox)

    def retire(self) -> None:
        """Close the mailbox for good and fail every queued ask with ``ActorStopped``.

        Called once the cell will never run again. Senders waiting on a full mailbox
        get ``ActorStopped`` too (through ``BrokenResourceError``).
        """
        for _, reply in self.mailbox.drain():
            if reply is not None:
                reply.fail(ActorStopped(self.path))


# A cell whose capacity comes from its actor class has this until its first start; it holds
# nothing, since no ref to the cell exists before its start returns.
_UNSET_MAILBOX = Mailbox(0)


class Reply:
    """A one-shot answer slot for ``ask``, parked on the asking task (no channel per ask).

    The answer may arrive before the asker starts waiting (the actor can run while the
    asker's ``send`` yields), so it is stored until ``wait`` collects it. An asker that
    gave up (timeout, cancellation) abandons the slot and later answers are dropped.
    """

    __slots__ = ("_path", "_result", "_task", "_waiting")

    def __init__(self, path: str) -> None:
        self._path = path
        self._task: trio.lowlevel.Task | None = trio.lowlevel.current_task()
        self._result: outcome.Outcome[Any] | None = None
        self._waiting = False

    @property
    def answered(self) -> bool:
        return self._result is not None or self._task is None

    def resolve(self, value: object) -> None:
        self._deliver(outcome.Value(value))

    def fail(self, error: Exception) -> None:
        self._deliver(outcome.Error(error))

    def crashed(self, cause: BaseException) -> None:
        """The actor raised while handling this request."""
        if isinstance(cause, Exception):
            error: Exception = ActorCrashed(self._path, cause)
            error.__cause__ = cause
        else:
            # Cancellation or another BaseException: from the asker's side it simply stopped.
            error = ActorStopped(self._path)
        self.fail(error)

    def _deliver(self, result: outcome.Outcome[Any]) -> None:
        task = self._task
        if task is None or self._result is not None:
            return
        if self._waiting:
            self._task = None
            trio.lowlevel.reschedule(task, result)
        else:
            self._result = result

    async def wait(self) -> Any:
        if self._result is not None:
            self._task = None
            return self._result.unwrap()

        def abort(_: object) -> trio.lowlevel.Abort:
            self._task = None
            return trio.lowlevel.Abort.SUCCEEDED

        self._waiting = True
        return await trio.lowlevel.wait_task_rescheduled(abort)

    def abandon(self) -> None:
        self._task = None


def failure_text(exc: BaseException) -> str:
    return describe(exc)
