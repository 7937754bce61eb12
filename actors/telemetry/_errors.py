"""The telemetry's errors.

::

    TelemetryError               (Exception)
     └── TelemetryConfigError    a setting cannot be used (an unknown exporter, or the OTLP
                                 exporter asked for but its package is not installed)

Telemetry never fails a request: once built, its helpers do not raise for export problems
(the SDK logs and drops). Only building it from a bad configuration raises.
"""

from __future__ import annotations


class TelemetryError(Exception):
    """Base of the telemetry's errors."""


class TelemetryConfigError(TelemetryError):
    """The telemetry configuration cannot be used; the message names the setting."""
