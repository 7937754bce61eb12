"""The soak's verdict from its samples: what counts as growth, what as warm-up."""

from __future__ import annotations

import argparse
from typing import Any

from bench.soak import Sample, report, slope_per_min, warm_up_end

ARGS = argparse.Namespace(minutes=10.0, sessions=100, interval=10.0)
IDLE = {"host": {"tasks": 22, "fds": 13}}


def samples(*, fds: Any = lambda t: 14, rss: Any = lambda t: 70.0, errors: int = 0) -> list[Sample]:
    return [
        Sample(
            at_s=float(t),
            fds={"host": fds(t)},
            rss_mb={"host": rss(t)},
            tasks={"host": 360},
            actors={"host": 200},
            failures={"host": 0},
            gc_collections={"host": 0},
            load={"turns": t * 100, "ok": t * 100, "tool_calls": t * 100, "errors": {}}
            | ({"errors": {"tool.failed": errors}} if errors else {}),
        )
        for t in range(10, 610, 10)
    ]


def test_slope_is_per_minute() -> None:
    assert slope_per_min([(0.0, 10.0), (60.0, 12.0), (120.0, 14.0)]) == 2.0
    assert slope_per_min([(5.0, 1.0)]) == 0.0


def test_warm_up_is_the_first_fifth_at_least_a_minute() -> None:
    assert warm_up_end(samples()) == 120.0
    short = samples()[:9]  # 90 s
    assert warm_up_end(short) == 45.0  # never more than half


def test_flat_run_passes() -> None:
    result = report(ARGS, samples(), idle_before=IDLE, idle_after=IDLE)
    assert result["passed"], result["checks"]
    assert result["processes"]["host"]["rss_growth_pct"] == 0.0


def test_memory_growth_after_warm_up_fails() -> None:
    # Growth during the warm-up is not counted; 10 % over the rest is.
    result = report(
        ARGS, samples(rss=lambda t: 60.0 + 0.014 * t), idle_before=IDLE, idle_after=IDLE
    )
    assert not result["checks"]["rss_growth_under_5_pct"]
    warm = report(
        ARGS,
        samples(rss=lambda t: 60.0 + t / 12 if t < 120 else 70.0),
        idle_before=IDLE,
        idle_after=IDLE,
    )
    assert warm["checks"]["rss_growth_under_5_pct"]


def test_descriptor_leak_errors_and_idle_tasks_fail() -> None:
    leak = report(ARGS, samples(fds=lambda t: 14 + t // 60), idle_before=IDLE, idle_after=IDLE)
    assert not leak["checks"]["no_fd_growth"]
    errs = report(ARGS, samples(errors=1), idle_before=IDLE, idle_after=IDLE)
    assert not errs["checks"]["no_errors"]
    after = {"host": {"tasks": 23, "fds": 13}}
    idle = report(ARGS, samples(), idle_before=IDLE, idle_after=after)
    assert not idle["checks"]["no_task_growth"]
    assert not idle["passed"]
