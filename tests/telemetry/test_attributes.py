"""Every span attribute is classified, and skipping the scan for the host's ids is safe.

The exporter does not scan a ``HOST_ID`` value that has its key's shape: these tests show
that the host makes its ids in those shapes, that the redactor finds nothing in any value
of those shapes (so skipping the scan changes nothing exported), and that a value of any
other shape under those keys, a secret for instance, is redacted as before.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import actors.telemetry._attributes as attributes_module
from actors.audit import new_receipt_id, new_turn_id
from actors.redaction import RedactionSettings, Redactor
from actors.telemetry import (
    ATTRIBUTE_KINDS,
    ID_SHAPES,
    AttributeKind,
    RedactingSpanExporter,
    Telemetry,
    TelemetryConfig,
)

GITHUB = "ghp_R8kT2mVq9XwL4pZs7NbC1dFh6JyG3aEo5uIt"
EMAIL = "maria.rossi@example-bank.it"
CARD = "4111111111111111"  # Luhn-valid: the redactor takes 16 digits for a card
HOSTILE = [GITHUB, EMAIL, CARD, f"turn {GITHUB}", f"t1 {EMAIL}", f"rcpt {CARD}"]


class Harness:
    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.telemetry = Telemetry.from_config(TelemetryConfig(), span_exporter=self.spans)


@pytest.fixture
def harness() -> Iterator[Harness]:
    h = Harness()
    yield h
    h.telemetry.shutdown()


class TestClassified:
    """A new attribute name cannot be added without saying what it may hold."""

    def test_every_name_defined_is_classified(self) -> None:
        names = {
            value
            for name, value in vars(attributes_module).items()
            if re.fullmatch(r"(ATTR|GEN_AI|MCP)_[A-Z_]+", name)
        }
        assert names, "no attribute names found"
        assert names <= set(ATTRIBUTE_KINDS), names - set(ATTRIBUTE_KINDS)

    def test_names_defined_elsewhere_are_classified(self) -> None:
        from actors.mcp.fs_server._server import _span_attributes
        from actors.relay._host_conn import ATTR_SHARD

        assert ATTR_SHARD in ATTRIBUTE_KINDS
        assert set(_span_attributes({})) <= set(ATTRIBUTE_KINDS)

    def test_the_spans_of_a_turn_carry_only_classified_names(self, harness: Harness) -> None:
        t = harness.telemetry
        with t.turn_span(
            session_id="0123456789abcdef",
            turn_id="t1",
            tenant="acme",
            audit_id=new_turn_id(),
            device_id="d1",
        ):
            with t.plan_span(), t.provider_span(provider="p", model="m", max_tokens=9) as model:
                model.first_chunk()
                model.finish(input_tokens=1, output_tokens=2, finish_reason="tool_calls")
            with (
                t.act_span(),
                t.tool_call_span(
                    tool="fs.read",
                    tool_version="1",
                    call_id="c1",
                    device_id="d1",
                    tenant="acme",
                    audit_id=new_receipt_id(),
                ) as call,
            ):
                with t.policy_span(tool="fs.read", tenant="acme"):
                    pass
                call.set_outcome("error", "tool.failed")
            with pytest.raises(ValueError, match="boom"), t.respond_span():
                raise ValueError("boom")
        spans = harness.spans.get_finished_spans()
        assert len(spans) == 7
        keys = {key for span in spans for key in span.attributes or {}}
        keys |= {key for span in spans for event in span.events for key in event.attributes or {}}
        assert keys <= set(ATTRIBUTE_KINDS), keys - set(ATTRIBUTE_KINDS)

    def test_only_host_ids_have_shapes(self) -> None:
        host_ids = {k for k, kind in ATTRIBUTE_KINDS.items() if kind is AttributeKind.HOST_ID}
        assert set(ID_SHAPES) == host_ids


class TestShapes:
    """The host's ids have their shapes; no value of those shapes holds anything to redact."""

    def test_the_host_makes_its_ids_in_their_shapes(self) -> None:
        for _ in range(200):
            assert ID_SHAPES["zl.audit.id"].fullmatch(new_turn_id())
            assert ID_SHAPES["zl.audit.id"].fullmatch(new_receipt_id())
            session = uuid.uuid4().hex[:16]  # as supervisors.host's chat edge makes it
            # (One in about two thousand is all digits: scanned, as any other value.)
            assert ID_SHAPES["zl.session.id"].fullmatch(session) or session.isdigit()
        for turn in range(1, 1000, 7):
            assert ID_SHAPES["zl.turn.id"].fullmatch(f"t{turn}")  # as actors.session makes it

    @given(st.sampled_from(sorted(ID_SHAPES)), st.data())
    def test_the_redactor_finds_nothing_in_a_value_of_a_shape(
        self, key: str, data: st.DataObject
    ) -> None:
        value = data.draw(st.from_regex(ID_SHAPES[key], fullmatch=True))
        assert Redactor().redact(value).text == value

    @pytest.mark.parametrize(
        "value",
        [
            "411111111111111a",
            "a411111111111111",
            "4111111111111a11",
            "415555267100abcd",
            "turn_" + CARD + CARD,
            "rcpt_" + CARD + "0" * 16,
            "turn_" + "4155552671" * 3 + "ab",
            "rcpt_" + "123456789" * 3 + "12345",
            "t123456789",
        ],
    )
    def test_nor_in_look_alikes_of_a_shape(self, value: str) -> None:
        """Digit runs that pass for cards and phone numbers, inside values of the shapes."""
        assert any(shape.fullmatch(value) for shape in ID_SHAPES.values())
        assert Redactor().redact(value).text == value

    @pytest.mark.parametrize("key", sorted(ID_SHAPES))
    @pytest.mark.parametrize("value", HOSTILE)
    def test_anything_else_under_a_host_id_key_is_redacted(
        self, harness: Harness, key: str, value: str
    ) -> None:
        assert not ID_SHAPES[key].fullmatch(value)
        harness.telemetry.tracer.start_span("s", attributes={key: value}).end()
        (span,) = harness.spans.get_finished_spans()
        assert span.attributes is not None
        exported = span.attributes[key]
        assert GITHUB not in exported
        assert EMAIL not in exported
        assert CARD not in exported
        assert "[REDACTED:" in exported

    @pytest.mark.parametrize(
        "key", sorted(k for k, kind in ATTRIBUTE_KINDS.items() if kind is AttributeKind.NUMBER)
    )
    def test_a_string_under_a_number_key_is_redacted(self, harness: Harness, key: str) -> None:
        harness.telemetry.tracer.start_span("s", attributes={key: f"x {GITHUB}"}).end()
        (span,) = harness.spans.get_finished_spans()
        assert span.attributes is not None
        assert span.attributes[key] == "x [REDACTED:github_token]"

    def test_tenant_patterns_turn_the_shortcut_off(self) -> None:
        settings = RedactionSettings.from_bundle(
            {"patterns": [{"name": "project", "pattern": "turn_[0-9a-f]{4}"}]}
        )
        spans = InMemorySpanExporter()
        exporter = RedactingSpanExporter(spans, Redactor(settings))
        telemetry = Telemetry.from_config(TelemetryConfig(), span_exporter=InMemorySpanExporter())
        try:
            audit = new_turn_id()
            span = telemetry.tracer.start_span("s", attributes={"zl.audit.id": audit})
            span.end()
            exporter.export([span])  # type: ignore[list-item]
            (cleaned,) = spans.get_finished_spans()
            assert cleaned.attributes is not None
            assert cleaned.attributes["zl.audit.id"] != audit
            assert exporter.shaped == 0
        finally:
            telemetry.shutdown()


