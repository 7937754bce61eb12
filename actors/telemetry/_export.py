"""Span export that never slows a request: a bounded queue, one worker thread, drop and count.

``span.end()`` runs in the request's own task; all it does here is append to a bounded
deque (no lock is held across I/O, nothing waits). A worker thread takes batches off the
queue and hands them to the exporter (OTLP/HTTP, which retries within its own timeout).
When the queue is full the span is dropped and counted, and when an export fails its batch
is dropped and counted: a collector outage costs spans, never latency. One log line says
so per outage, not one per span.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

log = logging.getLogger("zl.telemetry")

#: Spans waiting for export; past it new spans are dropped (and counted).
DEFAULT_MAX_QUEUE_SPANS = 4096
#: Spans per export request.
DEFAULT_MAX_BATCH_SPANS = 2048
#: The worker exports at least this often when anything is queued.
DEFAULT_EXPORT_INTERVAL_S = 1.0

#: How often ``force_flush`` looks whether the queue is empty.
FLUSH_POLL_S = 0.01
#: At shutdown, what is still queued after this long is dropped (and counted), so a
#: process whose collector is down still stops promptly.
SHUTDOWN_DRAIN_S = 5.0

OnDrop = Callable[[int, str], None]
"""Told ``(count, reason)`` for dropped items: ``queue_full``, ``export_failed`` or
``shutdown``."""


class BoundedSpanProcessor(SpanProcessor):
    """Batches ended spans to ``exporter`` from a worker thread (see the module docstring).

    Args:
        exporter: where batches go.
        on_drop: told of every drop (a metric); must not block.
        max_queue: spans waiting at most.
        max_batch: spans per export call.
        interval_s: how long the worker waits for a full batch before sending what it has.
    """

    def __init__(
        self,
        exporter: SpanExporter,
        *,
        on_drop: OnDrop,
        max_queue: int = DEFAULT_MAX_QUEUE_SPANS,
        max_batch: int = DEFAULT_MAX_BATCH_SPANS,
        interval_s: float = DEFAULT_EXPORT_INTERVAL_S,
    ) -> None:
        self._exporter = exporter
        self._on_drop = on_drop
        self._max_queue = max_queue
        self._max_batch = max_batch
        self._interval_s = interval_s
        self._queue: collections.deque[ReadableSpan] = collections.deque()
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._stopping = False
        self._flushing = False
        self._drain_until = float("inf")
        self._failing = False
        self._thread = threading.Thread(target=self._work, name="zl-span-export", daemon=True)
        self._thread.start()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        del span, parent_context

    def on_end(self, span: ReadableSpan) -> None:
        if self._stopping or not span.context.trace_flags.sampled:
            return
        if len(self._queue) >= self._max_queue:
            self._on_drop(1, "queue_full")
            return
        self._queue.append(span)
        if len(self._queue) >= self._max_batch:
            self._wake.set()

    def _work(self) -> None:
        while True:
            self._wake.wait(self._interval_s)
            self._wake.clear()
            self._drain()
            if self._stopping:
                return

    def _drain(self) -> None:
        self._idle.clear()
        try:
            while self._queue:
                if time.monotonic() > self._drain_until:
                    dropped = len(self._queue)
                    self._queue.clear()
                    self._on_drop(dropped, "shutdown")
                    return
                count = min(self._max_batch, len(self._queue))
                batch = [self._queue.popleft() for _ in range(count)]
                self._export(batch)
                if len(self._queue) < self._max_batch and not (self._stopping or self._flushing):
                    # What ended during that export waits for the next round (a full
                    # batch or the interval): one request a round, not a second small one.
                    return
        finally:
            self._idle.set()

    def _export(self, batch: Sequence[ReadableSpan]) -> None:
        try:
            result = self._exporter.export(batch)
        except Exception:
            log.exception("span export raised")
            result = SpanExportResult.FAILURE
        if result is SpanExportResult.SUCCESS:
            if self._failing:
                log.info("span export works again")
            self._failing = False
            return
        self._on_drop(len(batch), "export_failed")
        if not self._failing:
            log.warning("span export failed; dropping spans (counted) until it works again")
        self._failing = True

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Export what is queued now; True when it finished within the timeout."""
        deadline = time.monotonic() + timeout_millis / 1000
        self._flushing = True
        try:
            self._wake.set()
            while self._queue or not self._idle.is_set():
                if time.monotonic() > deadline:
                    return False
                if self._queue and self._idle.is_set():
                    self._wake.set()
                time.sleep(FLUSH_POLL_S)
            return True
        finally:
            self._flushing = False

    def shutdown(self) -> None:
        """Export what is queued for up to ``SHUTDOWN_DRAIN_S`` (plus the export in
        progress, bounded by the exporter's timeout), drop the rest, stop the worker."""
        self._drain_until = time.monotonic() + SHUTDOWN_DRAIN_S
        self._stopping = True
        self._wake.set()
        self._thread.join()
        self._exporter.shutdown()


class CountingMetricExporter(MetricExporter):
    """Wraps a metric exporter to count failed exports (metrics are cumulative: the next
    successful export carries the totals, so a failure loses resolution, not counts)."""

    def __init__(self, inner: MetricExporter, *, on_drop: OnDrop) -> None:
        super().__init__(
            preferred_temporality=inner._preferred_temporality,
            preferred_aggregation=inner._preferred_aggregation,
        )
        self._inner = inner
        self._on_drop = on_drop

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: object
    ) -> MetricExportResult:
        result = self._inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        if result is not MetricExportResult.SUCCESS:
            self._on_drop(1, "export_failed")
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self._inner.force_flush(timeout_millis=timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: object) -> None:
        self._inner.shutdown(timeout_millis=timeout_millis, **kwargs)
