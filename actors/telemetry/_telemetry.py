"""``Telemetry``: one tracer and one meter per process, built from config, with span helpers.

Nothing is global: the providers belong to the ``Telemetry`` object (tests make as many as
they like, and the OpenTelemetry globals stay untouched). Spans use OpenTelemetry's
context, which rides on ``contextvars``: under Trio each task starts with a copy of its
parent's, so a span opened around ``nursery.start_soon`` is the parent of spans in the
child task, and closing a span in one task never disturbs another.
"""

from __future__ import annotations

import enum
import importlib
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from types import TracebackType
from typing import Generic, TypeVar

import attrs
import trio
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, SynchronousMultiSpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from actors.redaction import Redactor

from ._attributes import (
    ATTR_AUDIT,
    ATTR_CALL,
    ATTR_CANCELLED,
    ATTR_DEVICE,
    ATTR_ERROR_CODE,
    ATTR_OUTCOME,
    ATTR_SESSION,
    ATTR_TENANT,
    ATTR_TIME_TO_FIRST_CHUNK,
    ATTR_TOOL,
    ATTR_TOOL_VERSION,
    ATTR_TURN,
    GEN_AI_FINISH_REASONS,
    GEN_AI_INPUT_TOKENS,
    GEN_AI_MAX_TOKENS,
    GEN_AI_OPERATION,
    GEN_AI_OUTPUT_TOKENS,
    GEN_AI_PROVIDER,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_RESPONSE_MODEL,
)
from ._errors import TelemetryConfigError
from ._export import DEFAULT_MAX_QUEUE_SPANS, BoundedSpanProcessor, CountingMetricExporter
from ._metrics import Metrics, Phase
from ._prometheus import ExportingPrometheusReader, Family, PrometheusReader, Scrapable, render
from ._redacting import RedactingSpanExporter
from ._spans import LeanTracer
from ._traceparent import context_with_traceparent, traceparent_of

INSTRUMENTATION_NAME = "zero_latency"
DEFAULT_METRIC_INTERVAL_S = 10.0
# One OTLP request (with the exporter's own retries) may take this long before its batch
# is dropped and counted; it runs in the exporter's thread, never in a request's task.
DEFAULT_OTLP_TIMEOUT_S = 5.0
# How long shutdown may take to flush what is buffered before it gives up.
SHUTDOWN_TIMEOUT_S = 5.0

# The OTLP metric exporter comes from this package (spans are encoded here, see _otlp).
# OTLP/HTTP's well-known local address, when neither the config nor OTEL_* names one.
DEFAULT_OTLP_URL = "http://localhost:4318"
_OTLP_METRIC = ("opentelemetry.exporter.otlp.proto.http.metric_exporter", "OTLPMetricExporter")
_OTLP_PACKAGE = "opentelemetry-exporter-otlp-proto-http"


class Exporter(enum.StrEnum):
    """Where spans and metrics go."""

    NONE = "none"  # spans are not recorded (trace context still propagates); nothing leaves
    CONSOLE = "console"  # printed to stdout (development)
    OTLP = "otlp"  # OTLP/HTTP, if its package is installed


@attrs.frozen(kw_only=True)
class TelemetryConfig:
    """How telemetry is set up.

    Args:
        service_name: the ``service.name`` resource attribute (``zl-host``, ``zl-relay``…).
        service_version: the ``service.version`` resource attribute, if known.
        exporter: where spans and metrics go.
        otlp_endpoint: the OTLP/HTTP base URL (None: the exporter's default or ``OTEL_*``).
        metric_interval_s: how often metrics are exported.
        prometheus: also keep a pull reader for a ``/metrics`` scrape endpoint.
        otlp_timeout_s: one OTLP request, retries included, before its batch is dropped.
        max_queue_spans: spans waiting for export; past it they are dropped and counted.
    """

    service_name: str = "zl-host"
    service_version: str | None = None
    exporter: Exporter = attrs.field(default=Exporter.NONE, converter=Exporter)
    otlp_endpoint: str | None = None
    metric_interval_s: float = attrs.field(
        default=DEFAULT_METRIC_INTERVAL_S, validator=attrs.validators.gt(0)
    )
    prometheus: bool = False
    otlp_timeout_s: float = attrs.field(
        default=DEFAULT_OTLP_TIMEOUT_S, validator=attrs.validators.gt(0)
    )
    max_queue_spans: int = attrs.field(
        default=DEFAULT_MAX_QUEUE_SPANS, validator=attrs.validators.ge(1)
    )


