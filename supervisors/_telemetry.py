"""The ``[telemetry]`` section every process's configuration shares (host, relay)."""

from __future__ import annotations

import attrs

from actors.telemetry import TelemetryConfig


@attrs.frozen(kw_only=True)
class TelemetrySection:
    """OpenTelemetry traces and metrics (turn and tool-call spans, TTFT, tool, token metrics)."""

    #: "none" (spans are made and trace context propagates; nothing is exported),
    #: "console" (development) or "otlp" (needs opentelemetry-exporter-otlp-proto-http).
    exporter: str = attrs.field(
        default="none", validator=attrs.validators.in_(["none", "console", "otlp"])
    )
    otlp_endpoint: str = ""
    metric_interval_s: float = attrs.field(default=60.0, validator=attrs.validators.gt(0))
    #: Serve ``/metrics`` (Prometheus text format) and ``/debug/dashboard`` on the debug
    #: endpoint, whatever the exporter.
    prometheus: bool = True
    #: How often sessions, mailboxes, breakers and the audit spool are sampled into gauges.
    sample_interval_s: float = attrs.field(default=2.0, validator=attrs.validators.gt(0))
    #: One OTLP request, retries included, before its batch is dropped (and counted).
    otlp_timeout_s: float = attrs.field(default=5.0, validator=attrs.validators.gt(0))

    def to_telemetry_config(self, service_name: str = "zl-host") -> TelemetryConfig:
        return TelemetryConfig(
            service_name=service_name,
            exporter=self.exporter,
            otlp_endpoint=self.otlp_endpoint or None,
            metric_interval_s=self.metric_interval_s,
            prometheus=self.prometheus,
            otlp_timeout_s=self.otlp_timeout_s,
        )
