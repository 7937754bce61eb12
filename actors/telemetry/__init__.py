"""Telemetry: OpenTelemetry traces and metrics, and W3C trace context propagation.

A ``Telemetry`` object per process (built from ``TelemetryConfig``) gives span helpers for
turns, phases and tool calls, and typed metric methods; ``traceparent`` helpers carry the
trace across hops.
"""

from ._attributes import ATTR_AUDIT as ATTR_AUDIT
from ._attributes import ATTR_CALL as ATTR_CALL
from ._attributes import ATTR_DEVICE as ATTR_DEVICE
from ._attributes import ATTR_ERROR_CODE as ATTR_ERROR_CODE
from ._attributes import ATTR_OUTCOME as ATTR_OUTCOME
from ._attributes import ATTR_POLICY_DECISION as ATTR_POLICY_DECISION
from ._attributes import ATTR_POLICY_REVISION as ATTR_POLICY_REVISION
from ._attributes import ATTR_POLICY_RULE as ATTR_POLICY_RULE
from ._attributes import ATTR_TENANT as ATTR_TENANT
from ._attributes import ATTR_TOOL as ATTR_TOOL
from ._attributes import ATTRIBUTE_KINDS as ATTRIBUTE_KINDS
from ._attributes import ID_SHAPES as ID_SHAPES
from ._attributes import AttributeKind as AttributeKind
from ._errors import TelemetryConfigError as TelemetryConfigError
from ._errors import TelemetryError as TelemetryError
from ._export import BoundedSpanProcessor as BoundedSpanProcessor
from ._metrics import MS_BUCKETS as MS_BUCKETS
from ._metrics import Metrics as Metrics
from ._metrics import Phase as Phase
from ._prometheus import CONTENT_TYPE as PROMETHEUS_CONTENT_TYPE
from ._prometheus import Family as Family
from ._prometheus import HistogramPoint as HistogramPoint
from ._prometheus import Point as Point
from ._prometheus import prometheus_name as prometheus_name
from ._redacting import RedactingSpanExporter as RedactingSpanExporter
from ._sampler import Sample as Sample
from ._sampler import TelemetrySampler as TelemetrySampler
from ._sampler import sample_tree as sample_tree
from ._telemetry import Exporter as Exporter
from ._telemetry import ProviderCallScope as ProviderCallScope
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
    "ATTRIBUTE_KINDS",
    "ATTR_AUDIT",
    "ATTR_CALL",
    "ATTR_DEVICE",
    "ATTR_ERROR_CODE",
    "ATTR_OUTCOME",
    "ATTR_POLICY_DECISION",
    "ATTR_POLICY_REVISION",
    "ATTR_POLICY_RULE",
    "ATTR_TENANT",
    "ATTR_TOOL",
    "ID_SHAPES",
    "MS_BUCKETS",
    "PROMETHEUS_CONTENT_TYPE",
    "AttributeKind",
    "BoundedSpanProcessor",
    "Exporter",
    "Family",
    "HistogramPoint",
    "Metrics",
    "Phase",
    "Point",
    "ProviderCallScope",
    "RedactingSpanExporter",
    "Sample",
    "Telemetry",
    "TelemetryConfig",
    "TelemetryConfigError",
    "TelemetryError",
    "TelemetrySampler",
    "ToolCallScope",
    "TraceParent",
    "context_with_traceparent",
    "format_traceparent",
    "new_traceparent",
    "parse_traceparent",
    "prometheus_name",
    "sample_tree",
    "traceparent_of",
]
