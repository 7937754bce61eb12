"""The metrics the seed asks for, as typed methods over one OpenTelemetry meter.

Names follow OpenTelemetry's style (``zl.`` prefix, unit in ``unit``); the seed's
``host_to_device_rtt_ms`` keeps its name. Attributes are low-cardinality only (phase,
tool, outcome, direction, kind): never a session, call or device id, which belong on spans.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from opentelemetry.metrics import Meter

# Histogram buckets in milliseconds: fine below 10 ms (the bridge overhead target is
# p95 ≤ 100 ms, the gateway's ≤ 2 ms), coarse up to a minute (a slow turn).
MS_BUCKETS: tuple[float, ...] = (
    0.5, 1, 2, 5, 10, 25, 50, 75, 100, 150, 250, 500, 800, 1000, 2500, 5000, 10000, 30000, 60000,
)  # fmt: skip


class Phase(enum.StrEnum):
    """The phases of a turn whose latencies are measured."""

    PLAN = "plan"  # the model thinking until it answers or asks for a tool
    ACT = "act"  # the tool call, host side, from decision to result
    RESPOND = "respond"  # the model's answer after the tool result


class Metrics:
    """Record the host's figures. Every method is cheap and never raises for export trouble.

    Args:
        meter: where the instruments are made (one ``Telemetry`` makes one).
    """

    def __init__(self, meter: Meter) -> None:
        self._phase_ms = meter.create_histogram(
            "zl.turn.phase.duration",
            unit="ms",
            description="Latency of a turn phase (plan, act, respond).",
            explicit_bucket_boundaries_advisory=MS_BUCKETS,
        )
        self._ttft_ms = meter.create_histogram(
            "zl.turn.time_to_first_token",
            unit="ms",
            description="From the user's message to the first assistant delta sent.",
            explicit_bucket_boundaries_advisory=MS_BUCKETS,
        )
        self._tool_call_ms = meter.create_histogram(
            "zl.tool.call.duration",
            unit="ms",
            description="A tool call as the host sees it, by tool and outcome.",
            explicit_bucket_boundaries_advisory=MS_BUCKETS,
        )
        self._rtt_ms = meter.create_histogram(
            "host_to_device_rtt_ms",
            unit="ms",
            description="Round trip host → relay → device bridge → back (ping or call).",
            explicit_bucket_boundaries_advisory=MS_BUCKETS,
        )
        self._relay_queue = meter.create_gauge(
            "zl.relay.queue.depth",
            unit="{call}",
            description="Calls waiting in a relay queue (in flight to a device).",
        )
        self._tool_calls = meter.create_counter(
            "zl.tool.calls",
            unit="{call}",
            description="Tool calls by outcome; success % = ok / (all - denied).",
        )
        self._tokens = meter.create_counter(
            "zl.tokens", unit="{token}", description="Model tokens, by direction (in / out)."
        )
        self._receipts = meter.create_counter(
            "zl.audit.records", unit="{record}", description="Audit records written, by kind."
        )
        self._redactions = meter.create_counter(
            "zl.redaction.count",
            unit="{value}",
            description="Values redacted, by class and where (model, log, span); never the value.",
        )
        self._policy_age = meter.create_histogram(
            "zl.policy.bundle.age",
            unit="s",
            description="Age (now - iat) of the policy bundle each tool call was decided under.",
        )
        self._policy_rejections = meter.create_counter(
            "zl.policy.rejections",
            unit="{bundle}",
            description="Policy bundles refused (or fetches failed), by reason.",
        )

    def record_phase(self, phase: Phase, ms: float) -> None:
        """One turn phase took ``ms`` milliseconds."""
        self._phase_ms.record(ms, {"phase": phase.value})

    def record_plan_ms(self, ms: float) -> None:
        self.record_phase(Phase.PLAN, ms)

    def record_act_ms(self, ms: float) -> None:
        self.record_phase(Phase.ACT, ms)

    def record_respond_ms(self, ms: float) -> None:
        self.record_phase(Phase.RESPOND, ms)

    def record_ttft(self, ms: float) -> None:
        """Time to first token of one turn."""
        self._ttft_ms.record(ms)

    def record_tool_call(self, ms: float, *, tool: str, outcome: str) -> None:
        """One tool call ended with ``outcome`` (ok, error, denied, timeout, cancelled)."""
        attributes = {"tool": tool, "outcome": outcome}
        self._tool_call_ms.record(ms, attributes)
        self._tool_calls.add(1, attributes)

    def record_host_to_device_rtt(self, ms: float) -> None:
        """One measured round trip to a device bridge."""
        self._rtt_ms.record(ms)

    def set_relay_queue_depth(self, depth: int, *, shard: str = "0") -> None:
        """The current depth of a relay queue (a gauge: the last value wins)."""
        self._relay_queue.set(depth, {"shard": shard})

    def add_tokens(self, *, input_tokens: int, output_tokens: int) -> None:
        """Tokens one model call used."""
        if input_tokens:
            self._tokens.add(input_tokens, {"direction": "in"})
        if output_tokens:
            self._tokens.add(output_tokens, {"direction": "out"})

    def add_audit_records(self, kind: str, count: int = 1) -> None:
        """Audit records written (``tool.receipt`` counts receipts)."""
        self._receipts.add(count, {"kind": kind})

    def add_redactions(self, counts: Mapping[str, int], *, site: str) -> None:
        """Values of each class redacted at ``site`` (``model``, ``log`` or ``span``)."""
        for kind, count in counts.items():
            if count:
                self._redactions.add(count, {"class": kind, "site": site})

    def record_policy_bundle_age(self, seconds: float) -> None:
        """A tool call was decided under a bundle issued ``seconds`` ago."""
        self._policy_age.record(max(0.0, seconds))

    def add_policy_rejection(self, reason: str) -> None:
        """A bundle was refused, or a fetch failed (``reason``: ``RejectReason`` value)."""
        self._policy_rejections.add(1, {"reason": reason})