class ProviderCallScope:
    """A model request's span (GenAI conventions): mark its first chunk, then its result."""

    __slots__ = ("_metrics", "_model", "_provider", "_started", "first_chunk_s", "span")

    def __init__(self, span: Span, metrics: Metrics, *, provider: str, model: str) -> None:
        self.span = span
        self._metrics = metrics
        self._provider = provider
        self._model = model
        self._started = time.monotonic()
        self.first_chunk_s: float | None = None

    def first_chunk(self) -> None:
        """The first chunk of the answer arrived (only the first call counts)."""
        if self.first_chunk_s is not None:
            return
        self.first_chunk_s = time.monotonic() - self._started
        self.span.set_attribute(ATTR_TIME_TO_FIRST_CHUNK, round(self.first_chunk_s * 1000, 3))
        self._metrics.record_time_to_first_chunk(
            self.first_chunk_s, provider=self._provider, model=self._model
        )

    def finish(
        self,
        *,
        input_tokens: int,
        output_tokens: int,
        finish_reason: str,
        response_model: str | None = None,
    ) -> None:
        """The request ended with this usage and finish reason."""
        self.span.set_attributes(
            {
                GEN_AI_INPUT_TOKENS: input_tokens,
                GEN_AI_OUTPUT_TOKENS: output_tokens,
                GEN_AI_FINISH_REASONS: (finish_reason,),
                GEN_AI_RESPONSE_MODEL: response_model or self._model,
            }
        )


class ToolCallScope:
    """A tool call's span: set its outcome; its ``traceparent`` goes down to the device."""

    __slots__ = ("error_code", "outcome", "span")

    def __init__(self, span: Span) -> None:
        self.span = span
        self.outcome: str | None = None
        self.error_code: str | None = None

    @property
    def traceparent(self) -> str | None:
        """The header to send with the call, naming this span as the parent."""
        return traceparent_of(self.span)

    def set_outcome(self, outcome: str, error_code: str | None = None) -> None:
        """How the call ended (ok, error, denied, timeout, cancelled) and its catalog code."""
        self.outcome = outcome
        self.error_code = error_code


