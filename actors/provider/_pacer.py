"""A timer that wakes many sleeping tasks from one Trio deadline: the mock's token pace.

Why: the scripted mock paces every token of every session with ``trio.sleep_until``. Each
such sleep makes a cancel scope, registers its deadline and ends with a ``Cancelled``
exception thrown into the sleeping task and caught again; at 100 sessions and 50 tokens/s
that was about a quarter of the host's CPU in a profile of ``bench.ttft`` (mock path).
Here a sleeping task parks on the pacer's heap (``wait_task_rescheduled``), and one driver
task sleeps until the earliest wake time and reschedules every task that is due: one
deadline and one exception per pass of the run loop, however many tokens fall due in it.

Cancellation: a sleeping task that is cancelled leaves at once (its heap entry is dropped
when its time comes). Without a running driver (``run`` not started, or ended) sleeps fall
back to ``trio.sleep_until``, so a pacer is never a reason to hang.
"""

from __future__ import annotations

import heapq
import itertools
import math
from typing import Any

import trio


class Pacer:
    """Wakes tasks at given times on Trio's clock (see the module docstring)."""

    def __init__(self) -> None:
        # Entries: [when, serial, task, waiting]; ``waiting`` is cleared when it leaves.
        self._heap: list[list[Any]] = []
        self._serial = itertools.count()
        self._scope: trio.CancelScope | None = None
        self._running = False

    @property
    def running(self) -> bool:
        """Whether the driver runs (``run`` was started and has not ended)."""
        return self._running

    @property
    def waiting(self) -> int:
        """Heap entries (sleeping tasks, and cancelled ones not yet due)."""
        return len(self._heap)

    async def sleep_until(self, deadline: float) -> None:
        """Sleep until ``deadline`` (Trio's clock); always a checkpoint, like ``trio.sleep``."""
        if not self._running:
            await trio.sleep_until(deadline)
            return
        if deadline <= trio.current_time():
            await trio.lowlevel.checkpoint()
            return
        await trio.lowlevel.checkpoint_if_cancelled()
        entry = [deadline, next(self._serial), trio.lowlevel.current_task(), True]
        heapq.heappush(self._heap, entry)
        scope = self._scope
        if scope is not None and deadline < scope.deadline:
            scope.deadline = deadline

        def abort(_: object) -> trio.lowlevel.Abort:
            entry[3] = False
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    async def run(self) -> None:
        """The driver: wake each task when its time comes. Runs until cancelled.

        Raises:
            RuntimeError: another driver already runs this pacer.
        """
        if self._running:
            raise RuntimeError("this pacer's driver is already running")
        self._running = True
        heap = self._heap
        try:
            while True:
                with trio.CancelScope(deadline=heap[0][0] if heap else math.inf) as scope:
                    self._scope = scope
                    await trio.sleep_forever()
                self._scope = None
                now = trio.current_time()
                while heap and heap[0][0] <= now:
                    entry = heapq.heappop(heap)
                    if entry[3]:
                        entry[3] = False
                        trio.lowlevel.reschedule(entry[2])
        finally:
            self._running = False
            self._scope = None
            # Whoever still sleeps is woken now rather than never (their pace slips).
            for entry in heap:
                if entry[3]:
                    entry[3] = False
                    trio.lowlevel.reschedule(entry[2])
            heap.clear()
