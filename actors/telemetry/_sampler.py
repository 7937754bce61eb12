"""``TelemetrySampler``: the actor that turns a process's state into gauges, every few seconds.

Counters and histograms are recorded where things happen; state (sessions open, the
deepest mailboxes, breaker states, the audit spool, relay queues) is sampled here instead,
in the actor system's own thread, so nothing reads actor state from an exporter thread
and no request pays for it. Each process registers what it samples as plain callables.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable, Sequence
from typing import Final

import trio

from zl_actors import Actor, ActorContext, ActorSnapshot

from ._metrics import Metrics

log = logging.getLogger("zl.telemetry")

#: Mailbox gauges are reported for this many actor types at most (the busiest ones).
BUSIEST_ACTOR_TYPES: Final = 8
DEFAULT_SAMPLE_INTERVAL_S: Final = 2.0
#: The actor type whose instances are counted as sessions.
SESSION_ACTOR_TYPE: Final = "Session"

Sample = Callable[[Metrics, ActorSnapshot], None]
"""Sets some gauges from the process's state (and its tree, sampled once per round); must
not block, may raise (it is logged)."""


def sample_tree(tree: ActorSnapshot, metrics: Metrics, *, previous: set[str]) -> set[str]:
    """Set the session count and the mailbox depth of the busiest actor types from ``tree``.

    Types reported last time but not among the busiest now are set to 0, so a gauge never
    keeps a stale peak.

    Returns:
        The actor types reported now (pass them back as ``previous`` next time).
    """
    deepest: collections.Counter[str] = collections.Counter()
    sessions = 0
    for node in tree.walk():
        if node.kind != "actor" or not node.actor_type:
            continue
        if node.actor_type == SESSION_ACTOR_TYPE:
            sessions += 1
        deepest[node.actor_type] = max(deepest[node.actor_type], node.mailbox.depth)
    metrics.set_active_sessions(sessions)
    busiest = sorted(deepest.items(), key=lambda item: (-item[1], item[0]))[:BUSIEST_ACTOR_TYPES]
    reported = {name for name, _ in busiest}
    for name, depth in busiest:
        metrics.set_mailbox_depth(depth, actor=name)
    for name in previous - reported:
        metrics.set_mailbox_depth(0, actor=name)
    return reported


class TelemetrySampler(Actor[None]):
    """Samples the tree and the registered callables every ``interval_s`` seconds.

    Args:
        metrics: where the gauges are.
        samples: the process's own samplers (breakers, spool, relay queues, ...).
        interval_s: between samples.
    """

    mailbox_capacity = 1

    def __init__(
        self,
        metrics: Metrics,
        samples: Sequence[Sample] = (),
        *,
        interval_s: float = DEFAULT_SAMPLE_INTERVAL_S,
    ) -> None:
        self.metrics = metrics
        self.samples = tuple(samples)
        self.interval_s = interval_s
        self._reported: set[str] = set()

    async def on_start(self, ctx: ActorContext[None]) -> None:
        self.sample(ctx.system.snapshot())
        ctx.nursery.start_soon(self._every, ctx)

    async def handle(self, message: None, ctx: ActorContext[None]) -> None:
        del message, ctx

    def sample(self, tree: ActorSnapshot) -> None:
        """One round of sampling (a failing sampler is logged and the others still run)."""
        self.metrics.flush()
        self._reported = sample_tree(tree, self.metrics, previous=self._reported)
        for sample in self.samples:
            try:
                sample(self.metrics, tree)
            except Exception:
                log.exception("telemetry sampler %r failed", sample)

    async def _every(self, ctx: ActorContext[None]) -> None:
        while True:
            await trio.sleep(self.interval_s)
            self.sample(ctx.system.snapshot())