class Telemetry:
    """Traces and metrics for one process. Build with ``Telemetry.from_config``.

    Args:
        tracer_provider: owns span processing and export.
        meter_provider: owns metric readers and export.
    """

    def __init__(
        self,
        tracer_provider: TracerProvider,
        meter_provider: MeterProvider,
        *,
        recording: bool = True,
        metrics: Metrics | None = None,
        prometheus: Scrapable | None = None,
        resource: dict[str, str] | None = None,
        tracer: trace.Tracer | None = None,
    ) -> None:
        #: Whether spans are recorded and exported (False: only trace context propagates).
        self.recording = recording
        self._tracer_provider = tracer_provider
        self._meter_provider = meter_provider
        self._prometheus = prometheus
        self._resource = dict(resource or {})
        self.tracer = tracer or tracer_provider.get_tracer(INSTRUMENTATION_NAME)
        self.metrics = metrics or Metrics(meter_provider.get_meter(INSTRUMENTATION_NAME))

    @property
    def scrapable(self) -> bool:
        """Whether ``/metrics`` can be served (``TelemetryConfig.prometheus``)."""
        return self._prometheus is not None

    def metric_families(self) -> list[Family]:
        """The current value of every metric (for the dashboard); empty if not scrapable."""
        self.metrics.flush()
        return [] if self._prometheus is None else self._prometheus.collect_families()

    def prometheus_text(self) -> str:
        """Every metric in the Prometheus text format (``/metrics``)."""
        return render(self.metric_families(), resource=self._resource)

    @classmethod
    def from_config(
        cls,
        config: TelemetryConfig,
        *,
        span_exporter: SpanExporter | None = None,
        metric_readers: Sequence[MetricReader] = (),
        redactor: Redactor | None = None,
    ) -> Telemetry:
        """Build the providers and exporters that ``config`` names.

        Args:
            config: service name and exporter.
            span_exporter: also send every span here, synchronously as it ends (tests use
                the SDK's ``InMemorySpanExporter``; any other exporter plugs in the same way).
            metric_readers: extra readers (tests use ``InMemoryMetricReader``).
            redactor: redacts every span before any exporter sees it (default: every
                built-in class); redactions are counted in ``zl.redaction.count``.

        Raises:
            TelemetryConfigError: OTLP was asked for and its package is not installed.
        """
        attributes = {"service.name": config.service_name}
        if config.service_version is not None:
            attributes["service.version"] = config.service_version
        resource = Resource.create(attributes)
        exporting = config.exporter is not Exporter.NONE or span_exporter is not None
        readers = list(metric_readers)
        prometheus: PrometheusReader | ExportingPrometheusReader | None = None
        periodic: PeriodicExportingMetricReader | None = None
        # Drops are counted on the metrics made below (the exporters exist before them).
        counted: list[Metrics] = []

        def dropped(count: int, reason: str, signal: str = "spans") -> None:
            for metrics in counted:
                metrics.add_dropped(count, signal=signal, reason=reason)

        redactor = redactor if redactor is not None else Redactor()
        redacting: list[RedactingSpanExporter] = []
        processor: SpanProcessor | None = None
        if config.exporter is not Exporter.NONE:
            raw_spans, metric_exporter = _exporters(config)
            # What leaves the process carries no secret: every span goes through the redactor.
            redacting.append(RedactingSpanExporter(raw_spans, redactor))
            spans = redacting[-1]
            if config.exporter is Exporter.CONSOLE:
                processor = BatchSpanProcessor(spans)
            else:
                processor = BoundedSpanProcessor(
                    spans, on_drop=dropped, max_queue=config.max_queue_spans
                )
                metric_exporter = CountingMetricExporter(
                    metric_exporter, on_drop=lambda count, reason: dropped(count, reason, "metrics")
                )
            interval_ms = config.metric_interval_s * 1000
            if config.prometheus and ExportingPrometheusReader.shareable(metric_exporter):
                # One reader for both: every measurement updates one aggregation, not two.
                prometheus = ExportingPrometheusReader(metric_exporter, interval_ms)
                readers.append(prometheus)
            else:
                periodic = PeriodicExportingMetricReader(metric_exporter, interval_ms)
        if config.prometheus and prometheus is None:
            prometheus = PrometheusReader()
            readers.append(prometheus)
        if periodic is not None:
            # Last: shut down last, so a slow final export cannot use up the others' time.
            readers.append(periodic)
        # No exemplars: they would cost every measurement made inside a sampled span.
        meter_provider = MeterProvider(
            resource=resource, metric_readers=readers, exemplar_filter=AlwaysOffExemplarFilter()
        )
        metrics = Metrics(meter_provider.get_meter(INSTRUMENTATION_NAME))
        counted.append(metrics)
        if isinstance(processor, BoundedSpanProcessor):
            # Present from the start at zero, so a dashboard shows "none dropped", not "no data".
            for signal, reason in (("spans", "queue_full"), ("spans", "export_failed")):
                metrics.add_dropped(0, signal=signal, reason=reason)
        # Exporting nowhere, spans are not recorded (ALWAYS_OFF): they still carry a trace
        # context for ``traceparent``, at a fraction of the cost of a recording span.
        # (Without a sampler, the SDK's default or OTEL_TRACES_SAMPLER's.)
        processors = SynchronousMultiSpanProcessor()  # type: ignore[no-untyped-call]
        tracer_provider = TracerProvider(
            resource=resource,
            sampler=None if exporting else ALWAYS_OFF,
            active_span_processor=processors,
        )
        if processor is not None:
            processors.add_span_processor(processor)
        if span_exporter is not None:
            redacting.append(RedactingSpanExporter(span_exporter, redactor))
            processors.add_span_processor(SimpleSpanProcessor(redacting[-1]))
        # The provider owns the processors (and shuts them down); spans are made leaner.
        tracer = LeanTracer(
            processors,
            resource=resource,
            scope=InstrumentationScope(INSTRUMENTATION_NAME),
            sampler=tracer_provider.sampler,
        )
        for exporter in redacting:
            exporter.on_redacted = lambda counts: metrics.add_redactions(counts, site="span")
        return cls(
            tracer_provider,
            meter_provider,
            recording=exporting,
            metrics=metrics,
            prometheus=prometheus,
            resource=attributes,
            tracer=tracer,
        )

    def shutdown(self, timeout_s: float = SHUTDOWN_TIMEOUT_S) -> None:
        """Flush and stop exporters (blocking: call it from a worker thread under Trio)."""
        self.metrics.flush()
        self._tracer_provider.shutdown()
        self._meter_provider.shutdown(timeout_millis=timeout_s * 1000)

    async def aclose(self) -> None:
        """``shutdown`` in a worker thread; cancellation waits for it (it is bounded)."""
        self.metrics.flush()  # here, in the thread that tallies
        await trio.to_thread.run_sync(self.shutdown)

    def turn_span(
        self,
        *,
        session_id: str,
        turn_id: str,
        tenant: str,
        traceparent: str | None = None,
        audit_id: str | None = None,
        device_id: str | None = None,
    ) -> AbstractContextManager[Span]:
        """The span of one turn; a child of the caller's span when ``traceparent`` is given.

        Tenant and audit id are span attributes (never metric attributes: they are unbounded).
        """
        context = context_with_traceparent(traceparent) if traceparent else None
        attributes = {ATTR_SESSION: session_id, ATTR_TURN: turn_id, ATTR_TENANT: tenant}
        # (The model is on the model request's span: gen_ai.request.model.)
        if audit_id:
            attributes[ATTR_AUDIT] = audit_id
        if device_id:
            attributes[ATTR_DEVICE] = device_id
        return self._span("turn", SpanKind.SERVER, attributes, context)

    def phase_span(self, phase: Phase) -> AbstractContextManager[Span]:
        """The span of one phase of the current turn; its length goes to the phase histogram."""
        return _PhaseSpan(
            self._start(_PHASE_NAMES[phase], SpanKind.INTERNAL, None), self.metrics, phase
        )

    def plan_span(self) -> AbstractContextManager[Span]:
        """``phase_span(Phase.PLAN)``."""
        return self.phase_span(Phase.PLAN)

    def act_span(self) -> AbstractContextManager[Span]:
        """``phase_span(Phase.ACT)``."""
        return self.phase_span(Phase.ACT)

    def respond_span(self) -> AbstractContextManager[Span]:
        """``phase_span(Phase.RESPOND)``."""
        return self.phase_span(Phase.RESPOND)

    @contextmanager
    def tool_call_span(
        self,
        *,
        tool: str,
        tool_version: str,
        call_id: str,
        device_id: str | None = None,
        tenant: str | None = None,
        audit_id: str | None = None,
    ) -> Iterator[ToolCallScope]:
        """The span of one tool call; on exit its time and outcome go to the tool metrics.

        The outcome is what the caller set with ``scope.set_outcome``; if it set none, it is
        ``ok``, or ``cancelled`` when the block was cancelled, or ``error`` when it raised.
        """
        attributes = {ATTR_TOOL: tool, ATTR_TOOL_VERSION: tool_version, ATTR_CALL: call_id}
        for key, value in ((ATTR_DEVICE, device_id), (ATTR_TENANT, tenant), (ATTR_AUDIT, audit_id)):
            if value is not None:
                attributes[key] = value
        started = time.monotonic()
        with self._span("tool_call", SpanKind.CLIENT, attributes) as span:
            scope = ToolCallScope(span)
            try:
                yield scope
            except trio.Cancelled:
                scope.outcome = scope.outcome or "cancelled"
                raise
            except BaseException:
                scope.outcome = scope.outcome or "error"
                raise
            finally:
                outcome = scope.outcome or "ok"
                span.set_attribute(ATTR_OUTCOME, outcome)
                if scope.error_code is not None:
                    span.set_attribute(ATTR_ERROR_CODE, scope.error_code)
                if outcome != "ok":
                    span.set_status(Status(StatusCode.ERROR, scope.error_code or outcome))
                elapsed_ms = (time.monotonic() - started) * 1000
                self.metrics.record_tool_call(elapsed_ms, tool=tool, outcome=outcome)

    def provider_span(
        self, *, provider: str, model: str, max_tokens: int | None = None
    ) -> AbstractContextManager[ProviderCallScope]:
        """The span of one model request, named and tagged by the GenAI conventions
        (``chat {model}``, CLIENT); ``scope.first_chunk()`` also feeds the TTFC histogram."""
        attributes: dict[str, AttributeValue] = {
            GEN_AI_OPERATION: "chat",
            GEN_AI_PROVIDER: provider,
            GEN_AI_REQUEST_MODEL: model,
        }
        if max_tokens is not None:
            attributes[GEN_AI_MAX_TOKENS] = max_tokens
        span = self._start(f"chat {model}", SpanKind.CLIENT, attributes)
        scope = ProviderCallScope(span, self.metrics, provider=provider, model=model)
        return _CurrentSpan(span, scope)

    @contextmanager
    def policy_span(self, *, tool: str, tenant: str) -> Iterator[Span]:
        """The span of one policy decision; the caller sets the decision attributes."""
        with self._span(
            "policy.decide", SpanKind.INTERNAL, {ATTR_TOOL: tool, ATTR_TENANT: tenant}
        ) as span:
            yield span

    def hop_span(
        self,
        name: str,
        *,
        traceparent: str | None,
        kind: SpanKind = SpanKind.SERVER,
        attributes: Mapping[str, AttributeValue] | None = None,
    ) -> AbstractContextManager[Span]:
        """A span of work that came from another process, a child of ``traceparent``
        (relay, bridge and MCP server: each adds its own span to the caller's trace)."""
        context = context_with_traceparent(traceparent) if traceparent else Context()
        return self._span(name, kind, attributes, context)

    def start_hop_span(
        self,
        name: str,
        *,
        traceparent: str | None,
        kind: SpanKind = SpanKind.SERVER,
        attributes: Mapping[str, AttributeValue] | None = None,
    ) -> Span:
        """``hop_span`` for work that ends in another message handler: the caller calls
        ``span.end()`` (an actor that routes a call and hears its result later)."""
        context = context_with_traceparent(traceparent) if traceparent else Context()
        return self.tracer.start_span(
            name, context=context, kind=kind, attributes=dict(attributes or {})
        )

    def _start(
        self,
        name: str,
        kind: SpanKind,
        attributes: Mapping[str, AttributeValue] | None,
        context: Context | None = None,
    ) -> Span:
        return self.tracer.start_span(name, context=context, kind=kind, attributes=attributes)

    def _span(
        self,
        name: str,
        kind: SpanKind,
        attributes: Mapping[str, AttributeValue] | None,
        context: Context | None = None,
    ) -> _CurrentSpan[Span]:
        span = self._start(name, kind, attributes, context)
        return _CurrentSpan(span, span)


