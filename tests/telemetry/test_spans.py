"""``LeanTracer`` and ``LeanSpan`` behave as the SDK's tracer and span do, where we use them.

Each case runs the same calls on the SDK's ``TracerProvider`` and on ``LeanTracer`` and
compares what the processors are handed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SynchronousMultiSpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, DEFAULT_ON, Sampler, TraceIdRatioBased
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)

from actors.telemetry import Exporter, Telemetry, TelemetryConfig, context_with_traceparent
from actors.telemetry._spans import MAX_ATTRIBUTES, LeanSpan, LeanTracer

RESOURCE = Resource.create({"service.name": "zl-test"})
SCOPE = "zero_latency"


class Pair:
    """An SDK tracer and a lean one with the same sampler, each with its own exporter."""

    def __init__(self, sampler: Sampler = DEFAULT_ON) -> None:
        self.sdk_spans = InMemorySpanExporter()
        self.lean_spans = InMemorySpanExporter()
        provider = TracerProvider(resource=RESOURCE, sampler=sampler, shutdown_on_exit=False)
        provider.add_span_processor(SimpleSpanProcessor(self.sdk_spans))
        self.sdk = provider.get_tracer(SCOPE)
        processors = SynchronousMultiSpanProcessor()  # type: ignore[no-untyped-call]
        processors.add_span_processor(SimpleSpanProcessor(self.lean_spans))
        self.lean = LeanTracer(
            processors, resource=RESOURCE, scope=InstrumentationScope(SCOPE), sampler=sampler
        )

    def both(self, calls: Callable[[trace.Tracer], None]) -> tuple[ReadableSpan, ReadableSpan]:
        calls(self.sdk)
        calls(self.lean)
        (sdk,) = self.sdk_spans.get_finished_spans()
        (lean,) = self.lean_spans.get_finished_spans()
        return sdk, lean


def view(span: ReadableSpan) -> dict[str, Any]:
    """What an exporter reads of a span, ids aside (they are random)."""
    assert span.context is not None
    return {
        "name": span.name,
        "kind": span.kind,
        "parent": None if span.parent is None else (span.parent.span_id, span.parent.is_remote),
        "flags": int(span.context.trace_flags),
        "state": span.context.trace_state.to_header(),
        "attributes": dict(span.attributes or {}),
        "events": [(e.name, dict(e.attributes or {})) for e in span.events],
        "links": [(link.context.span_id, dict(link.attributes or {})) for link in span.links],
        "status": (span.status.status_code, span.status.description),
        "resource": dict(span.resource.attributes),
        "scope": span.instrumentation_scope.name if span.instrumentation_scope else None,
        "timed": span.start_time is not None and span.end_time is not None,
    }


@pytest.fixture
def pair() -> Pair:
    return Pair()


def remote(flags: int, state: str = "") -> Context:
    parent = SpanContext(
        trace_id=0x4BF92F3577B34DA6A3CE929D0E0E4736,
        span_id=0x00F067AA0BA902B7,
        is_remote=True,
        trace_flags=TraceFlags(flags),
        trace_state=TraceState.from_header([state]) if state else TraceState(),
    )
    return trace.set_span_in_context(NonRecordingSpan(parent))


class TestAsTheSdk:
    """The same calls give the same span to the processors."""

    def test_attributes_events_links_status(self, pair: Pair) -> None:
        link = SpanContext(0x1, 0x2, is_remote=True, trace_flags=TraceFlags(1))

        def calls(tracer: trace.Tracer) -> None:
            span = tracer.start_span(
                "work",
                kind=SpanKind.CLIENT,
                attributes={"a": "x", "n": 3, "f": 0.5, "b": True, "list": ["p", "q"]},
                links=[trace.Link(link, {"why": "retry"}), trace.Link(trace.INVALID_SPAN_CONTEXT)],
            )
            span.set_attribute("later", 7)
            span.set_attributes({"more": "y", "seq": (1, 2)})
            span.add_event("step", {"at": "phase"})
            span.record_exception(ValueError("bad"), attributes={"extra": 1})
            span.set_status(Status(StatusCode.ERROR, "failed"))
            span.set_status(StatusCode.UNSET)  # ignored
            span.update_name("work done")
            span.end()

        sdk, lean = pair.both(calls)
        sdk_view, lean_view = view(sdk), view(lean)
        for one in (sdk_view, lean_view):
            for _name, attributes in one["events"]:
                attributes.pop("exception.stacktrace", None)  # line numbers differ
        assert lean_view == sdk_view
        assert lean.attributes is not None
        assert lean.attributes["list"] == ("p", "q")
        assert isinstance(lean, LeanSpan)

    @pytest.mark.parametrize(
        "parent",
        [None, "remote sampled", "remote not sampled", "remote random", "remote state"],
    )
    def test_sampling_and_flags_follow_the_parent(self, pair: Pair, parent: str | None) -> None:
        context = {
            None: None,
            "remote sampled": remote(0x01),
            "remote not sampled": remote(0x00),
            "remote random": remote(0x03),
            "remote state": remote(0x01, "vendor=abc"),
        }[parent]
        sdk = pair.sdk.start_span("s", context=context)
        lean = pair.lean.start_span("s", context=context)
        assert lean.is_recording() == sdk.is_recording()
        assert type(lean) is LeanSpan if sdk.is_recording() else type(lean) is NonRecordingSpan
        sdk_context, lean_context = sdk.get_span_context(), lean.get_span_context()
        assert int(lean_context.trace_flags) == int(sdk_context.trace_flags)
        assert lean_context.trace_state == sdk_context.trace_state
        if context is not None:
            assert lean_context.trace_id == sdk_context.trace_id
        assert lean_context.is_valid
        assert lean_context.span_id != sdk_context.span_id
        sdk.end()
        lean.end()

    def test_local_parent_from_the_context(self, pair: Pair) -> None:
        for tracer, spans in ((pair.sdk, pair.sdk_spans), (pair.lean, pair.lean_spans)):
            with (
                tracer.start_as_current_span("outer") as outer,
                tracer.start_as_current_span("inner"),
            ):
                pass
            inner = next(s for s in spans.get_finished_spans() if s.name == "inner")
            assert inner.parent is not None
            assert inner.parent.span_id == outer.get_span_context().span_id
            assert not inner.parent.is_remote

    @pytest.mark.parametrize("sampler", [ALWAYS_OFF, TraceIdRatioBased(0.0)])
    def test_samplers_that_record_nothing(self, sampler: Sampler) -> None:
        pair = Pair(sampler)
        span = pair.lean.start_span("s")
        assert not span.is_recording()
        assert span.get_span_context().is_valid  # still a context for traceparent
        assert not span.get_span_context().trace_flags.sampled
        span.end()
        assert pair.lean_spans.get_finished_spans() == ()

    def test_a_sampler_of_the_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("OTEL_TRACES_SAMPLER", "traceidratio")
        monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0")
        exporter = InMemorySpanExporter()
        telemetry = Telemetry.from_config(TelemetryConfig(), span_exporter=exporter)
        try:
            with telemetry.turn_span(session_id="s", turn_id="t1", tenant="x"):
                pass
            assert exporter.get_finished_spans() == ()
        finally:
            telemetry.shutdown()

    def test_used_as_a_context_manager_it_records_the_error(self, pair: Pair) -> None:
        def calls(tracer: trace.Tracer) -> None:
            with pytest.raises(KeyError), tracer.start_span("s"):
                raise KeyError("k")

        sdk, lean = pair.both(calls)
        assert lean.status.status_code is StatusCode.ERROR
        assert lean.status.description == sdk.status.description
        assert [e.name for e in lean.events] == [e.name for e in sdk.events] == ["exception"]
        assert lean.events[0].attributes == {
            **(sdk.events[0].attributes or {}),
            "exception.stacktrace": (lean.events[0].attributes or {})["exception.stacktrace"],
        }

    def test_ok_is_final(self, pair: Pair) -> None:
        def calls(tracer: trace.Tracer) -> None:
            span = tracer.start_span("s")
            span.set_status(StatusCode.OK)
            span.set_status(Status(StatusCode.ERROR, "late"))
            span.end()

        sdk, lean = pair.both(calls)
        assert lean.status.status_code is sdk.status.status_code is StatusCode.OK


class TestLimits:
    """Bounded as the SDK's defaults; an ended span takes no more writes."""

    def test_attributes_keep_the_newest(self, pair: Pair) -> None:
        def calls(tracer: trace.Tracer) -> None:
            span = tracer.start_span("s")
            for n in range(MAX_ATTRIBUTES + 5):
                span.set_attribute(f"k{n}", n)
            span.end()

        sdk, lean = pair.both(calls)
        assert dict(lean.attributes or {}) == dict(sdk.attributes or {})
        assert len(lean.attributes or {}) == MAX_ATTRIBUTES

    def test_an_ended_span_is_read_only(self, pair: Pair, caplog: pytest.LogCaptureFixture) -> None:
        span = pair.lean.start_span("s", attributes={"a": 1})
        span.end()
        with caplog.at_level(logging.WARNING, logger="zl.telemetry"):
            span.set_attribute("b", 2)
            span.set_attributes({"c": 3})
            span.add_event("e")
            span.set_status(StatusCode.ERROR)
            span.update_name("other")
            span.end()
        (ended,) = pair.lean_spans.get_finished_spans()
        assert dict(ended.attributes or {}) == {"a": 1}
        assert ended.events == ()
        assert ended.name == "s"
        assert ended.status.status_code is StatusCode.UNSET
        assert len(caplog.records) == 6

    def test_values_are_cleaned_as_the_sdk_cleans_them(self, pair: Pair) -> None:
        class Named:
            def __str__(self) -> str:
                return "named"

        def calls(tracer: trace.Tracer) -> None:
            span = tracer.start_span("s")
            span.set_attribute("list", ["a", "b"])  # a list becomes a tuple
            span.set_attribute("object", Named())  # type: ignore[arg-type]
            span.end()

        sdk, lean = pair.both(calls)
        assert dict(lean.attributes or {}) == dict(sdk.attributes or {})


class TestInTelemetry:
    """``Telemetry`` makes lean spans, recording only when something exports them."""

    def test_recording_and_not(self) -> None:
        exporter = InMemorySpanExporter()
        on = Telemetry.from_config(TelemetryConfig(), span_exporter=exporter)
        off = Telemetry.from_config(TelemetryConfig(exporter=Exporter.NONE))
        try:
            parent = context_with_traceparent(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            )
            recorded = on.tracer.start_span("x", context=parent)
            assert isinstance(recorded, LeanSpan)
            recorded.end()
            quiet = off.tracer.start_span("x", context=parent)
            assert not quiet.is_recording()
            assert quiet.get_span_context().trace_id == 0x4BF92F3577B34DA6A3CE929D0E0E4736
            assert not quiet.get_span_context().trace_flags.sampled  # as ALWAYS_OFF marks it
            (span,) = exporter.get_finished_spans()
            assert span.resource.attributes["service.name"] == "zl-host"
        finally:
            on.shutdown()
            off.shutdown()
