"""The metrics the seed asks for, as typed methods over one OpenTelemetry meter.

Names follow OpenTelemetry's style (``zl.`` prefix, unit in ``unit``); the seed's
``host_to_device_rtt_ms`` keeps its name. Attributes are low-cardinality only (phase,
tool, outcome, direction, kind): never a session, call or device id, which belong on spans.
"""

from __future__ import annotations

import collections
import enum
from collections.abc import Mapping

from opentelemetry.metrics import Meter

# Histogram buckets in milliseconds: fine below 10 ms (the bridge overhead target is
# p95 ≤ 100 ms, the gateway's ≤ 2 ms), coarse up to a minute (a slow turn).
MS_BUCKETS: tuple[float, ...] = (
    0.5, 1, 2, 5, 10, 25, 50, 75, 100, 150, 250, 500, 800, 1000, 2500, 5000, 10000, 30000, 60000,
)  # fmt: skip


# The GenAI semantic conventions' advisory buckets for time to first chunk, in seconds.
GEN_AI_S_BUCKETS: tuple[float, ...] = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip


class Phase(enum.StrEnum):
    """The phases of a turn whose latencies are measured."""

    PLAN = "plan"  # the model thinking until it answers or asks for a tool
    ACT = "act"  # the tool call, host side, from decision to result
    RESPOND = "respond"  # the model's answer after the tool result


# (Made once: the SDK copies what it is given.)
_PHASE_ATTRIBUTES = {phase: {"phase": phase.value} for phase in Phase}


