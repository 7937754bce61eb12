"""With this folder on ``PYTHONPATH``, a process finds no OTLP exporter package, as on a
machine where ``opentelemetry-exporter-otlp-proto-http`` is not installed."""

import sys

sys.modules["opentelemetry.exporter.otlp.proto.http.metric_exporter"] = None  # type: ignore[assignment]
