"""One trace across every hop: a turn with a tool call, host → relay → bridge → MCP server,
four processes each exporting OTLP/HTTP protobuf to a real receiver."""

from __future__ import annotations

import json

from actors.telemetry import ATTRIBUTE_KINDS, ID_SHAPES
from tests.host.conftest import kind

from ._support import DEVICE, TENANT, OtlpReceiver, ReceivedSpan, Stack
from .conftest import Chat

HOPS = ("zl-host", "zl-relay", "zl-bridge", "zl-mcp-fs")
SPAN_KIND_SERVER = 2
SPAN_KIND_CLIENT = 3


def _records(stack: Stack, kind_: str) -> list[dict[str, object]]:
    lines = stack.audit.read_text().splitlines()
    return [json.loads(line)["payload"] for line in lines if json.loads(line)["kind"] == kind_]


def _trace(receiver: OtlpReceiver, trace_id: str) -> list[ReceivedSpan]:
    return [span for span in receiver.spans if span.trace_id == trace_id]


class TestOneTrace:
    """The spans of one turn form one tree, parent by parent, across four processes."""

    def test_spans_of_every_hop_form_one_trace(self, stack: Stack, chat: Chat) -> None:
        def complete(receiver: OtlpReceiver) -> bool:
            spans = _trace(receiver, chat.trace_id)
            names = {span.name for span in spans}
            return {s.service for s in spans} >= set(HOPS) and "turn" in names

        stack.otlp.wait_for(complete)
        spans = _trace(stack.otlp, chat.trace_id)
        tool_turn = next(
            s
            for s in spans
            if s.name == "turn"
            and any(c.name == "act" and c.parent_span_id == s.span_id for c in spans)
        )
        by_id = {span.span_id: span for span in spans}

        def child(parent: ReceivedSpan, name: str) -> ReceivedSpan:
            found = [s for s in spans if s.parent_span_id == parent.span_id and s.name == name]
            assert len(found) == 1, (name, [(s.service, s.name) for s in spans])
            return found[0]

        # The caller's traceparent is the turn's parent: the turn is not a root.
        assert tool_turn.parent_span_id
        assert tool_turn.parent_span_id not in by_id
        assert tool_turn.kind == SPAN_KIND_SERVER
        plan, act, respond = (child(tool_turn, name) for name in ("plan", "act", "respond"))
        model = child(plan, "chat mock")
        child(respond, "chat mock")
        tool_call = child(act, "tool_call")
        decide = child(tool_call, "policy.decide")
        relay = child(tool_call, "relay tool.call")
        bridge = child(relay, "bridge tool.call")
        server = child(bridge, "tools/call fs.read")
        services = {span.name: span.service for span in (tool_turn, decide, relay, bridge, server)}
        assert services == {
            "turn": "zl-host",
            "policy.decide": "zl-host",
            "relay tool.call": "zl-relay",
            "bridge tool.call": "zl-bridge",
            "tools/call fs.read": "zl-mcp-fs",
        }
        # GenAI semantic conventions on the model request.
        assert model.kind == SPAN_KIND_CLIENT
        assert model.attributes["gen_ai.operation.name"] == "chat"
        assert model.attributes["gen_ai.provider.name"] == "mock"
        assert model.attributes["gen_ai.request.model"] == "mock"
        assert model.attributes["gen_ai.usage.input_tokens"] > 0
        assert model.attributes["gen_ai.usage.output_tokens"] >= 1
        assert model.attributes["gen_ai.response.finish_reasons"] == ["tool_calls"]
        assert model.attributes["zl.gen_ai.time_to_first_chunk_ms"] >= 0
        assert decide.attributes["zl.policy.decision"] == "allow"
        # Tenant and audit id travel with the trace and name the same receipt at every hop.
        (receipt,) = [
            r
            for r in _records(stack, "tool.receipt")
            if r["call_id"] in tool_call.attributes["zl.tool.call_id"]
        ]
        for span in (tool_call, relay, bridge, server):
            assert span.attributes["zl.tenant"] == TENANT, span
            assert span.attributes["zl.audit.id"] == receipt["receipt_id"], span
        for span in (relay, bridge):
            assert span.attributes["zl.device.id"] == DEVICE
            assert span.attributes["zl.tool.outcome"] == "ok"
        assert server.attributes["mcp.method.name"] == "tools/call"
        # The receipt names the tool call's span; the turn's record names the turn's.
        assert receipt["traceparent"].split("-")[1:3] == [chat.trace_id, tool_call.span_id]
        (record,) = [
            r
            for r in _records(stack, "turn.summary")
            if r["audit_id"] == tool_turn.attributes["zl.audit.id"]
        ]
        assert record["receipt_ids"] == [receipt["receipt_id"]]
        assert record["traceparent"].split("-")[1:3] == [chat.trace_id, tool_turn.span_id]
        assert tool_turn.attributes["zl.tenant"] == TENANT
        # Every attribute any process exported is classified (what the exporter redacts).
        keys = {key for span in spans for key in span.attributes}
        assert keys <= set(ATTRIBUTE_KINDS), keys - set(ATTRIBUTE_KINDS)
        # The host's own ids went out as the host made them, in their shapes.
        for key in ("zl.turn.id", "zl.audit.id"):
            assert ID_SHAPES[key].fullmatch(tool_turn.attributes[key]), key

    def test_the_chat_used_the_tool(self, chat: Chat) -> None:
        delta = next(e.tool_call_delta for e in chat.events if kind(e) == "tool_call_delta")
        assert delta.status == "ok", delta

    def test_metrics_also_leave_by_otlp(self, stack: Stack, chat: Chat) -> None:
        del chat
        wanted = {
            "zl.tool.calls",
            "zl.relay.calls.in_flight",
            "zl.bridge.calls",
            "host_to_device_rtt_ms",
        }
        try:
            stack.otlp.wait_for(lambda receiver: wanted <= receiver.metric_names, 10)
        except TimeoutError:
            raise AssertionError(sorted(wanted - stack.otlp.metric_names)) from None