class TestExporterWork:
    """What the exporter does per span: nothing copied when nothing changed, repeats cached."""

    def test_a_clean_span_goes_out_as_it_was(self) -> None:
        spans = InMemorySpanExporter()
        exporter = RedactingSpanExporter(spans, Redactor())
        telemetry = Telemetry.from_config(TelemetryConfig(), span_exporter=InMemorySpanExporter())
        try:
            with telemetry.turn_span(
                session_id="0123456789abcdef", turn_id="t1", tenant="acme", audit_id=new_turn_id()
            ) as turn:
                pass
            exporter.export([turn])  # type: ignore[list-item]
            (out,) = spans.get_finished_spans()
            assert out is turn
        finally:
            telemetry.shutdown()

    def test_repeated_values_are_scanned_once_and_host_ids_never(self) -> None:
        spans = InMemorySpanExporter()
        exporter = RedactingSpanExporter(spans, Redactor())
        telemetry = Telemetry.from_config(TelemetryConfig(), span_exporter=InMemorySpanExporter())
        try:
            made = []
            for n in range(1, 11):
                with telemetry.turn_span(
                    session_id="0123456789abcdef",
                    turn_id=f"t{n}",
                    tenant="acme",
                    audit_id=new_turn_id(),
                    device_id="laptop-7",
                ) as turn:
                    pass
                made.append(turn)
            exporter.export(made)
            # Scanned once each: the name "turn", the tenant and the device.
            assert exporter.scanned == 3
            assert exporter.cached == 27
            assert exporter.shaped == 30  # session, turn and audit ids of ten turns
        finally:
            telemetry.shutdown()

    def test_secrets_anywhere_in_a_span_are_redacted(self) -> None:
        spans = InMemorySpanExporter()
        exporter = RedactingSpanExporter(spans, Redactor())
        telemetry = Telemetry.from_config(TelemetryConfig(), span_exporter=InMemorySpanExporter())
        try:
            from opentelemetry.trace import Link, SpanContext, Status, StatusCode, TraceFlags

            link = Link(SpanContext(1, 2, True, TraceFlags(1)), {"why": f"from {EMAIL}"})
            span = telemetry.tracer.start_span(f"read {EMAIL}", links=[link])
            span.set_attribute("zl.tool.call_id", f"s.t1.{GITHUB}")
            span.set_attribute("zl.tool.outcome", ("ok", GITHUB))  # type: ignore[arg-type]
            span.set_status(Status(StatusCode.ERROR, f"denied for {EMAIL}"))
            span.end()
            exporter.export([span])  # type: ignore[list-item]
            (out,) = spans.get_finished_spans()
            dumped = out.to_json()
            assert GITHUB not in dumped
            assert EMAIL not in dumped
            assert out.name == "read [REDACTED:email]"
            assert out.status.description == "denied for [REDACTED:email]"
            assert out.links[0].attributes == {"why": "from [REDACTED:email]"}
        finally:
            telemetry.shutdown()
