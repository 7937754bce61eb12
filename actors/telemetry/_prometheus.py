"""The process's metrics for a Prometheus scrape (``/metrics``) and for the live dashboard.

``PrometheusReader`` is a pull ``MetricReader`` on the process's ``MeterProvider``: a scrape
collects the current values (cumulative) and ``render`` writes them in the Prometheus text
format 0.0.4. Every instrument made on the meter appears, so adding a metric to
``Metrics`` is all it takes to scrape it.

Names follow the OpenTelemetry → Prometheus compatibility rules that a Collector's
``prometheus`` exporter also applies, so a dashboard works whichever way the figures
travel: separators become ``_``, the unit is appended in words (``ms`` → ``milliseconds``,
``s`` → ``seconds``, ``By`` → ``bytes``; ``{call}``-style annotations are dropped), and a
monotonic counter ends in ``_total``. ``zl.turn.time_to_first_token`` (ms) is scraped as
``zl_turn_time_to_first_token_milliseconds_bucket`` / ``_sum`` / ``_count``.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

import attrs
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Histogram,
    HistogramDataPoint,
    MetricExporter,
    MetricReader,
    MetricsData,
    NumberDataPoint,
    PeriodicExportingMetricReader,
    Sum,
)
from opentelemetry.sdk.metrics.view import (
    Aggregation,
    DefaultAggregation,
    ExplicitBucketHistogramAggregation,
)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: A scrape waits at most this long for the SDK to collect.
COLLECT_TIMEOUT_MS = 5_000

_UNITS = {
    "ms": "milliseconds",
    "s": "seconds",
    "us": "microseconds",
    "ns": "nanoseconds",
    "min": "minutes",
    "h": "hours",
    "By": "bytes",
    "KiBy": "kibibytes",
    "MiBy": "mebibytes",
    "%": "percent",
}
_SEPARATOR = re.compile(r"[^a-zA-Z0-9]+")


def prometheus_name(name: str, unit: str, *, counter: bool) -> str:
    """The Prometheus name of an OpenTelemetry instrument (see the module docstring)."""
    tokens = [token for token in _SEPARATOR.split(name) if token]
    word = _UNITS.get(unit, "" if unit.startswith("{") or unit == "1" else unit)
    word = "_".join(t for t in _SEPARATOR.split(word) if t)
    if word and word not in tokens:
        tokens.append(word)
    if counter:
        tokens = [t for t in tokens if t != "total"] + ["total"]
    result = "_".join(tokens)
    return f"_{result}" if result[:1].isdigit() else result


def label_name(key: str) -> str:
    """An attribute key as a label name (``gen_ai.provider.name`` → ``gen_ai_provider_name``)."""
    result = "_".join(t for t in _SEPARATOR.split(key) if t) or "_"
    return f"_{result}" if result[:1].isdigit() else result


@attrs.frozen(kw_only=True)
class Point:
    """One attribute set of a counter or gauge."""

    labels: tuple[tuple[str, str], ...]
    value: float


@attrs.frozen(kw_only=True)
class HistogramPoint:
    """One attribute set of a histogram: per-bucket counts (not cumulative), sum and count."""

    labels: tuple[tuple[str, str], ...]
    bounds: tuple[float, ...]
    bucket_counts: tuple[int, ...]
    count: int
    sum: float

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile by linear interpolation in its bucket (PromQL's
        ``histogram_quantile``); None when empty. Past the last bound: that bound."""
        if self.count == 0:
            return None
        rank = q * self.count
        seen = 0
        lower = 0.0
        for index, in_bucket in enumerate(self.bucket_counts):
            upper = self.bounds[index] if index < len(self.bounds) else math.inf
            if in_bucket and seen + in_bucket >= rank:
                if math.isinf(upper):
                    return self.bounds[-1] if self.bounds else None
                return lower + (upper - lower) * (rank - seen) / in_bucket
            seen += in_bucket
            lower = upper
        return self.bounds[-1] if self.bounds else None


@attrs.frozen(kw_only=True)
class Family:
    """One metric: its OpenTelemetry and Prometheus names, type, unit, help and points."""

    name: str
    prometheus: str
    kind: str  # counter, gauge or histogram
    unit: str
    description: str
    points: tuple[Point, ...] = ()
    histograms: tuple[HistogramPoint, ...] = ()


def _labels(attributes: Mapping[str, Any] | None) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((label_name(k), str(v)) for k, v in (attributes or {}).items()))


def families(data: MetricsData | None) -> list[Family]:
    """The metrics of ``data`` as families, sorted by name (the same name from two
    scopes is merged)."""
    merged: dict[str, Family] = {}
    for resource in data.resource_metrics if data is not None else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                family = _family(
                    metric.name, metric.unit or "", metric.description or "", metric.data
                )
                if family is None:
                    continue
                old = merged.get(family.name)
                if old is not None:
                    family = attrs.evolve(
                        old,
                        points=old.points + family.points,
                        histograms=old.histograms + family.histograms,
                    )
                merged[family.name] = family
    return [merged[name] for name in sorted(merged)]