_T = TypeVar("_T")
_PHASE_NAMES = {phase: phase.value for phase in Phase}


class _CurrentSpan(Generic[_T]):
    """``with``: ``span`` is the current span inside, and ends on the way out (a
    cancellation marked, an exception recorded as the span's error); gives ``result``.

    A class rather than a generator: the SDK's ``start_as_current_span`` costs two more
    generator context managers per span, on the hot path of every turn.
    """

    __slots__ = ("_token", "result", "span")

    def __init__(self, span: Span, result: _T) -> None:
        self.span = span
        self.result = result
        self._token: object = None

    def __enter__(self) -> _T:
        self._token = otel_context.attach(trace.set_span_in_context(self.span))
        return self.result

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        span = self.span
        try:
            if isinstance(exc, trio.Cancelled):
                span.set_attribute(ATTR_CANCELLED, True)
            elif isinstance(exc, Exception):
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            self.exiting()
        finally:
            otel_context.detach(self._token)  # type: ignore[arg-type]
            span.end()

    def exiting(self) -> None:
        """Called on the way out, before the span ends."""


class _PhaseSpan(_CurrentSpan[Span]):
    """A phase's span; its length also goes to the phase histogram."""

    __slots__ = ("_metrics", "_phase", "_started")

    def __init__(self, span: Span, metrics: Metrics, phase: Phase) -> None:
        super().__init__(span, span)
        self._metrics = metrics
        self._phase = phase
        self._started = time.monotonic()

    def exiting(self) -> None:
        self._metrics.record_phase(self._phase, (time.monotonic() - self._started) * 1000)


def _exporters(config: TelemetryConfig) -> tuple[SpanExporter, MetricExporter]:
    if config.exporter is Exporter.CONSOLE:
        # The SDK's default stream is the sys.stdout of import time; use today's.
        return ConsoleSpanExporter(out=sys.stdout), ConsoleMetricExporter(out=sys.stdout)
    try:
        metric_class = getattr(importlib.import_module(_OTLP_METRIC[0]), _OTLP_METRIC[1])
    except ImportError as exc:
        raise TelemetryConfigError(
            f"telemetry exporter 'otlp' needs the package {_OTLP_PACKAGE}, which is not "
            "installed; install it or set the exporter to 'console' or 'none'"
        ) from exc
    # Imported here: only a process that exports needs an HTTP client.
    from ._otlp import OtlpSpanExporter

    base = (
        config.otlp_endpoint or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or DEFAULT_OTLP_URL
    ).rstrip("/")
    timeout = config.otlp_timeout_s
    return (
        OtlpSpanExporter(f"{base}/v1/traces", timeout_s=timeout),
        metric_class(endpoint=f"{base}/v1/metrics", timeout=timeout),
    )
