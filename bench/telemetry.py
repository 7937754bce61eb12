"""What telemetry costs a turn, piece by piece, in CPU microseconds.

    python -m bench.telemetry [--quick] [--rounds N]

The spans and metrics of one turn without a tool call, as the host makes them (``turn``
with its ids, ``plan``, ``chat {model}`` with its GenAI attributes, the turn's histograms),
through the same ``Telemetry`` the host builds with ``exporter = "otlp"`` and ``/metrics``
kept; then what the exporter thread does with them (redaction, OTLP encoding). Each piece
is timed on its own over many turns (CPU time of this thread, the process pinned to one
core); the figure is the median of ``rounds``:

- ``turn_us``: what the turn's own task does: the three spans made, attributed and ended
  into the export queue, and the turn's measurements (phase, time to first token and
  first chunk, tokens) with the two readers of "on" (periodic OTLP and Prometheus);
- ``metrics_us``: of which the measurements alone;
- ``redact_us`` and ``encode_us``: the turn's three spans through ``RedactingSpanExporter``
  and the OTLP encoder, in batches as the exporter thread takes them;
- ``off_us``: what the same turn costs with ``exporter = "none"`` and no reader (the
  non-recording spans that still carry trace context, and the measurements);
- ``values_*_per_turn``: the exporter's string values per turn: scanned by the redactor,
  found in its cache, or taken as they are (the host's ids in their shapes);
- ``on_us``: ``turn_us`` + ``redact_us`` + ``encode_us``, and ``added_us`` = ``on_us`` - ``off_us``.

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, cast

from opentelemetry.sdk.trace import ReadableSpan, SynchronousMultiSpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from actors.redaction import Redactor
from actors.telemetry import (
    BoundedSpanProcessor,
    Exporter,
    Phase,
    RedactingSpanExporter,
    Telemetry,
    TelemetryConfig,
    traceparent_of,
)
from actors.telemetry._otlp import encode_spans

from ._stats import emit, median, progress

#: Spans per export batch (the exporter thread takes what a second of load queued).
BATCH = 512
SESSIONS = 100
TURNS_PER_SESSION = 5


class _Keep(SpanExporter):
    """Keeps what it is given (the spans the exporter thread would send)."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def _telemetry(exporting: bool) -> Telemetry:
    """The host's telemetry for "on" (OTLP to a closed port, never reached: the worker
    exports once an hour) or "off"."""
    if not exporting:
        return Telemetry.from_config(TelemetryConfig(exporter=Exporter.NONE))
    telemetry = Telemetry.from_config(
        TelemetryConfig(
            exporter=Exporter.OTLP,
            otlp_endpoint="http://127.0.0.1:9",
            metric_interval_s=3600,
            prometheus=True,
            max_queue_spans=10**6,
        )
    )
    processor = _queue_of(telemetry)
    # The worker never wakes: the queue is drained by hand, each piece timed on its own.
    processor._interval_s = 3600
    processor._max_batch = 10**9
    return telemetry


def _queue_of(telemetry: Telemetry) -> BoundedSpanProcessor:
    """The export queue's processor of an exporting ``Telemetry``."""
    processors = telemetry._tracer_provider._active_span_processor
    (processor,) = cast(SynchronousMultiSpanProcessor, processors)._span_processors
    return cast(BoundedSpanProcessor, processor)


def _ids(turns: int) -> list[tuple[str, str, str]]:
    """(session id, turn id, audit id) for ``turns`` turns, as the host makes them."""
    out: list[tuple[str, str, str]] = []
    for n in range(turns):
        session = uuid.uuid4().hex[:16] if n % TURNS_PER_SESSION == 0 else out[-1][0]
        out.append((session, f"t{n % TURNS_PER_SESSION + 1}", "turn_" + uuid.uuid4().hex))
    return out


def _turn(telemetry: Telemetry, ids: Sequence[tuple[str, str, str]]) -> None:
    """The telemetry of ``ids`` turns, as ``Turn.run`` makes it (one model request each)."""
    metrics = telemetry.metrics
    for session, turn, audit in ids:
        with telemetry.turn_span(
            session_id=session, turn_id=turn, tenant="bench", audit_id=audit, device_id="dev"
        ) as span:
            traceparent_of(span)  # for the turn's audit record
            _plan(telemetry)
        metrics.add_tokens(input_tokens=12, output_tokens=25)


