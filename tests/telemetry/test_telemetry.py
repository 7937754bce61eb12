"""Trace context, spans and metrics, exported to the SDK's in-memory exporter and reader."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import trio
import trio.lowlevel
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import actors.telemetry
from actors.telemetry import (
    Exporter,
    Phase,
    Telemetry,
    TelemetryConfig,
    TelemetryConfigError,
    TraceParent,
    context_with_traceparent,
    format_traceparent,
    new_traceparent,
    parse_traceparent,
    traceparent_of,
)

W3C_EXAMPLE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


class Harness:
    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.reader = InMemoryMetricReader()
        self.telemetry = Telemetry.from_config(
            TelemetryConfig(service_name="zl-test"),
            span_exporter=self.spans,
            metric_readers=[self.reader],
        )

    def finished(self) -> dict[str, ReadableSpan]:
        return {span.name: span for span in self.spans.get_finished_spans()}

    def points(self, metric: str) -> list[Any]:
        self.telemetry.metrics.flush()  # the per-turn counters are tallied first
        data = self.reader.get_metrics_data()
        assert data is not None
        found: list[Any] = []
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for item in scope.metrics:
                    if item.name == metric:
                        found.extend(item.data.data_points)
        return found


@pytest.fixture
def harness() -> Iterator[Harness]:
    h = Harness()
    yield h
    h.telemetry.shutdown()


class TestTraceparent:
    """W3C traceparent parse/format rules and round trips."""

    def test_w3c_example(self) -> None:
        parsed = parse_traceparent(W3C_EXAMPLE)
        assert parsed == TraceParent(
            trace_id="4bf92f3577b34da6a3ce929d0e0e4736", span_id="00f067aa0ba902b7", flags=1
        )
        assert parsed.sampled
        assert format_traceparent(parsed) == W3C_EXAMPLE == str(parsed)

    @pytest.mark.parametrize(
        "header",
        [
            None,
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "zz-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ],
    )
    def test_invalid_is_ignored(self, header: str | None) -> None:
        assert parse_traceparent(header) is None

    def test_future_version_is_read_by_its_first_fields(self) -> None:
        parsed = parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-more")
        assert parsed is not None
        assert not parsed.sampled
        assert str(parsed).startswith("00-4bf92f")

    @given(
        st.from_regex(r"\A[0-9a-f]{32}\Z").filter(lambda s: s != "0" * 32),
        st.from_regex(r"\A[0-9a-f]{16}\Z").filter(lambda s: s != "0" * 16),
        st.integers(0, 255),
    )
    def test_round_trip(self, trace_id: str, span_id: str, flags: int) -> None:
        value = TraceParent(trace_id=trace_id, span_id=span_id, flags=flags)
        assert parse_traceparent(format_traceparent(value)) == value

    def test_context_round_trip(self) -> None:
        value = new_traceparent()
        context = context_with_traceparent(str(value))
        span = trace.get_current_span(context)
        assert span.get_span_context().is_remote
        assert traceparent_of(span) == str(value)
        assert traceparent_of() is None  # no current span here


class TestSpans:
    """Spans nest, carry attributes and continue the caller's trace."""

    def test_turn_phases_and_tool_call_nest(self, harness: Harness) -> None:
        t = harness.telemetry
        with t.turn_span(session_id="s1", turn_id="t1", tenant="acme", traceparent=W3C_EXAMPLE):
            with t.plan_span():
                pass
            with (
                t.act_span(),
                t.tool_call_span(
                    tool="fs.read", tool_version="1.0.0", call_id="c1", device_id="d1"
                ) as call,
            ):
                sent = call.traceparent
            with t.respond_span():
                pass
        spans = harness.finished()
        assert set(spans) == {"turn", "plan", "act", "respond", "tool_call"}
        turn = spans["turn"]
        assert turn.context is not None
        assert turn.parent is not None
        assert f"{turn.context.trace_id:032x}" == "4bf92f3577b34da6a3ce929d0e0e4736"
        assert turn.parent.span_id == 0x00F067AA0BA902B7
        assert turn.parent.is_remote
        for phase in ("plan", "act", "respond"):
            parent = spans[phase].parent
            assert parent is not None
            assert parent.span_id == turn.context.span_id
        tool = spans["tool_call"]
        assert tool.parent is not None
        assert spans["act"].context is not None
        assert tool.parent.span_id == spans["act"].context.span_id
        assert tool.attributes is not None
        assert dict(tool.attributes) == {
            "zl.tool.name": "fs.read",
            "zl.tool.version": "1.0.0",
            "zl.tool.call_id": "c1",
            "zl.device.id": "d1",
            "zl.tool.outcome": "ok",
        }
        assert turn.attributes is not None
        assert turn.attributes["zl.session.id"] == "s1"
        assert tool.context is not None
        assert sent == f"00-{tool.context.trace_id:032x}-{tool.context.span_id:016x}-01"
        assert harness.telemetry.tracer is not None

    def test_tool_outcomes(self, harness: Harness) -> None:
        t = harness.telemetry
        with t.tool_call_span(tool="fs.read", tool_version="1", call_id="a") as call:
            call.set_outcome("timeout", "tool.timeout")
        with (
            pytest.raises(RuntimeError),
            t.tool_call_span(tool="fs.read", tool_version="1", call_id="b"),
        ):
            raise RuntimeError("boom")
        spans = {
            s.attributes["zl.tool.call_id"]: s
            for s in harness.spans.get_finished_spans()
            if s.attributes
        }
        assert spans["a"].status.status_code is StatusCode.ERROR
        assert spans["a"].attributes is not None
        assert spans["a"].attributes["zl.error.code"] == "tool.timeout"
        assert spans["b"].attributes is not None
        assert spans["b"].attributes["zl.tool.outcome"] == "error"
        assert spans["b"].events[0].name == "exception"
        outcomes = {p.attributes["outcome"]: p.value for p in harness.points("zl.tool.calls")}
        assert outcomes == {"timeout": 1, "error": 1}

    async def test_cancelled_tool_call_under_trio(self, harness: Harness) -> None:
        t = harness.telemetry
        with trio.move_on_after(0.01):
            with t.tool_call_span(tool="fs.read", tool_version="1", call_id="c"):
                await trio.sleep_forever()
        (span,) = harness.spans.get_finished_spans()
        assert span.attributes is not None
        assert span.attributes["zl.tool.outcome"] == "cancelled"
        assert [p.attributes["outcome"] for p in harness.points("zl.tool.calls")] == ["cancelled"]

    async def test_child_tasks_inherit_the_span(self, harness: Harness) -> None:
        t = harness.telemetry

        async def child(n: int) -> None:
            with t.tool_call_span(tool="fs.read", tool_version="1", call_id=f"c{n}"):
                await trio.lowlevel.checkpoint()

        with t.turn_span(session_id="s", turn_id="t", tenant="x"):
            async with trio.open_nursery() as nursery:
                for n in range(3):
                    nursery.start_soon(child, n)
        spans = harness.spans.get_finished_spans()
        turn = next(s for s in spans if s.name == "turn")
        children = [s for s in spans if s.name == "tool_call"]
        assert len(children) == 3
        assert turn.context is not None
        assert all(
            s.parent is not None and s.parent.span_id == turn.context.span_id for s in children
        )


