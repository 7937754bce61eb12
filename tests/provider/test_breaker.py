"""The circuit breaker's states, driven by a hand-held clock (no Trio)."""

from __future__ import annotations

import pytest

from actors.provider._breaker import BreakerConfig, BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


CONFIG = BreakerConfig(
    failure_rate_threshold=0.5, window=10.0, min_calls=4, cool_down=5.0, half_open_probes=2
)


def _breaker() -> tuple[CircuitBreaker, Clock]:
    clock = Clock()
    return CircuitBreaker("up", CONFIG, clock=clock), clock


def _record(breaker: CircuitBreaker, outcomes: str) -> None:
    for outcome in outcomes:
        assert breaker.try_acquire()
        if outcome == "F":
            breaker.record_failure()
        else:
            breaker.record_success()


class TestClosed:
    """Closed lets calls through until the failure rate over the window reaches the threshold."""

    def test_needs_min_calls(self) -> None:
        breaker, _ = _breaker()
        _record(breaker, "FFF")
        assert breaker.snapshot().state is BreakerState.CLOSED
        _record(breaker, "F")
        assert breaker.snapshot().state is BreakerState.OPEN

    def test_rate_below_threshold_stays_closed(self) -> None:
        breaker, _ = _breaker()
        _record(breaker, "SSSSSF")
        snap = breaker.snapshot()
        assert snap.state is BreakerState.CLOSED
        assert snap.failure_rate == pytest.approx(1 / 6)

    def test_old_outcomes_leave_the_window(self) -> None:
        breaker, clock = _breaker()
        _record(breaker, "FFF")
        clock.now += 11
        _record(breaker, "SSF")
        assert breaker.state is BreakerState.CLOSED
        assert breaker.snapshot().calls_in_window == 3

    def test_opens_at_threshold_and_records_when(self) -> None:
        breaker, clock = _breaker()
        _record(breaker, "SSFF")
        snap = breaker.snapshot()
        assert snap.state is BreakerState.OPEN
        assert snap.opened_at == clock.now
        assert snap.failure_rate == 0.5


class TestOpenAndHalfOpen:
    """Open refuses until the cool-down, then a limited number of probes decide."""

    def _opened(self) -> tuple[CircuitBreaker, Clock]:
        breaker, clock = _breaker()
        _record(breaker, "FFFF")
        return breaker, clock

    def test_open_refuses_calls(self) -> None:
        breaker, clock = self._opened()
        clock.now += 4.9
        assert not breaker.try_acquire()

    def test_half_open_after_cool_down_limits_probes(self) -> None:
        breaker, clock = self._opened()
        clock.now += 5
        assert breaker.state is BreakerState.HALF_OPEN
        assert breaker.try_acquire()
        assert breaker.try_acquire()
        assert not breaker.try_acquire()
        assert breaker.snapshot().probes_in_flight == 2

    def test_probe_success_closes(self) -> None:
        breaker, clock = self._opened()
        clock.now += 5
        assert breaker.try_acquire()
        breaker.record_success()
        snap = breaker.snapshot()
        assert snap.state is BreakerState.CLOSED
        assert snap.calls_in_window == 0

    def test_probe_failure_reopens_for_another_cool_down(self) -> None:
        breaker, clock = self._opened()
        clock.now += 5
        assert breaker.try_acquire()
        breaker.record_failure()
        assert breaker.state is BreakerState.OPEN
        assert breaker.snapshot().opened_at == clock.now
        clock.now += 4
        assert not breaker.try_acquire()
        clock.now += 1
        assert breaker.try_acquire()

    def test_release_returns_a_probe_slot(self) -> None:
        breaker, clock = self._opened()
        clock.now += 5
        assert breaker.try_acquire()
        assert breaker.try_acquire()
        breaker.release()
        assert breaker.try_acquire()
        assert breaker.state is BreakerState.HALF_OPEN


class TestConfig:
    """Bad thresholds are refused when the config is made."""

    @pytest.mark.parametrize("rate", [0.0, 1.5, -1.0])
    def test_rate_must_be_a_fraction(self, rate: float) -> None:
        with pytest.raises(ValueError, match="failure_rate_threshold"):
            BreakerConfig(failure_rate_threshold=rate)

    def test_window_is_bounded(self) -> None:
        clock = Clock()
        breaker = CircuitBreaker(
            "up", BreakerConfig(max_window_calls=10, min_calls=100), clock=clock
        )
        _record(breaker, "S" * 50)
        assert breaker.snapshot().calls_in_window == 10