def _plan(telemetry: Telemetry) -> None:
    with (
        telemetry.plan_span(),
        telemetry.provider_span(provider="mock", model="mock-1", max_tokens=10**6) as scope,
    ):
        scope.first_chunk()
        telemetry.metrics.record_ttft(51.2)
        scope.finish(input_tokens=12, output_tokens=25, finish_reason="stop")


def _off_turn(telemetry: Telemetry, ids: Sequence[tuple[str, str, str]]) -> None:
    # Not recording and no traceparent: the turn makes no turn span (see Turn.run).
    for _ in ids:
        _plan(telemetry)
        telemetry.metrics.add_tokens(input_tokens=12, output_tokens=25)


def _metrics(telemetry: Telemetry, turns: int) -> None:
    """The turn's measurements alone (they are also inside ``_turn``)."""
    metrics = telemetry.metrics
    for _ in range(turns):
        metrics.record_phase(Phase.PLAN, 62.5)
        metrics.record_ttft(51.2)
        metrics.record_time_to_first_chunk(0.0503, provider="mock", model="mock-1")
        metrics.add_tokens(input_tokens=12, output_tokens=25)


def _cpu_us(run: Callable[[], object]) -> float:
    started = time.thread_time()
    run()
    return (time.thread_time() - started) * 1e6


def one_round(turns: int) -> dict[str, float]:
    ids = _ids(turns)
    # On: the spans go to the export queue; drained by hand below, as the worker would.
    on = _telemetry(exporting=True)
    turn_us = _cpu_us(lambda: _turn(on, ids)) / turns
    metrics_us = _cpu_us(lambda: _metrics(on, turns)) / turns
    processor = _queue_of(on)
    queued: list[ReadableSpan] = list(processor._queue)
    processor._queue.clear()
    kept = _Keep()
    redacting = RedactingSpanExporter(kept, Redactor())
    batches = [queued[i : i + BATCH] for i in range(0, len(queued), BATCH)]
    redact_us = _cpu_us(lambda: [redacting.export(batch) for batch in batches]) / turns
    cleaned = [kept.spans[i : i + BATCH] for i in range(0, len(kept.spans), BATCH)]
    encode_us = _cpu_us(lambda: [encode_spans(batch) for batch in cleaned]) / turns
    on.shutdown(timeout_s=0.1)
    # Off: the default without /metrics (exporter none, no reader).
    off = _telemetry(exporting=False)
    off_us = _cpu_us(lambda: _off_turn(off, ids)) / turns
    off.shutdown()
    total = turn_us + redact_us + encode_us
    return {
        "turn_us": turn_us,
        "metrics_us": metrics_us,
        "redact_us": redact_us,
        "encode_us": encode_us,
        "on_us": total,
        "off_us": off_us,
        "added_us": total - off_us,
        "spans_per_turn": len(queued) / turns,
        # Per turn, the exporter's string values: scanned, found in its cache, or of a host
        # id's shape (not scanned).
        # (getattr: builds before these counters, for bench.compare.)
        "values_scanned_per_turn": getattr(redacting, "scanned", 0) / turns,
        "values_cached_per_turn": getattr(redacting, "cached", 0) / turns,
        "values_shaped_per_turn": getattr(redacting, "shaped", 0) / turns,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer turns; a few seconds")
    parser.add_argument("--rounds", type=int, default=9, help="rounds (median reported)")
    args = parser.parse_args()
    # Shutting down, the metric exporter tries its closed port once: not worth a line.
    logging.disable(logging.CRITICAL)
    with_affinity = hasattr(os, "sched_setaffinity")
    if with_affinity:
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})
    turns = 500 if args.quick else SESSIONS * TURNS_PER_SESSION * 4
    rounds = 3 if args.quick else args.rounds
    progress(f"telemetry per turn: {rounds} rounds of {turns} turns ...")
    one_round(min(turns, 200))  # warm-up: imports, caches, first allocations
    results = []
    for n in range(rounds):
        results.append(one_round(turns))
        figures = ", ".join(f"{k} {v:.1f}" for k, v in results[-1].items())
        progress(f"  round {n + 1}: {figures}")
    out: dict[str, Any] = {"bench": "telemetry", "turns": turns, "rounds": rounds}
    for key in results[0]:
        out[key] = round(median([r[key] for r in results]), 2)
    emit(out)


if __name__ == "__main__":
    main()