class TestMetrics:
    """Each seed metric is recorded with its attributes."""

    def test_all_metrics(self, harness: Harness) -> None:
        m = harness.telemetry.metrics
        m.record_plan_ms(120)
        m.record_act_ms(30)
        m.record_respond_ms(200)
        m.record_ttft(350)
        m.record_ttft(450)
        m.record_tool_call(12.5, tool="fs.read", outcome="ok")
        m.record_host_to_device_rtt(40)
        m.set_relay_queue_depth(7, shard="2")
        m.set_relay_queue_depth(3, shard="2")
        m.add_tokens(input_tokens=100, output_tokens=20)
        m.add_audit_records("tool.receipt")
        m.add_audit_records("tool.receipt")
        phases = {p.attributes["phase"]: p.sum for p in harness.points("zl.turn.phase.duration")}
        assert phases == {"plan": 120, "act": 30, "respond": 200}
        (ttft,) = harness.points("zl.turn.time_to_first_token")
        assert (ttft.count, ttft.sum, ttft.min, ttft.max) == (2, 800, 350, 450)
        (rtt,) = harness.points("host_to_device_rtt_ms")
        assert rtt.sum == 40
        (depth,) = harness.points("zl.relay.queue.depth")
        assert depth.value == 3
        assert depth.attributes == {"shard": "2"}
        tokens = {p.attributes["direction"]: p.value for p in harness.points("zl.tokens")}
        assert tokens == {"in": 100, "out": 20}
        (receipts,) = harness.points("zl.audit.records")
        assert receipts.value == 2
        (tool_ms,) = harness.points("zl.tool.call.duration")
        assert tool_ms.attributes == {"tool": "fs.read", "outcome": "ok"}

    def test_phase_span_records_its_latency(self, harness: Harness) -> None:
        with harness.telemetry.phase_span(Phase.RESPOND):
            pass
        (point,) = harness.points("zl.turn.phase.duration")
        assert point.attributes == {"phase": "respond"}
        assert point.count == 1


