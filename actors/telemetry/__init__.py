"""Telemetry: OpenTelemetry traces and metrics, and W3C trace context propagation.

A ``Telemetry`` object per process (built from ``TelemetryConfig``) gives span helpers for
turns, phases and tool calls, and typed metric methods; ``traceparent`` helpers carry the
trace across hops.
"""

from ._errors import TelemetryConfigError as TelemetryConfigError
from ._errors import TelemetryError as TelemetryError
from ._metrics import MS_BUCKETS as MS_BUCKETS
from ._metrics import Metrics as Metrics
from ._metrics import Phase as Phase
from ._redacting import RedactingSpanExporter as RedactingSpanExporter
from ._telemetry import Exporter as Exporter
from ._telemetry import Telemetry as Telemetry
from ._telemetry import TelemetryConfig as TelemetryConfig
from ._telemetry import ToolCallScope as ToolCallScope
from ._traceparent import TraceParent as TraceParent
from ._traceparent import context_with_traceparent as context_with_traceparent
from ._traceparent import format_traceparent as format_traceparent
from ._traceparent import new_traceparent as new_traceparent
from ._traceparent import parse_traceparent as parse_traceparent
from ._traceparent import traceparent_of as traceparent_of

__all__ = [
    "MS_BUCKETS",
    "Exporter",
    "Metrics",
    "Phase",
    "RedactingSpanExporter",
    "Telemetry",
    "TelemetryConfig",
    "TelemetryConfigError",
    "TelemetryError",
    "ToolCallScope",
    "TraceParent",
    "context_with_traceparent",
    "format_traceparent",
    "new_traceparent",
    "parse_traceparent",
    "traceparent_of",
]
