"""The runtime's exception tree.

::

    ActorError                      (Exception) every error the runtime raises
     ├── MailboxFull                send_nowait: the mailbox is at capacity
     ├── ActorStopped               the actor is stopped for good (or stopped before it answered)
     ├── AskTimeout                 ask: no answer within the timeout
     ├── ActorCrashed               ask: the actor failed while handling the request;
     │                              run_child: the child failed
     ├── SpawnError                 a child could not be started (its cause is chained)
     │    ├── DuplicateName         a sibling already has that name
     │    └── TooManyChildren       the supervisor is at its max_children
     ├── SupervisorGaveUp           restart intensity exceeded; reported to the parent (escalation)
     ├── ActorSystemCrashed         the root supervisor gave up; leaves ``open_actor_system``
     ├── NoSuchActor                no live actor at that path (also a LookupError)
     ├── FaultInjectionDisabled     faults were asked for on a system opened without them
     └── InjectedCrash              raised inside an actor by fault injection

``AskTimeout``, ``ActorCrashed`` and ``ActorStopped`` are what a caller of ``ask`` can
get instead of an answer; it never hangs past its timeout.
"""

from __future__ import annotations


class ActorError(Exception):
    """Base of every error the actor runtime raises."""


class MailboxFull(ActorError):
    """``send_nowait`` found the mailbox at its declared capacity."""

    def __init__(self, path: str, capacity: int) -> None:
        super().__init__(f"mailbox of {path} is full ({capacity} messages)")
        self.path = path
        self.capacity = capacity


class ActorStopped(ActorError):
    """The actor is stopped for good, or stopped before it answered."""

    def __init__(self, path: str) -> None:
        super().__init__(f"actor {path} is stopped")
        self.path = path


class AskTimeout(ActorError):
    """``ask`` got no answer within its timeout (the actor may be slow, hung or flooded)."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__(f"actor {path} did not answer within {timeout:g} s")
        self.path = path
        self.timeout = timeout


class ActorCrashed(ActorError):
    """The actor raised while handling the request (or, from ``run_child``, while it ran).

    The cause is chained.
    """

    def __init__(
        self, path: str, cause: BaseException, *, doing: str = "handling the request"
    ) -> None:
        super().__init__(f"actor {path} crashed {doing}: {describe(cause)}")
        self.path = path


class SpawnError(ActorError):
    """A child could not be started."""


class DuplicateName(SpawnError):
    """A sibling with that name is already running."""


class TooManyChildren(SpawnError):
    """The supervisor already has ``max_children`` children."""


class SupervisorGaveUp(ActorError):
    """More restarts than the supervisor's intensity allows; the parent decides next."""

    def __init__(self, path: str, restarts: int, within_s: float, last: str) -> None:
        super().__init__(
            f"supervisor {path} gave up after {restarts} restarts within {within_s:g} s "
            f"(last failure: {last})"
        )
        self.path = path
        self.restarts = restarts


class ActorSystemCrashed(ActorError):
    """The root supervisor gave up: the whole tree is stopped and this leaves the system."""


class NoSuchActor(ActorError, LookupError):
    """No live actor has that path."""

    def __init__(self, path: str) -> None:
        super().__init__(f"no actor at {path}")
        self.path = path


class FaultInjectionDisabled(ActorError):
    """Fault injection is off unless the system is opened with ``faults=True``."""


class InjectedCrash(ActorError):
    """The failure that fault injection raises inside an actor."""


def describe(exc: BaseException) -> str:
    """``Type: message`` of an exception, looking through single-leaf exception groups."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"
