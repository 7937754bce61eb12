"""How children are described: restart types, strategies, intensity, backoff and specs."""

from __future__ import annotations

import enum
import random
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import attrs

if TYPE_CHECKING:
    from ._actor import Actor

M = TypeVar("M")
T_co = TypeVar("T_co", covariant=True)


class Request(Generic[T_co]):
    """Base for messages that are asked: ``await ref.ask(msg)`` returns what ``handle`` returns.

    Subclass it as a frozen attrs class: ``class GetTotal(Request[int]): ...``.
    """

    __slots__ = ()


class Restart(enum.Enum):
    """When a child that ended is started again."""

    PERMANENT = "permanent"  # always
    TRANSIENT = "transient"  # only if it failed
    TEMPORARY = "temporary"  # never


class Strategy(enum.Enum):
    """Which children a supervisor restarts when one of them must be restarted."""

    ONE_FOR_ONE = "one_for_one"  # just that child
    ONE_FOR_ALL = "one_for_all"  # every child (stopped in reverse, started in order)
    REST_FOR_ONE = "rest_for_one"  # that child and the ones started after it


@attrs.frozen(kw_only=True)
class RestartIntensity:
    """At most ``max_restarts`` restarts within ``within_s`` seconds; one more and it gives up."""

    max_restarts: int = attrs.field(default=3, validator=attrs.validators.ge(0))
    within_s: float = attrs.field(default=5.0, validator=attrs.validators.gt(0))


@attrs.frozen(kw_only=True)
class Backoff:
    """Delay before the n-th restart in the window: ``initial_s * 2**(n-1)``, capped, jittered."""

    initial_s: float = attrs.field(default=0.01, validator=attrs.validators.ge(0))
    max_s: float = attrs.field(default=1.0, validator=attrs.validators.ge(0))
    # The delay is multiplied by a uniform factor in [1 - jitter, 1 + jitter] so that many
    # children failing together do not restart in lockstep.
    jitter: float = attrs.field(
        default=0.2, validator=[attrs.validators.ge(0), attrs.validators.le(1)]
    )

    def delay(self, nth_restart: int, rng: random.Random) -> float:
        if nth_restart <= 0 or self.initial_s == 0:
            return 0.0
        base = min(self.initial_s * 2.0 ** (nth_restart - 1), self.max_s)
        return base * rng.uniform(1 - self.jitter, 1 + self.jitter)


def _valid_name(_: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not value or "/" in value:
        raise ValueError(f"{attribute.name} must be non-empty and contain no '/': {value!r}")


@attrs.frozen(kw_only=True)
class ActorSpec(Generic[M]):
    """A child that is an actor.

    Args:
        name: unique among its siblings; it becomes the last part of the actor's path.
        factory: makes a fresh actor instance for each (re)start. It must do no I/O;
            start-up work belongs in ``Actor.on_start``.
        restart: when it is started again after it ends.
        mailbox_capacity: overrides the actor class's declared ``mailbox_capacity``.
    """

    name: str = attrs.field(validator=_valid_name)
    factory: Callable[[], Actor[M]]
    restart: Restart = Restart.PERMANENT
    mailbox_capacity: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.ge(0))
    )


# How many children a supervisor may have unless its spec says otherwise: dynamic children
# (sessions, tool calls) are refused past it with TooManyChildren, never queued without bound.
DEFAULT_MAX_CHILDREN = 1024


@attrs.frozen(kw_only=True)
class SupervisorSpec:
    """A child that is a supervisor of its own children.

    Args:
        name: unique among its siblings.
        children: started in this order when the supervisor starts, stopped in reverse.
        strategy: which children are restarted when one must be.
        intensity: how many restarts are tolerated before the supervisor gives up.
        backoff: delay before each restart.
        restart: how *this* supervisor is treated by its own parent.
        max_children: cap on static plus dynamic children.
        stop_grace_s: how long each child has to stop before it is cancelled.
    """

    name: str = attrs.field(validator=_valid_name)
    children: Sequence[ChildSpec] = ()
    strategy: Strategy = Strategy.ONE_FOR_ONE
    intensity: RestartIntensity = RestartIntensity()
    backoff: Backoff = Backoff()
    restart: Restart = Restart.PERMANENT
    max_children: int = attrs.field(default=DEFAULT_MAX_CHILDREN, validator=attrs.validators.gt(0))
    stop_grace_s: float = attrs.field(default=5.0, validator=attrs.validators.ge(0))


ChildSpec = ActorSpec[Any] | SupervisorSpec