class TestConfig:
    """Exporters by name; OTLP without its package is a clear error."""

    def test_otlp_without_package(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import sys

        # As if the (optional) exporter package were not installed.
        monkeypatch.setitem(
            sys.modules, "opentelemetry.exporter.otlp.proto.http.metric_exporter", None
        )
        with pytest.raises(TelemetryConfigError, match="opentelemetry-exporter-otlp"):
            Telemetry.from_config(TelemetryConfig(exporter="otlp"))

    def test_unknown_exporter(self) -> None:
        with pytest.raises(ValueError, match="zipkin"):
            TelemetryConfig(exporter="zipkin")

    async def test_console_exporter(self, capsys: pytest.CaptureFixture[str]) -> None:
        telemetry = Telemetry.from_config(
            TelemetryConfig(service_name="zl-console", exporter=Exporter.CONSOLE)
        )
        with telemetry.turn_span(session_id="s", turn_id="t", tenant="x"):
            pass
        await telemetry.aclose()
        out = capsys.readouterr().out
        assert '"name": "turn"' in out
        assert "zl-console" in out

    def test_exports(self) -> None:
        for name in actors.telemetry.__all__:
            assert getattr(actors.telemetry, name) is not None


class TestOtlpEncoding:
    """The hand-written OTLP span encoding decodes with the official protobuf classes."""

    def test_round_trip(self, harness: Harness) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        from actors.telemetry._otlp import encode_spans

        telemetry = harness.telemetry
        parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        with telemetry.turn_span(session_id="s", turn_id="t", tenant="acme", traceparent=parent):
            with telemetry.provider_span(provider="mock", model="m1", max_tokens=7) as scope:
                scope.first_chunk()
                scope.finish(input_tokens=3, output_tokens=5, finish_reason="stop")
            with pytest.raises(ValueError, match="boom"), telemetry.hop_span("h", traceparent=None):
                raise ValueError("boom")
        spans = harness.spans.get_finished_spans()
        request = ExportTraceServiceRequest.FromString(encode_spans(spans))
        (resource,) = request.resource_spans
        service = {kv.key: kv.value.string_value for kv in resource.resource.attributes}
        assert service["service.name"] == "zl-test"
        decoded = {span.name: span for scope in resource.scope_spans for span in scope.spans}
        assert set(decoded) == {span.name for span in spans}
        for original in spans:
            span = decoded[original.name]
            assert span.trace_id.hex() == f"{original.context.trace_id:032x}"
            assert span.span_id.hex() == f"{original.context.span_id:016x}"
            assert span.start_time_unix_nano == original.start_time
            assert span.end_time_unix_nano == original.end_time
            values = {}
            for kv in span.attributes:
                which = kv.value.WhichOneof("value")
                value = getattr(kv.value, which)
                values[kv.key] = (
                    [v.string_value for v in value.values] if which == "array_value" else value
                )
            assert values == {
                k: list(v) if isinstance(v, tuple) else v for k, v in original.attributes.items()
            }
        turn, chat = decoded["turn"], decoded["chat m1"]
        assert turn.parent_span_id.hex() == "00f067aa0ba902b7"
        assert chat.parent_span_id == turn.span_id
        assert chat.kind == 3  # CLIENT
        assert decoded["h"].status.code == 2  # ERROR
        assert decoded["h"].events[0].name == "exception"