def _family(name: str, unit: str, description: str, data: Any) -> Family | None:
    if isinstance(data, Histogram):
        return Family(
            name=name,
            prometheus=prometheus_name(name, unit, counter=False),
            kind="histogram",
            unit=unit,
            description=description,
            histograms=tuple(_histogram(p) for p in data.data_points),
        )
    if isinstance(data, Sum | Gauge):
        counter = isinstance(data, Sum) and data.is_monotonic
        points = tuple(
            Point(labels=_labels(p.attributes), value=float(p.value))
            for p in data.data_points
            if isinstance(p, NumberDataPoint)
        )
        return Family(
            name=name,
            prometheus=prometheus_name(name, unit, counter=counter),
            kind="counter" if counter else "gauge",
            unit=unit,
            description=description,
            points=points,
        )
    return None  # exponential histograms: none of ours


def _histogram(point: HistogramDataPoint) -> HistogramPoint:
    return HistogramPoint(
        labels=_labels(point.attributes),
        bounds=tuple(float(b) for b in point.explicit_bounds),
        bucket_counts=tuple(int(c) for c in point.bucket_counts),
        count=int(point.count),
        sum=float(point.sum),
    )


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(number: float) -> str:
    value = float(number)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)


def _series(name: str, labels: Iterable[tuple[str, str]], value: float) -> str:
    inner = ",".join(f'{key}="{_escape(val)}"' for key, val in labels)
    return f"{name}{{{inner}}} {_number(value)}" if inner else f"{name} {_number(value)}"


def render(found: Sequence[Family], *, resource: Mapping[str, str] | None = None) -> str:
    """``found`` in the Prometheus text exposition format 0.0.4 (``target_info`` first)."""
    lines: list[str] = []
    if resource:
        lines += [
            "# HELP target_info Target metadata",
            "# TYPE target_info gauge",
            _series("target_info", _labels(resource), 1),
        ]
    for family in found:
        lines.append(f"# HELP {family.prometheus} {_escape(family.description)}")
        lines.append(f"# TYPE {family.prometheus} {family.kind}")
        lines.extend(_lines(family))
    return "\n".join(lines) + "\n"


def _lines(family: Family) -> Iterator[str]:
    for point in family.points:
        yield _series(family.prometheus, point.labels, point.value)
    for histogram in family.histograms:
        running = 0
        for index, count in enumerate(histogram.bucket_counts):
            running += count
            bound = histogram.bounds[index] if index < len(histogram.bounds) else math.inf
            le = (("le", _number(bound)),)
            yield _series(f"{family.prometheus}_bucket", histogram.labels + le, running)
        yield _series(f"{family.prometheus}_sum", histogram.labels, histogram.sum)
        yield _series(f"{family.prometheus}_count", histogram.labels, histogram.count)


class Scrapable(Protocol):
    """A reader that gives the current values on demand (for ``/metrics``)."""

    def collect_families(self) -> list[Family]: ...


class PrometheusReader(MetricReader):
    """A pull reader: ``collect_families`` reads the current values on demand."""

    def __init__(self) -> None:
        super().__init__()
        self._latest: MetricsData | None = None

    def _receive_metrics(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> None:
        self._latest = metrics_data

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        pass

    def collect_families(self) -> list[Family]:
        """Collect now and return the families (empty after the provider shut down)."""
        self._latest = None
        self.collect(timeout_millis=COLLECT_TIMEOUT_MS)
        return families(self._latest)


class ExportingPrometheusReader(PeriodicExportingMetricReader):
    """The pull reader and the periodic export to ``exporter`` in one reader.

    The SDK keeps one aggregation per reader and every measurement updates each of them:
    with ``/metrics`` and OTLP both on, one reader costs each measurement a third less.
    Both read cumulative values (the exporter's preference must be cumulative and default
    aggregation, see ``shareable``), so a scrape does not take anything from the next
    export. The periodic export, its final collection at shutdown and ``force_flush`` are
    the SDK's; only a collection made by ``collect_families`` is kept for the scrape
    instead of being exported.
    """

    def __init__(self, exporter: MetricExporter, export_interval_millis: float) -> None:
        super().__init__(exporter, export_interval_millis=export_interval_millis)
        self._scrape = threading.local()

    def _receive_metrics(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> None:
        if getattr(self._scrape, "active", False):
            self._scrape.data = metrics_data
            return
        super()._receive_metrics(metrics_data, timeout_millis, **kwargs)

    def collect_families(self) -> list[Family]:
        """Collect now and return the families, for this thread's scrape only."""
        scrape = self._scrape
        scrape.active, scrape.data = True, None
        try:
            self.collect(timeout_millis=COLLECT_TIMEOUT_MS)
        finally:
            scrape.active = False
        data, scrape.data = scrape.data, None
        return families(data)

    @staticmethod
    def shareable(exporter: MetricExporter) -> bool:
        """Whether ``exporter`` reads what a scrape reads: cumulative values, default
        aggregations (not so when ``OTEL_EXPORTER_OTLP_METRICS_*`` ask otherwise)."""
        temporalities = (exporter._preferred_temporality or {}).values()
        aggregations = (exporter._preferred_aggregation or {}).values()
        return all(t is AggregationTemporality.CUMULATIVE for t in temporalities) and all(
            map(_as_default, aggregations)
        )


def _as_default(aggregation: Aggregation) -> bool:
    """Whether ``aggregation`` aggregates as the default one does (the OTLP exporter names
    explicit buckets for histograms: with no boundaries of its own, the same thing)."""
    if type(aggregation) is ExplicitBucketHistogramAggregation:
        return aggregation._boundaries is None and aggregation._record_min_max
    return type(aggregation) is DefaultAggregation
