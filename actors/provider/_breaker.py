"""A circuit breaker per upstream: pure logic with an injected clock.

::

                 failure rate >= threshold
                 over >= min_calls in window
      ┌────────┐ ─────────────────────────▶ ┌──────┐
      │ closed │                            │ open │ ◀──┐
      └────────┘ ◀──┐                       └──────┘    │ a probe fails
           ▲        │ a probe succeeds          │       │
           │        │                  cool_down passed  │
           │      ┌───────────┐ ◀───────────────┘       │
           └──────│ half_open │ ────────────────────────┘
                  └───────────┘  (at most half_open_probes calls in flight)

It knows nothing about Trio or HTTP: callers ask :meth:`CircuitBreaker.try_acquire` before a
call and report :meth:`record_success`, :meth:`record_failure` or :meth:`release` (a call that
ended without a verdict, such as a cancelled one) after it. The clock is any monotonic
``() -> float`` in seconds, so tests drive time by hand.

Errors: none; a wrong config value raises ``ValueError`` from the attrs validators.
"""

from __future__ import annotations

import enum
import time
from collections import deque
from collections.abc import Callable

import attrs


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


def _rate(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0.0 < value <= 1.0:
        raise ValueError(f"{attribute.name} must be in (0, 1], got {value!r}")


@attrs.frozen(kw_only=True)
class BreakerConfig:
    """When the breaker opens and how it tries again.

    Args:
        failure_rate_threshold: open when failures / calls in the window reach this (0 to 1].
        window: the sliding window's length in seconds; older outcomes are forgotten.
        min_calls: no verdict on fewer calls than this in the window (one failure of one
            call is not a 100% failure rate worth opening for).
        cool_down: seconds the breaker stays open before letting probes through.
        half_open_probes: how many calls may be in flight while half-open.
        max_window_calls: the most outcomes kept; the oldest are dropped beyond it, so memory
            stays bounded under any load.
    """

    failure_rate_threshold: float = attrs.field(default=0.5, validator=_rate)
    window: float = attrs.field(default=30.0, validator=attrs.validators.gt(0.0))
    min_calls: int = attrs.field(default=5, validator=attrs.validators.ge(1))
    cool_down: float = attrs.field(default=15.0, validator=attrs.validators.ge(0.0))
    half_open_probes: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    max_window_calls: int = attrs.field(default=1000, validator=attrs.validators.ge(1))


# Called as (upstream name, old state, new state) whenever a breaker changes state.
StateChangeObserver = Callable[[str, "BreakerState", "BreakerState"], None]


@attrs.frozen(kw_only=True)
class BreakerSnapshot:
    """The breaker as introspection shows it (debug endpoint, ``zl tree``)."""

    name: str
    state: BreakerState
    failure_rate: float
    calls_in_window: int
    # The clock's reading when the breaker last opened; None if it never has.
    opened_at: float | None
    probes_in_flight: int


class CircuitBreaker:
    """One upstream's breaker.

    Args:
        name: the upstream's name, for snapshots.
        config: thresholds and timings.
        clock: monotonic seconds; ``time.monotonic`` by default, ``trio.current_time`` under
            Trio (so an ``autojump_clock`` drives it in tests).
        on_state_change: called with (name, old, new) on every change of state, including
            the open -> half-open one, which is noticed when the breaker is next consulted.
    """

    def __init__(
        self,
        name: str,
        config: BreakerConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_state_change: StateChangeObserver | None = None,
    ) -> None:
        self.name = name
        self._on_state_change = on_state_change
        self.config = config if config is not None else BreakerConfig()
        self._clock = clock
        self._state = BreakerState.CLOSED
        # (time, failed) per finished call while closed.
        self._window: deque[tuple[float, bool]] = deque(maxlen=self.config.max_window_calls)
        self._opened_at: float | None = None
        self._probes = 0

    @property
    def state(self) -> BreakerState:
        """The current state (an open breaker whose cool-down has passed reads half-open)."""
        self._advance()
        return self._state

    def try_acquire(self) -> bool:
        """Ask to make a call; True means go ahead, and report the outcome afterwards."""
        self._advance()
        if self._state is BreakerState.CLOSED:
            return True
        if self._state is BreakerState.HALF_OPEN and self._probes < self.config.half_open_probes:
            self._probes += 1
            return True
        return False

    def record_success(self) -> None:
        """The call that was let through succeeded."""
        self._advance()
        if self._state is BreakerState.HALF_OPEN:
            self._close()
            return
        self._push(failed=False)

    def record_failure(self) -> None:
        """The call that was let through failed."""
        self._advance()
        if self._state is BreakerState.HALF_OPEN:
            self._open()
            return
        if self._state is BreakerState.CLOSED:
            self._push(failed=True)
            if self._tripped():
                self._open()

    def release(self) -> None:
        """The call ended without a verdict (cancelled): give back its probe slot, if any."""
        if self._state is BreakerState.HALF_OPEN and self._probes > 0:
            self._probes -= 1

    def snapshot(self) -> BreakerSnapshot:
        self._advance()
        calls, failures = self._counts()
        return BreakerSnapshot(
            name=self.name,
            state=self._state,
            failure_rate=failures / calls if calls else 0.0,
            calls_in_window=calls,
            opened_at=self._opened_at,
            probes_in_flight=self._probes,
        )

    def _advance(self) -> None:
        now = self._clock()
        if (
            self._state is BreakerState.OPEN
            and self._opened_at is not None
            and now >= self._opened_at + self.config.cool_down
        ):
            self._probes = 0
            self._set(BreakerState.HALF_OPEN)
        horizon = now - self.config.window
        while self._window and self._window[0][0] < horizon:
            self._window.popleft()

    def _push(self, *, failed: bool) -> None:
        self._window.append((self._clock(), failed))

    def _counts(self) -> tuple[int, int]:
        return len(self._window), sum(1 for _, failed in self._window if failed)

    def _tripped(self) -> bool:
        calls, failures = self._counts()
        return (
            calls >= self.config.min_calls
            and failures / calls >= self.config.failure_rate_threshold
        )

    def _set(self, state: BreakerState) -> None:
        old, self._state = self._state, state
        if old is not state and self._on_state_change is not None:
            self._on_state_change(self.name, old, state)

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._probes = 0
        self._set(BreakerState.OPEN)
        # The window is kept (not appended to while open) so snapshots show the rate that
        # tripped the breaker until those outcomes age out.

    def _close(self) -> None:
        self._probes = 0
        self._window.clear()
        self._set(BreakerState.CLOSED)
