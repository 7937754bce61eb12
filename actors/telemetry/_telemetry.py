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
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager

import attrs
import trio
from opentelemetry.context import Context
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from actors.redaction import Redactor

from ._errors import TelemetryConfigError
from ._metrics import Metrics, Phase
from ._redacting import RedactingSpanExporter
from ._traceparent import context_with_traceparent, traceparent_of

INSTRUMENTATION_NAME = "zero_latency"
DEFAULT_METRIC_INTERVAL_S = 10.0
# How long shutdown may take to flush what is buffered before it gives up.
SHUTDOWN_TIMEOUT_S = 5.0

# The OTLP exporters are optional packages; these are the modules and classes tried.
_OTLP_SPAN = ("opentelemetry.exporter.otlp.proto.http.trace_exporter", "OTLPSpanExporter")
_OTLP_METRIC = ("opentelemetry.exporter.otlp.proto.http.metric_exporter", "OTLPMetricExporter")
_OTLP_PACKAGE = "opentelemetry-exporter-otlp-proto-http"

# Span attribute names.
ATTR_SESSION = "zl.session.id"
ATTR_TURN = "zl.turn.id"
ATTR_TENANT = "zl.tenant"
ATTR_TOOL = "zl.tool.name"
ATTR_TOOL_VERSION = "zl.tool.version"
ATTR_CALL = "zl.tool.call_id"
ATTR_DEVICE = "zl.device.id"
ATTR_OUTCOME = "zl.tool.outcome"
ATTR_ERROR_CODE = "zl.error.code"
ATTR_PHASE = "zl.phase"


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
    """

    service_name: str = "zl-host"
    service_version: str | None = None
    exporter: Exporter = attrs.field(default=Exporter.NONE, converter=Exporter)
    otlp_endpoint: str | None = None
    metric_interval_s: float = attrs.field(
        default=DEFAULT_METRIC_INTERVAL_S, validator=attrs.validators.gt(0)
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
    ) -> None:
        #: Whether spans are recorded and exported (False: only trace context propagates).
        self.recording = recording
        self._tracer_provider = tracer_provider
        self._meter_provider = meter_provider
        self.tracer = tracer_provider.get_tracer(INSTRUMENTATION_NAME)
        self.metrics = Metrics(meter_provider.get_meter(INSTRUMENTATION_NAME))

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
        # Exporting nowhere, spans are not recorded (ALWAYS_OFF): they still carry a trace
        # context for ``traceparent``, at a fraction of the cost of a recording span.
        tracer_provider = TracerProvider(
            resource=resource, sampler=None if exporting else ALWAYS_OFF
        )
        readers = list(metric_readers)
        interval_ms = config.metric_interval_s * 1000
        redactor = redactor if redactor is not None else Redactor()
        redacting: list[RedactingSpanExporter] = []
        if config.exporter is not Exporter.NONE:
            spans, metrics = _exporters(config)
            redacting.append(RedactingSpanExporter(spans, redactor))
            tracer_provider.add_span_processor(BatchSpanProcessor(redacting[-1]))
            readers.append(PeriodicExportingMetricReader(metrics, interval_ms))
        if span_exporter is not None:
            redacting.append(RedactingSpanExporter(span_exporter, redactor))
            tracer_provider.add_span_processor(SimpleSpanProcessor(redacting[-1]))
        meter_provider = MeterProvider(resource=resource, metric_readers=readers)
        telemetry = cls(tracer_provider, meter_provider, recording=exporting)
        for exporter in redacting:
            exporter.on_redacted = lambda counts: telemetry.metrics.add_redactions(
                counts, site="span"
            )
        return telemetry

    def shutdown(self, timeout_s: float = SHUTDOWN_TIMEOUT_S) -> None:
        """Flush and stop exporters (blocking: call it from a worker thread under Trio)."""
        self._tracer_provider.shutdown()
        self._meter_provider.shutdown(timeout_millis=timeout_s * 1000)

    async def aclose(self) -> None:
        """``shutdown`` in a worker thread; cancellation waits for it (it is bounded)."""
        await trio.to_thread.run_sync(self.shutdown)

    @contextmanager
    def turn_span(
        self, *, session_id: str, turn_id: str, tenant: str, traceparent: str | None = None
    ) -> Iterator[Span]:
        """The span of one turn; a child of the caller's span when ``traceparent`` is given."""
        context = context_with_traceparent(traceparent) if traceparent else None
        attributes = {ATTR_SESSION: session_id, ATTR_TURN: turn_id, ATTR_TENANT: tenant}
        with self._span("turn", SpanKind.SERVER, attributes, context) as span:
            yield span

    @contextmanager
    def phase_span(self, phase: Phase) -> Iterator[Span]:
        """The span of one phase of the current turn; its length goes to the phase histogram."""
        started = time.monotonic()
        try:
            with self._span(phase.value, SpanKind.INTERNAL, {ATTR_PHASE: phase.value}) as span:
                yield span
        finally:
            self.metrics.record_phase(phase, (time.monotonic() - started) * 1000)

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
        self, *, tool: str, tool_version: str, call_id: str, device_id: str | None = None
    ) -> Iterator[ToolCallScope]:
        """The span of one tool call; on exit its time and outcome go to the tool metrics.

        The outcome is what the caller set with ``scope.set_outcome``; if it set none, it is
        ``ok``, or ``cancelled`` when the block was cancelled, or ``error`` when it raised.
        """
        attributes = {ATTR_TOOL: tool, ATTR_TOOL_VERSION: tool_version, ATTR_CALL: call_id}
        if device_id is not None:
            attributes[ATTR_DEVICE] = device_id
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

    @contextmanager
    def _span(
        self,
        name: str,
        kind: SpanKind,
        attributes: dict[str, str],
        context: Context | None = None,
    ) -> Iterator[Span]:
        with self.tracer.start_as_current_span(
            name,
            context=context,
            kind=kind,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                yield span
            except trio.Cancelled:
                span.set_attribute("zl.cancelled", True)
                raise
            except Exception as exc:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                raise


def _exporters(config: TelemetryConfig) -> tuple[SpanExporter, MetricExporter]:
    if config.exporter is Exporter.CONSOLE:
        # The SDK's default stream is the sys.stdout of import time; use today's.
        return ConsoleSpanExporter(out=sys.stdout), ConsoleMetricExporter(out=sys.stdout)
    try:
        span_class = getattr(importlib.import_module(_OTLP_SPAN[0]), _OTLP_SPAN[1])
        metric_class = getattr(importlib.import_module(_OTLP_METRIC[0]), _OTLP_METRIC[1])
    except ImportError as exc:
        raise TelemetryConfigError(
            f"telemetry exporter 'otlp' needs the package {_OTLP_PACKAGE}, which is not "
            "installed; install it or set the exporter to 'console' or 'none'"
        ) from exc
    if config.otlp_endpoint is None:
        return span_class(), metric_class()
    base = config.otlp_endpoint.rstrip("/")
    return span_class(endpoint=f"{base}/v1/traces"), metric_class(endpoint=f"{base}/v1/metrics")