class Metrics:
    """Record the host's figures. Every method is cheap and never raises for export trouble.

    Args:
        meter: where the instruments are made (one ``Telemetry`` makes one).
    """

    def __init__(self, meter: Meter) -> None:
        self._tally: collections.Counter[tuple[str, str]] = collections.Counter()
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
        # The roadmap's own name, unit included: no unit field, so that every route to
        # Prometheus (our /metrics, a Collector) keeps the name as it is.
        self._rtt_ms = meter.create_histogram(
            "host_to_device_rtt_ms",
            unit="",
            description="Round trip host → relay → device bridge → back (ping or call).",
            explicit_bucket_boundaries_advisory=MS_BUCKETS,
        )
        self._relay_queue = meter.create_gauge(
            "zl.relay.queue.depth",
            unit="{call}",
            description="Calls waiting in a relay queue (in flight to a device).",
        )
        # -- process state, sampled (see TelemetrySampler) and traced hops ---------------------
        self._relay_in_flight = meter.create_gauge(
            "zl.relay.calls.in_flight",
            unit="{call}",
            description="Tool calls a relay shard has routed to devices and not yet answered.",
        )
        self._relay_devices = meter.create_gauge(
            "zl.relay.devices.connected",
            unit="{device}",
            description="Device bridges connected to a relay shard.",
        )
        self._sessions = meter.create_gauge(
            "zl.sessions.active", unit="{session}", description="StreamChat sessions open now."
        )
        self._mailbox = meter.create_gauge(
            "zl.actor.mailbox.depth",
            unit="{message}",
            description="Deepest mailbox among the actors of one type (the busiest types only).",
        )
        self._breaker = meter.create_gauge(
            "zl.provider.breaker.state",
            unit="1",
            description="Circuit breaker of an LLM upstream: 0 closed, 1 half-open, 2 open.",
        )
        self._errors = meter.create_counter(
            "zl.errors", unit="{error}", description="Typed errors sent to clients, by code."
        )
        self._first_chunk_s = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk",
            unit="s",
            description="From the model request to its first streamed chunk (GenAI conventions).",
            explicit_bucket_boundaries_advisory=GEN_AI_S_BUCKETS,
        )
        self._audit_spool = meter.create_gauge(
            "zl.audit.export.pending",
            unit="{record}",
            description="Audit records written but not yet accepted by the collector (the spool).",
        )
        self._audit_spool_bytes = meter.create_gauge(
            "zl.audit.export.pending_bytes",
            unit="By",
            description="Bytes of the audit file not yet accepted by the collector.",
        )
        self._audit_exported = meter.create_counter(
            "zl.audit.export.records",
            unit="{record}",
            description="Audit records the collector accepted.",
        )
        self._dropped = meter.create_counter(
            "zl.telemetry.dropped",
            unit="{item}",
            description="Spans dropped because the export queue was full or the export failed.",
        )
        self._bridge_calls = meter.create_counter(
            "zl.bridge.calls",
            unit="{call}",
            description="Tool calls a device bridge ran, by outcome (ok or an error code).",
        )
        self._bridge_in_flight = meter.create_gauge(
            "zl.bridge.calls.in_flight", unit="{call}", description="Calls a bridge runs now."
        )
        self._bridge_connected = meter.create_gauge(
            "zl.bridge.connected",
            unit="1",
            description="Whether the bridge holds a connection to its relay (1) or not (0).",
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
        self._phase_ms.record(ms, _PHASE_ATTRIBUTES[phase])

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

    def set_relay_in_flight(self, calls: int, *, shard: str) -> None:
        """Calls a relay shard has sent to devices and not yet answered."""
        self._relay_in_flight.set(calls, {"shard": shard})

    def set_relay_devices(self, devices: int, *, shard: str) -> None:
        """Device bridges connected to a relay shard now."""
        self._relay_devices.set(devices, {"shard": shard})

    def set_active_sessions(self, sessions: int) -> None:
        """StreamChat sessions open now."""
        self._sessions.set(sessions)

    def set_mailbox_depth(self, depth: int, *, actor: str) -> None:
        """The deepest mailbox of actors of type ``actor`` (a class name, never an id)."""
        self._mailbox.set(depth, {"actor": actor})

    def set_breaker_state(self, state: int, *, upstream: str) -> None:
        """An upstream's circuit breaker: 0 closed, 1 half-open, 2 open."""
        self._breaker.set(state, {"upstream": upstream})

    def add_error(self, code: str) -> None:
        """One typed error sent to a client (``code`` from the error catalog)."""
        self._errors.add(1, {"code": code})

    def record_time_to_first_chunk(self, seconds: float, *, provider: str, model: str) -> None:
        """The model's first streamed chunk came ``seconds`` after its request."""
        self._first_chunk_s.record(
            seconds, {"gen_ai.provider.name": provider, "gen_ai.request.model": model}
        )

    def set_audit_pending(self, records: int, size_bytes: int) -> None:
        """Audit records (and bytes) not yet accepted by the collector."""
        self._audit_spool.set(records)
        self._audit_spool_bytes.set(size_bytes)

    def add_audit_exported(self, count: int) -> None:
        """Audit records the collector accepted."""
        self._audit_exported.add(count)

    def add_dropped(self, count: int, *, signal: str, reason: str) -> None:
        """Telemetry items dropped (``signal`` spans or metrics; ``reason`` queue_full or
        export_failed)."""
        self._dropped.add(count, {"signal": signal, "reason": reason})

    def record_bridge_call(self, *, outcome: str) -> None:
        """A device bridge finished one call (``ok`` or the error's catalog code)."""
        self._bridge_calls.add(1, {"outcome": outcome})

    def set_bridge_state(self, *, connected: bool, calls_in_flight: int) -> None:
        """The bridge's link to its relay and the calls it runs now."""
        self._bridge_connected.set(1 if connected else 0)
        self._bridge_in_flight.set(calls_in_flight)

    def add_tokens(self, *, input_tokens: int, output_tokens: int) -> None:
        """Tokens one model call used (tallied; see ``flush``)."""
        self._tally[("in", "")] += input_tokens
        self._tally[("out", "")] += output_tokens

    def add_audit_records(self, kind: str, count: int = 1) -> None:
        """Audit records written (``tool.receipt`` counts receipts; tallied, see ``flush``)."""
        self._tally[("audit", kind)] += count

    def flush(self) -> None:
        """Hand the tallied counts to their counters.

        The per-turn counters (tokens, audit records) are summed here first and flushed by
        the sampler every few seconds and before every scrape: one SDK measurement per
        flush instead of several per turn, which the hot path would pay for.
        """
        tally, self._tally = self._tally, collections.Counter()
        for (name, kind), count in tally.items():
            if not count:
                continue
            if name == "audit":
                self._receipts.add(count, {"kind": kind})
            else:
                self._tokens.add(count, {"direction": name})

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
