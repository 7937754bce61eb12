"""A tool turn leaves its spans and metrics: turn → tool_call, TTFT, tool outcomes, tokens."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import trio
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from actors.telemetry import Telemetry, TelemetryConfig
from supervisors.host import AuditSection, HostAddresses, ToolsSection, run_host
from tests._policy import bearer, caller_token, with_metadata
from tests.host.conftest import Conversation, host_config, in_thread, kind, say, start_request


def metric_points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    points: dict[str, list[Any]] = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                points.setdefault(metric.name, []).extend(metric.data.data_points)
    return points


class TestHostTelemetry:
    """Spans nest and carry ids; the seed's metrics are recorded."""

    async def test_tool_turn_spans_and_metrics(self, tmp_path: Path) -> None:
        root = tmp_path / "root"
        root.mkdir()
        (root / "notes.txt").write_text("traced\n")
        spans = InMemorySpanExporter()
        reader = InMemoryMetricReader()
        telemetry = Telemetry.from_config(
            TelemetryConfig(service_name="zl-host-test"),
            span_exporter=spans,
            metric_readers=[reader],
        )
        config = host_config(
            tmp_path,
            tls=False,
            tools=ToolsSection(mode="stdio", roots=[str(root)]),
            audit=AuditSection(path=str(tmp_path / "audit.jsonl")),
        )
        async with trio.open_nursery() as nursery:
            shutdown = trio.Event()
            addresses: HostAddresses = await nursery.start(
                lambda task_status: run_host(
                    config, shutdown=shutdown, telemetry=telemetry, task_status=task_status
                )
            )

            with with_metadata(
                grpc.insecure_channel(f"127.0.0.1:{addresses.grpc_port}"), bearer(caller_token())
            ) as channel:
                talk = Conversation(channel)
                talk.send(start_request())
                await in_thread(talk.next_event)
                talk.send(say("read notes.txt"))
                await in_thread(lambda: talk.until(lambda e: kind(e) == "assistant_done"))
                talk.close()
                await in_thread(talk.rest)
            shutdown.set()
        finished = {span.name: span for span in spans.get_finished_spans()}
        turn, call = finished["turn"], finished["tool_call"]
        act, plan, respond = finished["act"], finished["plan"], finished["respond"]
        # turn ─┬─ plan ── chat mock
        #       ├─ act ─┬─ tool_call
        #       │       (policy.decide under tool_call)
        #       └─ respond ── chat mock
        for phase in (act, plan, respond):
            assert phase.parent is not None
            assert phase.parent.span_id == turn.context.span_id
        assert call.parent is not None
        assert call.parent.span_id == act.context.span_id
        assert call.context.trace_id == turn.context.trace_id
        decide = finished["policy.decide"]
        assert decide.parent is not None
        assert decide.parent.span_id == call.context.span_id
        assert decide.attributes is not None
        assert decide.attributes["zl.policy.decision"] == "allow"
        chats = [span for span in spans.get_finished_spans() if span.name == "chat mock"]
        assert {c.parent.span_id for c in chats if c.parent} == {
            plan.context.span_id,
            respond.context.span_id,
        }
        for chat in chats:
            assert chat.attributes is not None
            assert chat.attributes["gen_ai.operation.name"] == "chat"
            assert chat.attributes["gen_ai.request.model"] == "mock"
            assert chat.attributes["gen_ai.usage.output_tokens"] >= 1
            assert chat.attributes["zl.gen_ai.time_to_first_chunk_ms"] >= 0
        assert call.attributes is not None
        assert call.attributes["zl.audit.id"].startswith("rcpt_")
        assert turn.attributes is not None
        assert turn.attributes["zl.turn.id"] == "t1"
        assert turn.attributes["zl.tenant"] == "acme"
        assert call.attributes is not None
        assert call.attributes["zl.tool.name"] == "fs.read"
        assert call.attributes["zl.tool.outcome"] == "ok"
        telemetry.metrics.flush()  # the per-turn counters are tallied first
        points = metric_points(reader)
        assert {
            "zl.turn.time_to_first_token",
            "zl.tool.calls",
            "zl.tool.call.duration",
            "zl.tokens",
            "zl.audit.records",
        } <= set(points)
        (ttft,) = points["zl.turn.time_to_first_token"]
        assert ttft.count == 1
        (calls,) = points["zl.tool.calls"]
        assert calls.value == 1
        assert dict(calls.attributes) == {"tool": "fs.read", "outcome": "ok"}
        tokens = {dict(p.attributes)["direction"]: p.value for p in points["zl.tokens"]}
        assert set(tokens) == {"in", "out"}
        assert all(value > 0 for value in tokens.values()), tokens
        telemetry.shutdown()
